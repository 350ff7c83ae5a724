//! Provost as a SCIM 2.0 service provider (RFC 7643, RFC 7644) for each org's synced model:
//! Users, Groups (grantable permission sets, permission set groups and public groups),
//! and the read-only Entitlements and Roles catalogs.
//!
//! - [`filter`] parses filters and PATCH paths; [`criteria`] resolves them, through the
//!   attribute tables of [`schema`] (which `/Schemas` also publishes), into what the store
//!   selects and sorts by; the store writes the SQL.
//! - [`resources`] renders stored rows as resources, [`projection`] applies `attributes` and
//!   `excludedAttributes`; this module lists and reads them.
//! - [`writes`] turns creates, replaces, patches and deletes into access requests that the
//!   provisioning executor carries out, and answers once Salesforce confirmed them.
//! - [`discovery`] serves `ServiceProviderConfig`, `ResourceTypes` and `Schemas`.
//!
//! The HTTP routes are in `crate::http::scim`.

pub mod criteria;
pub mod discovery;
pub mod error;
pub mod filter;
mod patch;
pub mod projection;
pub mod resources;
pub mod schema;
pub mod writes;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::scim::{
    Column, Criterion, Order, QueryDeadline, ScimQuery, ScimTable, ScimUser, TextOp,
};
use crate::store::{OrgRecord, Store, StoreError};
use criteria::Target;
pub use error::ScimError;
use schema::ResourceType;

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The most resources one page returns (`filter.maxResults` in ServiceProviderConfig).
pub const MAX_RESULTS: u32 = 1000;
/// The page size when the client gives no `count`.
pub const DEFAULT_COUNT: u32 = 100;

/// A query's parameters, from the URL of a GET or the body of a `POST .search`. Numbers come
/// as text in a URL and as numbers in a body; both are accepted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    pub filter: Option<String>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
    pub start_index: Option<Value>,
    pub count: Option<Value>,
    pub attributes: Option<Value>,
    pub excluded_attributes: Option<Value>,
    #[serde(default)]
    pub schemas: Option<Value>,
}

fn integer(name: &str, value: &Option<Value>) -> Result<Option<i64>, ScimError> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| ScimError::invalid_value(format!("{name} must be an integer")))
}

/// `attributes` as a comma-separated list, from text or a JSON array of names.
fn names(value: &Option<Value>) -> Option<String> {
    match value {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}

impl ListParams {
    /// `startIndex` and `count` as RFC 7644 section 3.4.2.4 reads them: below 1 means 1, a
    /// negative count means 0; at most [`MAX_RESULTS`].
    fn page(&self) -> Result<(i64, u32), ScimError> {
        let start = integer("startIndex", &self.start_index)?
            .unwrap_or(1)
            .max(1);
        let count = integer("count", &self.count)?
            .unwrap_or(i64::from(DEFAULT_COUNT))
            .clamp(0, i64::from(MAX_RESULTS)) as u32;
        Ok((start, count))
    }

    fn descending(&self) -> Result<bool, ScimError> {
        match self.sort_order.as_deref() {
            None => Ok(false),
            Some(o) if o.eq_ignore_ascii_case("ascending") => Ok(false),
            Some(o) if o.eq_ignore_ascii_case("descending") => Ok(true),
            Some(other) => Err(ScimError::invalid_value(format!(
                "sortOrder={other}: use ascending or descending"
            ))),
        }
    }

    pub fn attributes(&self) -> Option<String> {
        names(&self.attributes)
    }

    pub fn excluded_attributes(&self) -> Option<String> {
        names(&self.excluded_attributes)
    }
}

/// Where an org's resources live, for `meta.location` and `$ref`.
pub struct Scope<'a> {
    pub store: &'a dyn Store,
    pub org: OrgRecord,
    pub base: String,
    /// How long the queries of one read (a page with its count, a search of every type, one
    /// resource) may run in all (`server.query_timeout_ms`).
    pub timeout: std::time::Duration,
}

fn table(resource: &ResourceType) -> ScimTable {
    match resource.name {
        "User" => ScimTable::Accounts,
        "Group" => ScimTable::Groups,
        "Entitlement" => ScimTable::Entitlements,
        _ => ScimTable::Roles,
    }
}

