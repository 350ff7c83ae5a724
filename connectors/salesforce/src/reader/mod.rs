//! Reading an org's access model through the connector interface.
//!
//! Resources are read in dependency order (licenses, profiles, roles, permission sets and
//! groups before the users and assignments that refer to them). Community and portal users,
//! and inactive ones when configured, are filtered in the SOQL itself, for users and for every
//! grant that names a user, so they never leave Salesforce.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeDelta;
use provost_connector::connector::{
    Connector, ConnectorError, Coverage, Cursor, Page, Quota, ResourceType, Watermark, ROWS_AS_READ,
};
use provost_connector::model::{GrantSource, PermissionKind};
pub use provost_connector::times::parse_datetime;
use provost_connector::times::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::client::{QueryPage, SalesforceClient};
use crate::error::SalesforceError;
use crate::id::SalesforceId;
use crate::preflight::EXTERNAL_USER_TYPES;
use crate::record::Record;
use crate::schema;
use crate::soql::{Condition, Literal, Query};

mod fingerprint;
mod lookup;
mod mapping;
mod reads;
use fingerprint::{Fingerprint, Latest, Since};
use lookup::Lookup;
use mapping::{
    access_permission, assignment, entitlement, grant, permission_set, permission_set_group, text,
    user, MutingSet,
};
use reads::{read_of, Holders, Mapping, Read, Scope, RESOURCES, SETUP_ENTITY_NAMES};
pub use reads::{
    wanted_fields, FIELD_PERMISSIONS, GROUP_MEMBERS, OBJECT_PERMISSIONS, PERMISSION_SETS,
    PERMISSION_SET_ASSIGNMENTS, PERMISSION_SET_GROUPS, PERMISSION_SET_LICENSES,
    PERMISSION_SET_LICENSE_ASSIGNMENTS, PROFILES, PUBLIC_GROUPS, ROLES, SETUP_ENTITY_ACCESS, USERS,
    USER_LICENSES,
};

/// The sensitive system permissions read on every permission set.
pub const SYSTEM_PERMISSIONS: [&str; 14] = [
    "PermissionsModifyAllData",
    "PermissionsViewAllData",
    "PermissionsManageUsers",
    "PermissionsManageInternalUsers",
    "PermissionsCustomizeApplication",
    "PermissionsAuthorApex",
    "PermissionsManageProfilesPermissionsets",
    "PermissionsAssignPermissionSets",
    "PermissionsResetPasswords",
    "PermissionsViewSetup",
    "PermissionsApiEnabled",
    "PermissionsManageRemoteAccess",
    "PermissionsViewAllUsers",
    "PermissionsManageRoles",
];

/// The fields a read selects.
type Fields = Arc<Vec<&'static str>>;

/// The permission sets of each permission set group, by the group's ID.
type Components = HashMap<String, Vec<String>>;

/// The users' latest stamp, then a first page, then another query's answer when one was asked.
type UserStampThen = (
    Option<String>,
    Result<QueryPage, SalesforceError>,
    Option<Result<QueryPage, SalesforceError>>,
);

#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub exclude_portal_users: bool,
    pub include_inactive_users: bool,
    /// Read object, field and setup-entity permissions (FieldPermissions can run to
    /// millions of rows); off, those resources read as empty.
    pub read_access: bool,
}

/// The Salesforce connector's reading side.
pub struct SalesforceReader {
    client: SalesforceClient,
    options: ReadOptions,
    /// Frozen users, read once per reader (frozen users are few; one query, not one per user).
    frozen: Lookup<Arc<HashSet<String>>>,
    /// Each permission set group's component permission sets, read once per reader.
    components: Lookup<Arc<Components>>,
    /// Muting permission sets by id: the permissions each turns off, read once per reader.
    muting: Lookup<Arc<HashMap<String, MutingSet>>>,
    /// Names of setup entities (connected apps, Apex classes, custom permissions) by id.
    entity_names: Lookup<Arc<HashMap<String, String>>>,
    /// The fields each object's reads select, once described (see [`crate::schema`]). Each
    /// object's describe is its own: reads planned side by side describe theirs at once.
    selected: Mutex<HashMap<&'static str, Arc<Lookup<Fields, ConnectorError>>>>,
    /// The fields the org shows of each object the reader adapts to, described all in one call
    /// when the first of them is (an object whose describe failed there is described alone).
    shown: Lookup<Arc<HashMap<&'static str, HashSet<String>>>>,
    /// The first page of each resource whose read was just planned (see [`Self::plan`]),
    /// until its first stream asks for it.
    probes: Mutex<HashMap<&'static str, QueryPage>>,
    /// The latest `SystemModstamp` of any user, as last taken (see [`Self::user_stamp_taken`]).
    user_stamp: Lookup<Option<String>>,
    /// Pages a range read side by side holds at least (see [`MIN_PAGES_PER_STREAM`]).
    min_stream_pages: u64,
    /// A resource of at most this many rows is read whole, not fingerprinted: one page costs
    /// what its fingerprint would.
    max_unfingerprinted_rows: u64,
}

/// What a cursor holds: Salesforce's next-page locator, and the last ID read, to restart
/// from when the locator has expired (they live about 15 minutes); for a read of changes,
/// which of its queries is running; and the watermark taken when the read began. A stream of a
/// read split into ranges also holds its range's last ID and the resource's record count.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct CursorState {
    next: Option<String>,
    after: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    phase: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mark: Option<String>,
    /// The last ID of this stream's range (inclusive); `None`: to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upto: Option<String>,
    /// Records of the whole resource, counted when the read was planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    /// The stream's first page is the one read to plan the split, held in `probes`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    probe: bool,
    /// The resource's fingerprint (in `mark`) is the last read's: nothing to read.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    unchanged: bool,
    /// A read of changes since this stamp (less the overlap): of users, their watermark's
    /// stamp; of a resource held by users whose fingerprint (in `mark`) is the last read's,
    /// the latest stamp of any user when that one was taken (the records of users changed
    /// since are read, in phases like the users').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changes_since: Option<String>,
    /// The latest stamp of the resource's fingerprint (in `mark`): a page with a row stamped
    /// later read what the fingerprint does not describe, so the read must not keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest: Option<String>,
}

impl CursorState {
    fn decode(cursor: &Cursor, resource: &str) -> Result<CursorState, ConnectorError> {
        serde_json::from_str(&cursor.0).map_err(|_| ConnectorError::InvalidCursor {
            message: format!("the checkpoint of `{resource}` is not a Salesforce cursor; read the resource again from the start"),
        })
    }

