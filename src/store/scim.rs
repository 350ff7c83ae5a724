//! What the SCIM service reads: resources selected by a [`Criterion`] (a SCIM filter resolved
//! into the model's columns), in an [`Order`], a page at a time with the total count; and, for
//! a page of users or groups, what their resources show (grants with their entitlements,
//! members). The store turns criteria and orders into its database's SQL (`scim_filter.rs`).

use async_trait::async_trait;
use provost_connector::model::{Account, Entitlement};
use provost_connector::times::Timestamp;

use super::{OrgId, StoreError};

/// Which rows a SCIM resource type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimTable {
    /// Users: accounts.
    Accounts,
    /// Groups: the permission sets, permission set groups and public groups that can be
    /// granted.
    Groups,
    /// Entitlements: profiles, and the grantable permission sets and set groups.
    Entitlements,
    /// Roles.
    Roles,
}

/// Which grants of a user a multi-valued attribute lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantScope {
    /// `entitlements`: the profile, and permission sets and groups assigned directly.
    Entitlements,
    /// `roles`: the user's role.
    Roles,
    /// `groups`: the grantable sets and public groups the user is a direct member of.
    Groups,
}

/// A value of a resource's row that a criterion tests or an order sorts by: a user's, an
/// entitlement's (a Group, Entitlement or Role, or one a user holds), or a group member's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The resource's own id (a user's or an entitlement's, as the table is).
    Id,
    Username,
    Email,
    FirstName,
    LastName,
    DisplayName,
    UserType,
    /// Whether the user is active.
    Active,
    /// A text field of the user's attributes.
    UserText(&'static str),
    /// A boolean field of the user's attributes.
    UserFlag(&'static str),
    /// A date-time field of the user's attributes, in Salesforce's form.
    UserTime(&'static str),
    /// When Provost last saw the user or entitlement, or its grants, change (`changed_at`).
    ChangedAt,
    /// The label of the entitlement whose id is this field of the user's attributes.
    LabelOf(&'static str),
    /// An entitlement's id, label, API name, description, SCIM type.
    EntitlementId,
    Label,
    ApiName,
    Description,
    EntitlementType,
    /// Whether the entitlement is the user's profile.
    IsProfile,
    /// A group member's id and name.
    MemberId,
    MemberName,
}

/// How a text column is compared with a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    StartsWith,
    EndsWith,
}

/// How a date-time column is compared with a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// The rows of a multi-valued attribute that are held apart from the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    /// A user's grants of a scope, each with its entitlement.
    Grants(GrantScope),
    /// A group's direct members.
    Members,
}

/// What rows must satisfy: a SCIM filter, resolved by the SCIM module into the model's
/// columns, for the store to turn into its database's SQL. Unknown values (a missing column)
/// count as false.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    Const(bool),
    And(Box<Criterion>, Box<Criterion>),
    Or(Box<Criterion>, Box<Criterion>),
    /// True where the inner criterion is not (unknown counts as false first).
    Not(Box<Criterion>),
    /// The column holds a value (for text, a non-empty one).
    Present(Column),
    /// The column is (`null` true) or is not null.
    Null {
        column: Column,
        null: bool,
    },
    Text {
        column: Column,
        op: TextOp,
        value: String,
        case_exact: bool,
    },
    /// A boolean column is `value` (a missing one is false).
    Flag {
        column: Column,
        value: bool,
    },
    Time {
        column: Column,
        op: TimeOp,
        at: Timestamp,
    },
    /// Some row of the collection satisfies the inner criterion.
    Any {
        collection: Collection,
        criterion: Box<Criterion>,
    },
}

/// The order of a page: by a column (its nulls last; text compared without case unless
/// `case_exact`), then by id; or by id alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub by: Option<(Column, bool)>,
    pub descending: bool,
}