impl Scope<'_> {
    fn target(&self, resource: &'static ResourceType) -> Target {
        Target { resource }
    }

    /// Renders the Groups, Entitlements or Roles with these ids, in this order (unknown ids
    /// are left out). Users come with their rows from [`Self::select`].
    async fn load(
        &self,
        resource: &'static ResourceType,
        ids: &[String],
    ) -> Result<Vec<Value>, StoreError> {
        let (store, org, base) = (self.store, self.org.id, self.base.as_str());
        Ok(match resource.name {
            "Group" => {
                let entitlements = store.entitlements_by_ids(org, ids).await?;
                let members = store.members_of(org, ids).await?;
                resources::groups(base, ids, entitlements, &members)
            }
            _ => {
                let entitlements = store.entitlements_by_ids(org, ids).await?;
                let licenses: Vec<String> = entitlements
                    .iter()
                    .filter_map(|e| resources::license_of(&e.entitlement))
                    .map(str::to_owned)
                    .collect::<HashSet<_>>()
                    .into_iter()
                    .collect();
                let labels: HashMap<String, String> = store
                    .entitlements_by_ids(org, &licenses)
                    .await?
                    .into_iter()
                    .map(|e| (e.entitlement.id, e.entitlement.label))
                    .collect();
                let mut by_id: HashMap<String, _> = entitlements
                    .into_iter()
                    .map(|e| (e.entitlement.id.clone(), e))
                    .collect();
                ids.iter()
                    .filter_map(|id| by_id.remove(id))
                    .map(|e| resources::catalog_entry(base, &e, &labels))
                    .collect()
            }
        })
    }

    /// A page of resources, and how many match in all. Users come with their rows in one
    /// query; the others by id.
    async fn select(
        &self,
        resource: &'static ResourceType,
        query: ScimQuery<'_>,
    ) -> Result<(Found, u64), StoreError> {
        if resource.name == "User" {
            let (page, total) = self.store.scim_accounts(self.org.id, query).await?;
            return Ok((Found::Users(page), total));
        }
        let (ids, total) = self.store.scim_select(self.org.id, query).await?;
        Ok((Found::Rendered(self.load(resource, &ids).await?), total))
    }

    /// One resource, if it exists as this type (a role is not a Group).
    pub async fn get(&self, resource: &'static ResourceType, id: &str) -> Result<Value, ScimError> {
        let deadline = QueryDeadline::after(self.timeout);
        let filter = Criterion::Text {
            column: Column::Id,
            op: TextOp::Eq,
            value: id.to_owned(),
            case_exact: true,
        };
        let query = ScimQuery {
            table: table(resource),
            filter: Some(&filter),
            order: Order {
                by: None,
                descending: false,
            },
            offset: 0,
            limit: 1,
            counted: None,
            deadline,
        };
        self.select(resource, query)
            .await?
            .0
            .into_values(&self.base)
            .pop()
            .ok_or_else(|| ScimError::not_found(format!("no {} with id `{id}`", resource.name)))
    }

    /// A page of resources matching the query, as a ListResponse, serialised.
    pub async fn list(
        &self,
        resource: &'static ResourceType,
        params: &ListParams,
    ) -> Result<String, ScimError> {
        let deadline = QueryDeadline::after(self.timeout);
        let target = self.target(resource);
        let compiled = match params.filter.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => {
                Some(criteria::resolve(&target, &filter::parse(text)?)?)
            }
            _ => None,
        };
        let descending = params.descending()?;
        let order = criteria::order_by(&target, params.sort_by.as_deref(), descending)?;
        let (start, count) = params.page()?;
        let query = ScimQuery {
            table: table(resource),
            filter: compiled.as_ref(),
            order,
            offset: (start - 1) as u64,
            limit: count,
            counted: None,
            deadline,
        };
        let (found, total) = self.select(resource, query).await.map_err(filter_cost)?;
        Ok(list_response(params, start, total, found, &self.base))
    }

    /// A page of resources matching the query, as resources, and whether more follow: no count
    /// of every match (for lists that page forward and back, such as the console's, where a
    /// filter over every user would cost more than the page itself).
    pub async fn page(
        &self,
        resource: &'static ResourceType,
        params: &ListParams,
    ) -> Result<(Vec<Value>, bool), ScimError> {
        let deadline = QueryDeadline::after(self.timeout);
        let target = self.target(resource);
        let compiled = match params.filter.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => {
                Some(criteria::resolve(&target, &filter::parse(text)?)?)
            }
            _ => None,
        };
        let order = criteria::order_by(&target, params.sort_by.as_deref(), params.descending()?)?;
        let (start, count) = params.page()?;
        let query = ScimQuery {
            table: table(resource),
            filter: compiled.as_ref(),
            order,
            offset: (start - 1) as u64,
            // One more than asked: whether a next page exists, without counting.
            limit: count + 1,
            counted: Some(0),
            deadline,
        };
        let (found, _) = self.select(resource, query).await.map_err(filter_cost)?;
        let mut values = found.into_values(&self.base);
        let more = values.len() > count as usize;
        values.truncate(count as usize);
        Ok((values, more))
    }

    /// `POST /.search` at the root: every resource type, Users, then Groups, Entitlements and
    /// Roles, as one list (sorted within each type when `sortBy` applies to it). A type the
    /// filter cannot apply to (it names an attribute the type lacks) has no matches.
    pub async fn search_all(&self, params: &ListParams) -> Result<String, ScimError> {
        let deadline = QueryDeadline::after(self.timeout);
        let parsed = match params.filter.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => Some(filter::parse(text)?),
            _ => None,
        };
        let (start, count) = params.page()?;
        let descending = params.descending()?;
        let mut skip = (start - 1) as u64;
        let mut room = count;
        let mut total = 0u64;
        let mut items = Vec::new();
        let mut applied = false;
        let mut first_error = None;
        for resource in schema::RESOURCE_TYPES {
            let target = self.target(resource);
            let compiled = match &parsed {
                None => None,
                Some(f) => {
                    // Too costly for one type is refused as such, not skipped like a type
                    // that lacks the filter's attributes.
                    criteria::within_limits(&target, f)?;
                    match criteria::resolve(&target, f) {
                        Ok(sql) => Some(sql),
                        Err(err) => {
                            first_error.get_or_insert(err);
                            continue;
                        }
                    }
                }
            };
            let order = match criteria::order_by(&target, params.sort_by.as_deref(), descending) {
                Ok(order) => order,
                // Sorting by an attribute this type lacks: its id order.
                Err(_) => criteria::order_by(&target, None, descending)?,
            };
            applied = true;
            let counted = ScimQuery {
                table: table(resource),
                filter: compiled.as_ref(),
                order,
                offset: 0,
                limit: 0,
                counted: None,
                deadline,
            };
            let (_, matching) = self
                .store
                .scim_select(self.org.id, counted)
                .await
                .map_err(filter_cost)?;
            total += matching;
            if skip >= matching {
                skip -= matching;
                continue;
            }
            if room > 0 {
                let query = ScimQuery {
                    offset: skip,
                    limit: room,
                    counted: Some(matching),
                    ..counted
                };
                let (found, _) = self.select(resource, query).await.map_err(filter_cost)?;
                let found = found.into_values(&self.base);
                room -= found.len() as u32;
                items.extend(found);
            }
            skip = 0;
        }
        if !applied {
            return Err(
                first_error.unwrap_or_else(|| ScimError::invalid_filter("no resource type"))
            );
        }
        Ok(list_response(
            params,
            start,
            total,
            Found::Rendered(items),
            &self.base,
        ))
    }
}