    fn encode(&self) -> Cursor {
        Cursor(serde_json::to_string(self).expect("serialisable"))
    }

    /// The keys this cursor is still to read: after its last one, through its range's end.
    fn rest_of_range(&self) -> Coverage {
        Coverage::Range {
            after: self.after.clone(),
            through: self.upto.clone(),
        }
    }

    /// The watermark a page of `records` carries: `watermark`, or an empty one when a record is
    /// stamped later than the fingerprint (the core then keeps the read's `since`).
    fn keep(&self, watermark: Option<Watermark>, records: &[Record]) -> Option<Watermark> {
        let newest = self.newest.as_deref().and_then(parse_datetime);
        let newer = |record: &Record| {
            let stamp = text(record, fingerprint::STAMP);
            stamp.as_deref().and_then(parse_datetime) > newest
        };
        match newest.is_some() && records.iter().any(newer) {
            true => Some(Watermark(String::new())),
            false => watermark,
        }
    }

    /// A stream of the same read over the IDs after `after` through `upto`.
    fn range(&self, after: Option<String>, upto: Option<String>) -> CursorState {
        CursorState {
            after,
            upto,
            mark: self.mark.clone(),
            total: self.total,
            newest: self.newest.clone(),
            ..CursorState::default()
        }
    }
}

fn is_zero(phase: &u8) -> bool {
    *phase == 0
}