/// The SQL `criterion` becomes on `backend` for `table`, with `?` for each parameter, and the
/// parameters' values: for tests and logs (the store runs it with the values bound).
pub fn criterion_sql(
    backend: super::Backend,
    table: ScimTable,
    criterion: &Criterion,
) -> (String, Vec<String>) {
    let mut sql = super::sql::build("");
    super::scim_filter::Compiler { backend, table }.criterion(criterion, &mut sql);
    sql.describe()
}

/// The `ORDER BY` keys `order` becomes on `backend` for `table`.
pub fn order_sql(backend: super::Backend, table: ScimTable, order: Order) -> String {
    super::scim_filter::Compiler { backend, table }.order(order)
}

/// What to select: the rows of a table that meet the criterion, in an order, a page of them.
#[derive(Debug, Clone, Copy)]
pub struct ScimQuery<'a> {
    pub table: ScimTable,
    pub filter: Option<&'a Criterion>,
    pub order: Order,
    pub offset: u64,
    /// 0 asks for the count only.
    pub limit: u32,
    /// How many rows match, when the caller counted them already: answered as the total
    /// instead of counting again.
    pub counted: Option<u64>,
    /// When its statements are stopped ([`StoreError::TimedOut`](super::StoreError::TimedOut)):
    /// one deadline for every statement of a request (a page, its count, each resource type
    /// of a search), so the request's whole work is bounded.
    pub deadline: QueryDeadline,
}

/// A request's deadline for its queries, and the time it was given (for the error).
#[derive(Debug, Clone, Copy)]
pub struct QueryDeadline {
    pub at: std::time::Instant,
    pub budget: std::time::Duration,
}

impl QueryDeadline {
    /// A deadline `budget` from now.
    pub fn after(budget: std::time::Duration) -> QueryDeadline {
        QueryDeadline {
            at: std::time::Instant::now() + budget,
            budget,
        }
    }

    /// The time left, or the error of a request out of time.
    pub fn remaining(&self) -> Result<std::time::Duration, super::StoreError> {
        self.at
            .checked_duration_since(std::time::Instant::now())
            .filter(|left| !left.is_zero())
            .ok_or(super::StoreError::TimedOut(self.budget))
    }
}

/// A user of a SCIM page: the account, its grants, and when Provost last saw either change.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUser {
    pub account: Account,
    pub grants: Vec<UserGrant>,
    pub changed_at: Option<provost_connector::times::Timestamp>,
}

/// An entitlement as SCIM serves it (a Group, an Entitlement, a Role), and when Provost last
/// saw it or its holders change.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimEntitlement {
    pub entitlement: Entitlement,
    pub changed_at: Option<provost_connector::times::Timestamp>,
}

/// One grant of a user, with its entitlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGrant {
    pub entitlement_id: String,
    pub kind: String,
    pub label: String,
    /// `direct`, `profile` or `group:ID`.
    pub source: String,
}

/// A direct member of an entitlement served as a Group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub entitlement_id: String,
    pub account_id: String,
    pub display_name: String,
}

#[async_trait]
pub trait ScimStore: Send + Sync {
    /// The ids of one page of matching rows, and how many match in all.
    async fn scim_select(
        &self,
        org: OrgId,
        query: ScimQuery<'_>,
    ) -> Result<(Vec<String>, u64), StoreError>;

    /// One page of matching accounts in order, each with its grants (ordered by kind, label
    /// and entitlement id), and how many match in all. `query.table` must be `Accounts`.
    async fn scim_accounts(
        &self,
        org: OrgId,
        query: ScimQuery<'_>,
    ) -> Result<(Vec<ScimUser>, u64), StoreError>;

    /// Entitlements by id (in no particular order; unknown ids are left out).
    async fn entitlements_by_ids(
        &self,
        org: OrgId,
        ids: &[String],
    ) -> Result<Vec<ScimEntitlement>, StoreError>;

    /// The direct members of these entitlements, in user id order.
    async fn members_of(&self, org: OrgId, ids: &[String]) -> Result<Vec<Member>, StoreError>;
}