/// A list or search whose queries ran out of time was asked too much of: its filter is what
/// to change. (A read of one resource out of time is the database's trouble: 503.)
fn filter_cost(err: StoreError) -> ScimError {
    match err {
        StoreError::TimedOut(limit) => ScimError::invalid_filter(format!(
            "the filter's queries ran longer than the {} ms one SCIM read may take (server.query_timeout_ms) and were stopped: \
             narrow the filter (fewer terms, fewer tests of multi-valued attributes, eq or sw rather than co)",
            limit.as_millis()
        )),
        other => other.into(),
    }
}

/// A page as read: users with their rows (rendered as they are serialised), or rendered
/// resources.
enum Found {
    Users(Vec<ScimUser>),
    Rendered(Vec<Value>),
}

impl Found {
    fn into_values(self, base: &str) -> Vec<Value> {
        match self {
            Found::Users(rows) => rows
                .iter()
                .map(|user| resources::user(base, user))
                .collect(),
            Found::Rendered(values) => values,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse<T> {
    schemas: [&'static str; 1],
    total_results: u64,
    start_index: i64,
    items_per_page: usize,
    #[serde(rename = "Resources")]
    resources: Vec<T>,
}

/// A ListResponse of `found`, projected as the query asks, serialised. Users the query does
/// not project are serialised from their rows, without building JSON values first.
fn list_response(params: &ListParams, start: i64, total: u64, found: Found, base: &str) -> String {
    fn serialise<T: Serialize>(start: i64, total: u64, resources: Vec<T>) -> String {
        serde_json::to_string(&ListResponse {
            schemas: [LIST_RESPONSE],
            total_results: total,
            start_index: start,
            items_per_page: resources.len(),
            resources,
        })
        .expect("a ListResponse serialises")
    }
    let attributes = params.attributes();
    let excluded = params.excluded_attributes();
    match found {
        Found::Users(rows) if !projection::asked(attributes.as_deref(), excluded.as_deref()) => {
            let users = rows
                .iter()
                .map(|user| resources::User::new(base, user))
                .collect();
            serialise(start, total, users)
        }
        found => {
            let items: Vec<Value> = found
                .into_values(base)
                .into_iter()
                .map(|r| projection::project(r, attributes.as_deref(), excluded.as_deref()))
                .collect();
            serialise(start, total, items)
        }
    }
}