/// `fields` and the stamp the fingerprint orders by.
fn with_stamp(fields: &[&'static str]) -> Vec<&'static str> {
    let mut selected = fields.to_vec();
    if !selected.contains(&fingerprint::STAMP) {
        selected.push(fingerprint::STAMP);
    }
    selected
}

/// A range read side by side with others holds at least this many pages: every range ends
/// with a page that is not full, so fewer, longer ranges keep the calls near the minimum.
const MIN_PAGES_PER_STREAM: u64 = 10;

/// How far back a read of changes reaches before its watermark: a transaction that was still
/// running when the watermark was read commits with an earlier `SystemModstamp`. Records read
/// twice cost nothing (the core compares them); a record missed would be wrong.
const WATERMARK_OVERLAP: TimeDelta = TimeDelta::minutes(5);

/// Where a users' watermark names the filters of the read that took it.
const FILTERS: &str = "|filters>";

/// The last phase of a read of changes (see [`SalesforceReader::change_query`]).
const LAST_PHASE: u8 = 2;

impl SalesforceReader {
    pub fn new(client: SalesforceClient, options: ReadOptions) -> SalesforceReader {
        SalesforceReader {
            options,
            frozen: Lookup::new(),
            components: Lookup::new(),
            muting: Lookup::new(),
            entity_names: Lookup::new(),
            selected: Mutex::new(HashMap::new()),
            shown: Lookup::new(),
            probes: Mutex::new(HashMap::new()),
            user_stamp: Lookup::new(),
            min_stream_pages: MIN_PAGES_PER_STREAM,
            max_unfingerprinted_rows: u64::from(client.batch_size()),
            client,
        }
    }

    /// Splits reads into ranges of at least `pages` pages (tests split small orgs with 1).
    pub fn with_min_stream_pages(mut self, pages: u64) -> SalesforceReader {
        self.min_stream_pages = pages.max(1);
        self
    }

    /// Fingerprints resources of more than `rows` rows (tests fingerprint small orgs with 0).
    pub fn with_max_unfingerprinted_rows(mut self, rows: u64) -> SalesforceReader {
        self.max_unfingerprinted_rows = rows;
        self
    }

    pub fn client(&self) -> &SalesforceClient {
        &self.client
    }

    /// Filters on a user, reached through `prefix` (`""` on User itself, `"Assignee."` on assignments).
    fn user_filters(&self, user_type: &'static str, is_active: &'static str) -> Vec<Condition> {
        let mut conditions = Vec::new();
        if self.options.exclude_portal_users {
            conditions.push(Condition::not_in(
                user_type,
                EXTERNAL_USER_TYPES.map(Literal::from),
            ));
        }
        if !self.options.include_inactive_users {
            conditions.push(Condition::eq(is_active, true));
        }
        conditions
    }

    /// What the user filters leave out, said positively (`UserType IN (...) OR IsActive =
    /// false`: a `NOT` inside a semi-join's subquery is best avoided); `None` without filters.
    fn left_out(&self) -> Option<Condition> {
        let mut out = Vec::new();
        if self.options.exclude_portal_users {
            out.push(Condition::is_in(
                "UserType",
                EXTERNAL_USER_TYPES.map(Literal::from),
            ));
        }
        if !self.options.include_inactive_users {
            out.push(Condition::eq("IsActive", false));
        }
        match out.len() {
            0 => None,
            1 => out.pop(),
            _ => Some(Condition::Or(out)),
        }
    }

    /// The fields `read` selects: those the org shows of what it wants. An optional field the
    /// org does not show is left out (logged once per reader, with what is lost); a required
    /// one stops the read, naming the field and the remedy.
    async fn fields_of(&self, read: &Read) -> Result<Arc<Vec<&'static str>>, ConnectorError> {
        let described = self
            .selected
            .lock()
            .await
            .entry(read.object)
            .or_default()
            .clone();
        described.get(|| self.select_fields(read)).await
    }

    /// What [`Self::fields_of`] finds, asking Salesforce.
    async fn select_fields(&self, read: &Read) -> Result<Arc<Vec<&'static str>>, ConnectorError> {
        let mut wanted = read.fields.to_vec();
        if matches!(read.mapping, Mapping::PermissionSets) {
            wanted.extend(SYSTEM_PERMISSIONS);
        }
        if read.fingerprinted {
            // To tell rows newer than the fingerprint (see [`CursorState::newest`]).
            wanted = with_stamp(&wanted);
        }
        let fields = if schema::ADAPTED_OBJECTS.contains(&read.object) {
            let described = self
                .shown
                .get(|| async {
                    schema::visible_fields_of(&self.client, &schema::ADAPTED_OBJECTS)
                        .await
                        .map(Arc::new)
                })
                .await
                .map_err(connector_error)?;
            let shown = match described.get(read.object) {
                Some(shown) => shown,
                None => &schema::visible_fields(&self.client, read.object)
                    .await
                    .map_err(connector_error)?,
            };
            let adapted = schema::adapt(read.object, &wanted, shown);
            if let Some(field) = adapted.missing.first() {
                return Err(ConnectorError::Denied {
                    message: schema::remedy(read.object, field),
                });
            }
            for (field, lost) in &adapted.lost {
                tracing::warn!(
                    object = read.object,
                    field = *field,
                    "Salesforce does not show this field to the connected user; syncing without {lost}"
                );
            }
            adapted.fields
        } else {
            wanted
        };
        Ok(Arc::new(fields))
    }

    /// The full query of `read`: `fields`, in the scope the options give.
    fn query_for(&self, read: &Read, fields: &[&'static str]) -> Query {
        self.scoped(read, fields, Holders::Kept)
    }

    /// The query of `read`'s records held by `holders`: `fields`, in the scope the options give.
    fn scoped(&self, read: &Read, fields: &[&'static str], holders: Holders) -> Query {
        let with = |query: Query, conditions: Vec<Condition>| {
            conditions.into_iter().fold(query, Query::filter)
        };
        let query = Query::select(read.object, fields);
        let query = match read.scope {
            Scope::All => return query,
            Scope::RegularGroups => return query.filter(Condition::eq("Type", "Regular")),
            Scope::Users => return with(query, self.user_filters("UserType", "IsActive")),
            Scope::OfKeptAssignees => query,
            Scope::MembersOfRegularGroups => query.filter(Condition::eq("Group.Type", "Regular")),
        };
        let holder = read.holder_field().expect("a resource held by users");
        let users = Query::select("User", &["Id"]);
        let filters = self.user_filters("UserType", "IsActive");
        match holders {
            Holders::Any => query,
            Holders::Kept => match read.scope {
                Scope::OfKeptAssignees => with(
                    query,
                    self.user_filters("Assignee.UserType", "Assignee.IsActive"),
                ),
                _ => query.filter(Condition::in_query(holder, with(users, filters))),
            },
            Holders::Changed { since, kept } => {
                let changed =
                    users.filter(Condition::gt("SystemModstamp", Literal::DateTime(since)));
                let changed = match (kept, self.left_out()) {
                    (Some(true), _) => with(changed, filters),
                    (Some(false), Some(left_out)) => changed.filter(left_out),
                    (Some(false), None) => changed.filter(Condition::eq("Id", Literal::Null)),
                    (None, _) => changed,
                };
                query.filter(Condition::in_query(holder, changed))
            }
        }
    }

    /// The queries of a read of changes since `since`, by phase, and whether the phase reads
    /// records (or only keys: what it names is to be removed). The phases are disjoint.
    ///
    /// Of users: users changed themselves; users whose login (freeze) changed; users changed so
    /// that they no longer match the filters. Of a resource held by users: the records of users
    /// changed since whom the filters keep; those of users changed since whom they leave out.
    fn change_query(
        &self,
        read: &Read,
        phase: u8,
        since: Timestamp,
        fields: &[&'static str],
    ) -> Option<(Query, bool)> {
        let filters = self.user_filters("UserType", "IsActive");
        if read.holder_field().is_some() {
            let holders = |kept| Holders::Changed {
                since,
                kept: Some(kept),
            };
            return match phase {
                0 => Some((self.scoped(read, fields, holders(true)), true)),
                1 if !filters.is_empty() => {
                    Some((self.scoped(read, &["Id"], holders(false)), false))
                }
                _ => None,
            };
        }
        let changed = || Condition::gt("SystemModstamp", Literal::DateTime(since));
        let users = self.query_for(read, fields);
        match phase {
            0 => Some((users.filter(changed()), true)),
            1 => Some((
                users
                    .filter(Condition::in_query(
                        "Id",
                        Query::select("UserLogin", &["UserId"]).filter(changed()),
                    ))
                    .filter(Condition::Not(Box::new(changed()))),
                true,
            )),
            2 if !filters.is_empty() => Some((
                Query::select("User", &["Id"])
                    .filter(changed())
                    .filter(Condition::Not(Box::new(Condition::And(filters)))),
                false,
            )),
            _ => None,
        }
    }

    /// What `read`'s fingerprint takes besides its rows, side by side: the latest stamp of any
    /// user (of a resource held by users, when the options filter users), and of assignments,
    /// the sets each group grants. Both are kept by the reader once taken.
    async fn fingerprint_context(
        &self,
        read: &Read,
    ) -> Result<(Option<String>, Option<Arc<Components>>), SalesforceError> {
        let filtered = !self.user_filters("UserType", "IsActive").is_empty();
        let users = async {
            match read.holder_field().is_some() && filtered {
                true => self
                    .user_stamp_taken()
                    .await
                    .map(|stamp| Some(stamp.unwrap_or_else(|| fingerprint::NO_STAMP.to_owned()))),
                false => Ok(None),
            }
        };
        let components = async {
            match read.mapping {
                Mapping::Assignments => self.group_components().await.map(Some),
                _ => Ok(None),
            }
        };
        tokio::try_join!(users, components)
    }

    /// `read`'s fingerprint; `None` when it has none this time (a resource of one page, or a
    /// window too large to read by itself). Its parts are taken in this order (see
    /// [`fingerprint`]): the latest stamp of any user (of a resource held by users, when the
    /// options filter users: their rows are read after it), the latest rows, then the count of
    /// rows: by `first`, a full read's first query, when given (its first page is returned for
    /// the read), or by `COUNT()`.
    async fn fingerprint(
        &self,
        read: &Read,
        fields: &[&'static str],
        first: Option<&Query>,
    ) -> Result<(Option<Fingerprint>, Option<QueryPage>), SalesforceError> {
        let (users, components) = self.fingerprint_context(read).await?;
        // What the rows mean besides their values: the query that reads them (the options,
        // the fields), and of assignments, the sets each group's assignment grants.
        let mut context = vec![self.query_for(read, fields).to_soql()];
        if let Some(components) = components {
            let mut groups: Vec<String> = components
                .iter()
                .map(|(group, sets)| {
                    let mut sets = sets.clone();
                    sets.sort();
                    format!("{group}:{}", sets.join(","))
                })
                .collect();
            groups.sort();
            context.extend(groups);
        }
        let rows = self.scoped(read, &with_stamp(fields), Holders::Any);
        let latest = rows
            .clone()
            .descending(fingerprint::STAMP)
            .limit(fingerprint::WINDOW_ROWS);
        // The latest rows, then the count, in one call: a composite call's subrequests run
        // in order.
        let counting = rows.counting();
        let mut answers = self
            .client
            .queries(&[&latest, first.unwrap_or(&counting)])
            .await?
            .into_iter();
        let mut answer = || answers.next().expect("an answer per query");
        let latest = answer()?;
        let counted = answer()?;
        let (count, first) = (counted.total_size, first.map(|_| counted));
        if count <= self.max_unfingerprinted_rows {
            return Ok((None, first));
        }
        let window = match fingerprint::window(&latest.records, latest.done, fields) {
            Latest::Window(window) => window,
            Latest::Unreadable => return Ok((None, first)),
            Latest::Fuller { newest, start } => {
                match self
                    .window_by_itself(read, fields, newest, start, count)
                    .await?
                {
                    Some(window) => window,
                    None => return Ok((None, first)),
                }
            }
        };
        Ok((Some(window.fingerprint(count, &context, users)), first))
    }

    /// The rows of `read` stamped from `start` on, when they are worth reading by themselves.
    async fn window_by_itself(
        &self,
        read: &Read,
        fields: &[&'static str],
        newest: String,
        start: Timestamp,
        count: u64,
    ) -> Result<Option<fingerprint::Window>, SalesforceError> {
        let within = self
            .scoped(read, &with_stamp(fields), Holders::Any)
            .filter(Condition::ge(fingerprint::STAMP, Literal::DateTime(start)));
        let mut page = self.client.query(&within).await?;
        if !fingerprint::worth_reading(page.total_size, count) {
            tracing::info!(
                resource = read.resource.id,
                rows = page.total_size,
                "too many rows changed at once to fingerprint; read whole until a later change"
            );
            return Ok(None);
        }
        let mut window = fingerprint::Window::new(fields, Some(newest));
        loop {
            for record in &page.records {
                window.row(record);
            }
            match page.next_records_url.take() {
                Some(next) => page = self.client.query_more(&next).await?,
                None => return Ok(Some(window)),
            }
        }
    }

    /// Whether the rows of users changed since `users` (a users' stamp, less the overlap) are
    /// few enough to read by themselves, of a resource of `count` rows: a quarter of them at most,
    /// as for a fingerprint's window. More (where logins move users' stamps, say) are read
    /// whole, side by side. A count that fails says no.
    async fn few_changed_holders(&self, read: &Read, users: &str, count: u64) -> bool {
        let Some(since) = parse_datetime(users) else {
            return false;
        };
        let changed = Holders::Changed {
            since: since - WATERMARK_OVERLAP,
            kept: None,
        };
        let query = self.scoped(read, &["Id"], changed).counting();
        match self.client.query(&query).await {
            Ok(page) => {
                let few = fingerprint::worth_reading(page.total_size, count);
                if !few {
                    tracing::info!(
                        resource = read.resource.id,
                        rows = page.total_size,
                        "many rows of users changed since the last read; reading whole"
                    );
                }
                few
            }
            Err(err) => {
                tracing::warn!(resource = read.resource.id, error = %err, "could not count the rows of changed users; reading whole");
                false
            }
        }
    }

    /// The users' watermark of a read that starts when `stamp` is the latest of any user: that
    /// stamp, and the filters the read applies.
    fn users_mark(&self, stamp: String) -> String {
        format!("{stamp}{FILTERS}{}", self.filters())
    }

    /// The stamp to read users' changes after, from the last read's watermark; `None` when that
    /// read applied other filters (or named none): users the filters now keep may not have
    /// changed since, so they are all read.
    fn users_since<'a>(&self, mark: &'a str) -> Option<&'a str> {
        let (stamp, filters) = mark.split_once(FILTERS)?;
        (filters == self.filters()).then_some(stamp)
    }

    /// The users' filters, as a watermark names them.
    fn filters(&self) -> String {
        let kept = |yes: bool| if yes { "in" } else { "out" };
        format!(
            "portal:{},inactive:{}",
            kept(!self.options.exclude_portal_users),
            kept(self.options.include_inactive_users)
        )
    }

    /// The latest `SystemModstamp` of any user (kept for [`Self::user_stamp_taken`]).
    async fn latest_user_stamp(&self) -> Result<Option<String>, SalesforceError> {
        let stamp = self
            .newest_stamp(Query::select("User", &[fingerprint::STAMP]))
            .await?;
        self.keep_user_stamp(&stamp).await;
        Ok(stamp)
    }

    /// Keeps a stamp just taken for [`Self::user_stamp_taken`]; none (no user) is asked again.
    async fn keep_user_stamp(&self, stamp: &Option<String>) {
        match stamp {
            Some(_) => self.user_stamp.set(stamp.clone()).await,
            None => self.user_stamp.forget().await,
        }
    }

    /// [`Self::latest_user_stamp`], then the first page of `query` and, when given, of `also`
    /// (each its own result), in one call.
    async fn latest_user_stamp_then(
        &self,
        query: &Query,
        also: Option<&Query>,
    ) -> Result<UserStampThen, SalesforceError> {
        let latest = newest(Query::select("User", &[fingerprint::STAMP]));
        let mut queries = vec![&latest, query];
        queries.extend(also);
        let mut answers = self.client.queries(&queries).await?.into_iter();
        let mut answer = || answers.next().expect("an answer per query");
        let stamp = stamp_of(&answer()?);
        self.keep_user_stamp(&stamp).await;
        let first = answer();
        Ok((stamp, first, also.map(|_| answer())))
    }

    /// The latest `SystemModstamp` of any user as this reader last took it (the users' read
    /// takes it before it reads, so before the resources read after users), or as it is now.
    /// An earlier stamp only makes a later read of users' changes read more.
    /// Resources planned side by side ask at once: it is taken once, and a failure to take it
    /// is theirs too (see [`Lookup`]).
    async fn user_stamp_taken(&self) -> Result<Option<String>, SalesforceError> {
        let stamp = self
            .user_stamp
            .get(|| self.newest_stamp(Query::select("User", &[fingerprint::STAMP])))
            .await?;
        if stamp.is_none() {
            // No user: asked again next time.
            self.user_stamp.forget().await;
        }
        Ok(stamp)
    }

    /// The latest `SystemModstamp` of the records `query` selects (with that field).
    async fn newest_stamp(&self, query: Query) -> Result<Option<String>, SalesforceError> {
        Ok(stamp_of(&self.client.query(&newest(query)).await?))
    }

    async fn first_or_next(
        &self,
        resource: &str,
        query: Query,
        state: &CursorState,
    ) -> Result<QueryPage, SalesforceError> {
        let from_start = |after: &Option<String>| {
            let mut query = query.clone();
            if let Some(after) = after.as_deref().and_then(|a| SalesforceId::parse(a).ok()) {
                query = query.filter(Condition::gt("Id", after));
            }
            if let Some(upto) = state
                .upto
                .as_deref()
                .and_then(|a| SalesforceId::parse(a).ok())
            {
                query = query.filter(Condition::le("Id", upto));
            }
            query
        };
        match &state.next {
            Some(next) => match self.client.query_more(next).await {
                Err(err) if err.code() == Some("INVALID_QUERY_LOCATOR") => {
                    tracing::info!(
                        resource,
                        "query locator expired; continuing after the last ID read"
                    );
                    self.client.query(&from_start(&state.after)).await
                }
                other => other,
            },
            None => self.client.query(&from_start(&state.after)).await,
        }
    }

    /// Every row of a query, all pages (for the small lookups: frozen users, group components).
    async fn all_records(&self, query: &Query) -> Result<Vec<Record>, SalesforceError> {
        self.rest_of(self.client.query(query).await?).await
    }

    /// Every row of a query from its first page on.
    async fn rest_of(&self, mut page: QueryPage) -> Result<Vec<Record>, SalesforceError> {
        let mut records = std::mem::take(&mut page.records);
        while let Some(next) = page.next_records_url.take() {
            page = self.client.query_more(&next).await?;
            records.append(&mut page.records);
        }
        Ok(records)
    }

    async fn frozen_users(&self) -> Result<Arc<HashSet<String>>, SalesforceError> {
        self.frozen
            .get(|| async {
                let query = Query::select("UserLogin", &["Id", "UserId"])
                    .filter(Condition::eq("IsFrozen", true));
                let frozen: HashSet<String> = self
                    .all_records(&query)
                    .await?
                    .iter()
                    .filter_map(|r| text(r, "UserId"))
                    .collect();
                Ok(Arc::new(frozen))
            })
            .await
    }

    async fn group_components(&self) -> Result<Arc<Components>, SalesforceError> {
        self.components.get(|| self.read_group_components()).await
    }

    async fn read_group_components(&self) -> Result<Arc<Components>, SalesforceError> {
        let query = Query::select(
            "PermissionSetGroupComponent",
            &["Id", "PermissionSetGroupId", "PermissionSetId"],
        );
        let mut components: HashMap<String, Vec<String>> = HashMap::new();
        match self.all_records(&query).await {
            Ok(records) => {
                for record in records {
                    if let (Some(group), Some(set)) = (
                        text(&record, "PermissionSetGroupId"),
                        text(&record, "PermissionSetId"),
                    ) {
                        components.entry(group).or_default().push(set);
                    }
                }
            }
            // An org without permission set groups has no components.
            Err(err) if err.code() == Some("INVALID_TYPE") => {}
            Err(err) => return Err(err),
        }
        Ok(Arc::new(components))
    }

    /// Muting permission sets: an org without permission set groups has none.
    async fn muting_sets(&self) -> Result<Arc<HashMap<String, MutingSet>>, SalesforceError> {
        self.muting.get(|| self.read_muting_sets()).await
    }

    async fn read_muting_sets(&self) -> Result<Arc<HashMap<String, MutingSet>>, SalesforceError> {
        let mut fields = vec!["Id", "DeveloperName", "MasterLabel"];
        fields.extend(SYSTEM_PERMISSIONS);
        let mut muting = HashMap::new();
        match self
            .all_records(&Query::select("MutingPermissionSet", &fields))
            .await
        {
            Ok(records) => {
                for record in records {
                    let Some(id) = text(&record, "Id") else {
                        continue;
                    };
                    muting.insert(
                        id.clone(),
                        MutingSet {
                            id,
                            api_name: text(&record, "DeveloperName").unwrap_or_default(),
                            muted: SYSTEM_PERMISSIONS
                                .iter()
                                .copied()
                                .filter(|p| record[*p] == Value::Bool(true))
                                .collect(),
                        },
                    );
                }
            }
            Err(err) if err.code() == Some("INVALID_TYPE") => {}
            // Muting sets only name what a group's aggregate set already leaves out: without
            // them (a hidden field, no View Setup and Configuration) the groups are still read.
            Err(SalesforceError::Api { code, message, .. })
                if code == "INVALID_FIELD" || code.starts_with("INSUFFICIENT_ACCESS") =>
            {
                tracing::warn!(
                    code,
                    message,
                    "muting permission sets cannot be read; syncing groups without them (reports will not name the muting set that cuts a group's permission)"
                );
            }
            Err(err) => return Err(err),
        }
        Ok(Arc::new(muting))
    }

    /// Setup entities' names by id, from the objects that name them (an object the org or
    /// the user cannot read leaves its entities unnamed).
    async fn setup_entity_names(&self) -> Result<Arc<HashMap<String, String>>, SalesforceError> {
        self.entity_names
            .get(|| self.read_setup_entity_names())
            .await
    }

    async fn read_setup_entity_names(
        &self,
    ) -> Result<Arc<HashMap<String, String>>, SalesforceError> {
        // The kinds' names are asked for in one call.
        let queries =
            SETUP_ENTITY_NAMES.map(|(object, field)| Query::select(object, &["Id", field]));
        let firsts = self.client.queries(&queries.each_ref()).await?;
        let mut names: HashMap<String, String> = HashMap::new();
        for (first, (_, field)) in firsts.into_iter().zip(SETUP_ENTITY_NAMES) {
            let records = match first {
                Ok(first) => self.rest_of(first).await?,
                Err(err) if matches!(err.code(), Some("INVALID_TYPE" | "INSUFFICIENT_ACCESS")) => {
                    continue
                }
                Err(err) => return Err(err),
            };
            names.extend(
                records
                    .iter()
                    .filter_map(|r| Some((text(r, "Id")?, text(r, field)?))),
            );
        }
        Ok(Arc::new(names))
    }

    async fn map_records(
        &self,
        read: &Read,
        records: &[Record],
        page: &mut Page,
    ) -> Result<(), SalesforceError> {
        match read.mapping {
            Mapping::Entitlement {
                kind,
                api_name,
                label,
                grantable,
                attributes,
            } => page.entitlements.extend(
                records
                    .iter()
                    .map(|r| entitlement(r, kind, api_name, label, grantable, attributes)),
            ),
            Mapping::PermissionSets => page.entitlements.extend(records.iter().map(permission_set)),
            Mapping::Users => {
                let frozen = self.frozen_users().await?;
                for record in records {
                    let (account, grants) = user(record, &frozen);
                    page.accounts.push(account);
                    page.grants.extend(grants);
                }
            }
            Mapping::Assignments => {
                let components = self.group_components().await?;
                for record in records {
                    page.grants.extend(assignment(record, &components));
                }
            }
            Mapping::LicenseAssignments => page.grants.extend(records.iter().filter_map(|r| {
                Some(grant(
                    text(r, "Id")?,
                    text(r, "AssigneeId")?,
                    text(r, "PermissionSetLicenseId")?,
                    GrantSource::Direct,
                    None,
                ))
            })),
            Mapping::PermissionSetGroups => {
                let components = self.group_components().await?;
                let muting = self.muting_sets().await?;
                page.entitlements.extend(
                    records
                        .iter()
                        .map(|r| permission_set_group(r, &components, &muting)),
                );
            }
            Mapping::Access(kind) => {
                let names = match kind {
                    PermissionKind::SetupEntity => self.setup_entity_names().await?,
                    _ => Arc::default(),
                };
                page.permissions.extend(
                    records
                        .iter()
                        .filter_map(|record| access_permission(record, kind, &names)),
                );
            }
            Mapping::GroupMembers => page.grants.extend(records.iter().filter_map(|r| {
                let member = text(r, "UserOrGroupId")?;
                // Nested groups are members too; only users hold the group's access directly.
                if !member.starts_with("005") {
                    return None;
                }
                Some(grant(
                    text(r, "Id")?,
                    member,
                    text(r, "GroupId")?,
                    GrantSource::Direct,
                    None,
                ))
            })),
        }
        Ok(())
    }
}

#[async_trait]
impl Connector for SalesforceReader {
    fn resource_types(&self) -> &'static [ResourceType] {
        &RESOURCES
    }

    async fn read_page(
        &self,
        resource: &ResourceType,
        cursor: Option<&Cursor>,
        since: Option<&Watermark>,
    ) -> Result<Page, ConnectorError> {
        let Some(read) = read_of(resource.id) else {
            return Err(ConnectorError::Other {
                message: format!("the Salesforce connector has no resource `{}`", resource.id),
            });
        };
        let mut state = match cursor {
            Some(cursor) => CursorState::decode(cursor, resource.id)?,
            None => CursorState::default(),
        };
        // Users are read by changes since their watermark (when it names the filters in force);
        // a resource held by users whose fingerprint is unchanged, by its holders' changes since
        // the fingerprint's users' stamp. A read of changes carries its stamp in its cursor.
        let changes_since = match (&state.changes_since, since) {
            (Some(stamp), _) => Some(stamp.clone()),
            (None, Some(mark)) if read.reads_changes && cursor.is_none() => {
                self.users_since(&mark.0).map(str::to_owned)
            }
            // Resumed from a cursor of an earlier version (its mark names no filters), which
            // read users by changes whenever it had a watermark: on as begun.
            (None, Some(mark))
                if read.reads_changes
                    && state.mark.as_deref().is_some_and(|m| !m.contains(FILTERS)) =>
            {
                Some(mark.0.clone())
            }
            _ => None,
        };
        state.changes_since = changes_since.clone();
        let changes_since = match changes_since.as_deref() {
            Some(stamp) => {
                let at = parse_datetime(stamp).ok_or_else(|| ConnectorError::InvalidCursor {
                    message: format!(
                        "the watermark `{stamp}` of `{}` is not a Salesforce date-time; run a full sync",
                        resource.id
                    ),
                })?;
                Some(at - WATERMARK_OVERLAP)
            }
            None => None,
        };
        if cursor.is_none() {
            self.forget(read).await;
        }
        if self.skipped(read) {
            // Configured off: nothing is read, and what an earlier sync stored goes (of the
            // keys this cursor is to read; the pages before it said what they covered).
            return Ok(Page {
                total: Some(0),
                coverage: state.rest_of_range(),
                ..Page::default()
            });
        }
        if state.unchanged {
            // What the store holds of it is what the last read found: it all stays.
            return Ok(Page {
                total: state.total,
                coverage: Coverage::Records(Vec::new()),
                watermark: state.mark.map(Watermark),
                ..Page::default()
            });
        }
        if cursor.is_none() && read.reads_changes {
            state.mark = self
                .latest_user_stamp()
                .await
                .map_err(connector_error)?
                .map(|stamp| self.users_mark(stamp))
                .or_else(|| since.map(|mark| mark.0.clone()));
        }
        match changes_since {
            None => self.read_all(read, state).await,
            Some(since) => self.read_changes(read, since, state).await,
        }
    }

    async fn streams(
        &self,
        resource: &ResourceType,
        since: Option<&Watermark>,
        ways: usize,
    ) -> Result<Vec<Option<Cursor>>, ConnectorError> {
        let Some(read) = read_of(resource.id) else {
            return Ok(vec![None]);
        };
        let of_changes =
            read.reads_changes && since.is_some_and(|mark| self.users_since(&mark.0).is_some());
        if of_changes || self.skipped(read) {
            return Ok(vec![None]);
        }
        if read.fingerprinted || (read.splits && ways >= 2) {
            return self.plan(read, ways, since).await;
        }
        Ok(vec![None])
    }

    fn quota(&self) -> Option<Quota> {
        self.client.api_usage().map(|usage| Quota {
            used: usage.used,
            limit: usage.max,
        })
    }

    fn calls(&self) -> u64 {
        self.client.calls()
    }
}

impl SalesforceReader {
    /// A read from the start sees the org as it is now, not as an earlier read of this reader
    /// cached it.
    async fn forget(&self, read: &Read) {
        match read.mapping {
            Mapping::Users => self.frozen.forget().await,
            Mapping::Assignments => self.components.forget().await,
            Mapping::PermissionSetGroups => {
                self.components.forget().await;
                self.muting.forget().await;
            }
            Mapping::Access(PermissionKind::SetupEntity) => self.entity_names.forget().await,
            _ => {}
        }
        self.probes.lock().await.remove(read.resource.id);
    }

    /// Configured off: nothing is read, and what an earlier sync stored goes.
    fn skipped(&self, read: &Read) -> bool {
        matches!(read.mapping, Mapping::Access(_)) && !self.options.read_access
    }

    /// Plans a full read of `read` as ranges read side by side: reads its first page (which
    /// counts the records), and when many pages are left, the last ID, and cuts the IDs in
    /// between into up to `ways` ranges of about equal size. The first page is kept for the
    /// first stream, so planning costs one call (the last ID) and nothing for a small resource.
    ///
    /// A fingerprinted resource's fingerprint is taken first; when it is `since`, the last
    /// read's, the plan is one stream with nothing to read, or, of a resource held by users
    /// that the options filter, one read of the records of users changed since that read.
    async fn plan(
        &self,
        read: &Read,
        ways: usize,
        since: Option<&Watermark>,
    ) -> Result<Vec<Option<Cursor>>, ConnectorError> {
        self.forget(read).await;
        // What a fingerprint takes besides the rows does not depend on the fields: when more
        // than one query may run at once, it is taken while they are described, not after. A
        // failure here is met again, and handled, when the fingerprint is taken.
        let (fields, _) = tokio::join!(self.fields_of(read), async {
            match read.fingerprinted && ways > 1 {
                true => self.fingerprint_context(read).await.ok(),
                false => None,
            }
        });
        let fields = fields?;
        let query = self.query_for(read, &fields);
        // A resource the last read did not fingerprint (most likely of one page) is read from
        // its first page, which says whether it is worth a fingerprint now.
        let unfingerprinted = since.is_some_and(|mark| !mark.0.starts_with(ROWS_AS_READ));
        let probed = match read.fingerprinted && unfingerprinted {
            true => match self.client.query(&query).await {
                Err(err) if err.code() == Some("INVALID_TYPE") => return Ok(vec![None]),
                other => Some(other.map_err(connector_error)?),
            },
            false => None,
        };
        let small = probed
            .as_ref()
            .is_some_and(|page| page.total_size <= self.max_unfingerprinted_rows);
        // A full read's first page counts what the fingerprint counts when the two select the
        // same rows: taken after the latest rows, it is the count, for no call of its own.
        let same_rows = self.scoped(read, &fields, Holders::Any) == query;
        let counting = (since.is_none() && same_rows).then_some(&query);
        let (taken, early) = match read.fingerprinted && !small {
            true => match self.fingerprint(read, &fields, counting).await {
                Ok(taken) => taken,
                // An object the org lacks: the stream's read says so.
                Err(err) if err.code() == Some("INVALID_TYPE") => return Ok(vec![None]),
                Err(err) => {
                    tracing::warn!(resource = read.resource.id, error = %err, "could not fingerprint; reading whole");
                    (None, None)
                }
            },
            false => (None, None),
        };
        // Read before the fingerprint, the probed page is the read's only without one: a row
        // changed after it but before the latest rows would be in the fingerprint, not the store.
        let early = early.or(probed.filter(|_| small));
        if let (Some(taken), Some(since)) = (&taken, since) {
            let unchanged = CursorState {
                mark: Some(taken.text.clone()),
                newest: taken.newest.clone(),
                ..CursorState::default()
            };
            let unchanged = match taken.against(&since.0) {
                Since::Changed => None,
                Since::Unchanged => Some(CursorState {
                    total: Some(taken.count),
                    unchanged: true,
                    ..unchanged
                }),
                Since::UnchangedRows { users } => self
                    .few_changed_holders(read, users, taken.count)
                    .await
                    .then(|| CursorState {
                        changes_since: Some(users.to_owned()),
                        ..unchanged
                    }),
            };
            if let Some(unchanged) = unchanged {
                tracing::debug!(
                    resource = read.resource.id,
                    records = taken.count,
                    changes_since = unchanged.changes_since,
                    "unchanged since the last read"
                );
                return Ok(vec![Some(unchanged.encode())]);
            }
        }
        // A read of many pages left is split at IDs cut between the first page's last and the
        // highest: where it starts (`None`: not split), with the number of ranges.
        let per_stream = u64::from(self.client.batch_size()) * self.min_stream_pages;
        let split = |first: &QueryPage| -> Option<(SalesforceId, usize)> {
            let left = first.total_size.saturating_sub(first.records.len() as u64);
            let parts = usize::try_from(left / per_stream)
                .unwrap_or(usize::MAX)
                .min(ways);
            let low = first.records.last().and_then(|r| text(r, "Id"))?;
            let low = SalesforceId::parse(&low).ok()?;
            (!first.done && parts >= 2).then_some((low, parts))
        };
        let highest = self.query_for(read, &["Id"]).descending("Id").limit(1);
        // Users' latest stamp is taken before they are read: with the first page, in one call
        // (a composite call's queries run in order), and, where the read may be split, the
        // highest ID too (a round trip fewer before the ranges start; unused, it costs no call).
        // When the first page came with the fingerprint, the highest ID of a split read is asked
        // beside the stamp, not after it.
        let (stamp, first, high) = match (read.reads_changes, early) {
            (true, None) => {
                let splits = read.splits && ways >= 2;
                let (stamp, first, high) = self
                    .latest_user_stamp_then(&query, splits.then_some(&highest))
                    .await
                    .map_err(connector_error)?;
                (Some(stamp), first, high)
            }
            (true, Some(first)) => {
                let (stamp, high) = match split(&first) {
                    Some(_) => {
                        let (stamp, high) =
                            tokio::join!(self.latest_user_stamp(), self.client.query(&highest));
                        (stamp, Some(high))
                    }
                    None => (self.latest_user_stamp().await, None),
                };
                (Some(stamp.map_err(connector_error)?), Ok(first), high)
            }
            (false, Some(first)) => (None, Ok(first), None),
            (false, None) => (None, self.client.query(&query).await, None),
        };
        let user_stamp = stamp.flatten().map(|stamp| self.users_mark(stamp));
        let first = match first {
            Err(err) if err.code() == Some("INVALID_TYPE") => return Ok(vec![None]),
            other => other.map_err(connector_error)?,
        };
        let newest = taken.as_ref().and_then(|taken| taken.newest.clone());
        let mark = user_stamp.or(taken.map(|taken| taken.text));
        let mut cuts = Vec::new();
        if let Some((low, parts)) = split(&first) {
            let high = match high {
                Some(high) => high,
                None => self.client.query(&highest).await,
            };
            let high = high
                .map_err(connector_error)?
                .records
                .first()
                .and_then(|r| text(r, "Id"))
                .and_then(|id| SalesforceId::parse(&id).ok());
            if let Some(high) = high {
                cuts = SalesforceId::cuts(&low, &high, parts);
            }
        }
        let cuts: Vec<String> = cuts.into_iter().map(|id| id.as_str().to_owned()).collect();
        let probe = CursorState {
            // Unsplit, the first page's locator reads on; split, the first range is read by a
            // query of its own after the first page.
            next: match cuts.len() {
                0 => first.next_records_url.clone(),
                _ => None,
            },
            upto: cuts.first().cloned(),
            total: Some(first.total_size),
            mark,
            newest,
            probe: true,
            ..CursorState::default()
        };
        // The ranges after the first: from each cut to the next, the last to the end.
        let ends = cuts.iter().skip(1).cloned().map(Some).chain([None]);
        let following: Vec<CursorState> = cuts
            .iter()
            .cloned()
            .zip(ends)
            .map(|(after, upto)| probe.range(Some(after), upto))
            .collect();
        tracing::debug!(
            resource = read.resource.id,
            records = first.total_size,
            streams = following.len() + 1,
            "planned the read"
        );
        self.probes.lock().await.insert(read.resource.id, first);
        Ok(std::iter::once(&probe)
            .chain(&following)
            .map(|stream| Some(stream.encode()))
            .collect())
    }

    /// A page of a full read: consecutive pages cover the key space in `Id` order.
    async fn read_all(&self, read: &Read, mut state: CursorState) -> Result<Page, ConnectorError> {
        let resource = &read.resource;
        let fields = self.fields_of(read).await?;
        let query = self.query_for(read, &fields);
        let watermark = state.mark.clone().map(Watermark);
        let probed = match state.probe {
            true => self.probes.lock().await.remove(resource.id),
            false => None,
        };
        if state.probe && probed.is_none() {
            // The planned first page is gone (a new reader resumed the run): the locator
            // would go on after that page, so read the range from its start instead.
            state.next = None;
        }
        let result = match probed {
            Some(page) => Ok(page),
            // The setup entities' names, which their mapping needs, are asked for beside the
            // first page (a failure is met again, and handled, when the page is mapped).
            None if matches!(read.mapping, Mapping::Access(PermissionKind::SetupEntity)) => {
                let names = async {
                    let _ = self.setup_entity_names().await;
                };
                tokio::join!(self.first_or_next(resource.id, query, &state), names).0
            }
            None => self.first_or_next(resource.id, query, &state).await,
        };
        let result = match result {
            // Optional objects (permission set groups, permission set licenses) an org lacks.
            Err(err) if err.code() == Some("INVALID_TYPE") => {
                tracing::info!(
                    resource = resource.id,
                    "the org does not have this object; nothing to read"
                );
                return Ok(Page {
                    total: Some(0),
                    coverage: state.rest_of_range(),
                    ..Page::default()
                });
            }
            other => other,
        };
        let query_page = result.map_err(connector_error)?;
        let mut page = Page {
            total: Some(state.total.unwrap_or(query_page.total_size)),
            records: query_page.records.len() as u64,
            watermark: state.keep(watermark, &query_page.records),
            ..Page::default()
        };
        self.map_records(read, &query_page.records, &mut page)
            .await
            .map_err(connector_error)?;
        if query_page.done {
            // A range's last page covers through the range's end, where the next begins.
            page.coverage = Coverage::Range {
                after: state.after,
                through: state.upto,
            };
            return Ok(page);
        }
        let after = query_page
            .records
            .last()
            .and_then(|r| text(r, "Id"))
            .or(state.after.clone());
        page.coverage = Coverage::Range {
            after: state.after.clone(),
            through: after.clone(),
        };
        // The first page of a split read came from the unbounded query: its range goes on
        // with a bounded query of its own, not that query's locator.
        let next = match state.probe && state.upto.is_some() {
            true => None,
            false => query_page.next_records_url,
        };
        let next = CursorState {
            next,
            after,
            phase: 0,
            probe: false,
            ..state
        };
        page.next = Some(next.encode());
        Ok(page)
    }

    /// A page of a read of changes: it covers exactly the records it names.
    async fn read_changes(
        &self,
        read: &Read,
        since: Timestamp,
        mut state: CursorState,
    ) -> Result<Page, ConnectorError> {
        let resource = &read.resource;
        let fields = self.fields_of(read).await?;
        // Skip phases that have no query (no filters configured: nobody can leave them).
        let query = loop {
            match self.change_query(read, state.phase, since, &fields) {
                Some(query) => break Some(query),
                None if state.phase < LAST_PHASE => state.phase += 1,
                None => break None,
            }
        };
        let mut page = Page {
            coverage: Coverage::Records(Vec::new()),
            watermark: state.mark.clone().map(Watermark),
            ..Page::default()
        };
        let Some((query, of_records)) = query else {
            return Ok(page);
        };
        let query_page = self
            .first_or_next(resource.id, query, &state)
            .await
            .map_err(connector_error)?;
        let keys: Vec<String> = query_page
            .records
            .iter()
            .filter_map(|r| text(r, "Id"))
            .collect();
        page.records = query_page.records.len() as u64;
        page.watermark = state.keep(page.watermark.take(), &query_page.records);
        if of_records {
            self.map_records(read, &query_page.records, &mut page)
                .await
                .map_err(connector_error)?;
        }
        let next = if !query_page.done {
            Some(CursorState {
                next: query_page.next_records_url,
                after: keys.last().cloned().or(state.after),
                phase: state.phase,
                mark: state.mark,
                changes_since: state.changes_since,
                newest: state.newest,
                ..CursorState::default()
            })
        } else if state.phase < LAST_PHASE {
            Some(CursorState {
                next: None,
                after: None,
                phase: state.phase + 1,
                mark: state.mark,
                changes_since: state.changes_since,
                newest: state.newest,
                ..CursorState::default()
            })
        } else {
            None
        };
        page.coverage = Coverage::Records(keys);
        page.next = next.as_ref().map(CursorState::encode);
        Ok(page)
    }
}

/// The query of the record `query` selects that was stamped last.
fn newest(query: Query) -> Query {
    query.descending(fingerprint::STAMP).limit(1)
}

/// The stamp of the first record of an answer to [`newest`].
fn stamp_of(page: &QueryPage) -> Option<String> {
    page.records
        .first()
        .and_then(|r| text(r, fingerprint::STAMP))
}

fn connector_error(err: SalesforceError) -> ConnectorError {
    let message = err.to_string();
    match err {
        SalesforceError::DailyLimitExceeded { .. } => ConnectorError::QuotaExhausted { message },
        SalesforceError::Auth { .. } | SalesforceError::Config(_) => {
            ConnectorError::Denied { message }
        }
        SalesforceError::Api { ref code, .. }
            if code.starts_with("INSUFFICIENT_ACCESS") || code == "API_CURRENTLY_DISABLED" =>
        {
            ConnectorError::Denied { message }
        }
        SalesforceError::RetriesExhausted { .. }
        | SalesforceError::Transport { .. }
        | SalesforceError::Html { .. } => ConnectorError::Unavailable { message },
        _ => ConnectorError::Other { message },
    }
}
