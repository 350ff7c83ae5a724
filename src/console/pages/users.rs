//! Users: a searchable, filterable list paged on the server (through the SCIM service's
//! filters, the same engine as `/scim/v2/Users?filter=`), and a user's page: profile, role,
//! license, every entitlement and how it is held, the effective system permissions with their
//! paths, the change history and their requests.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use provost_connector::model::EntitlementKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::session::Viewer;
use super::super::view::{page, Problem};
use super::{open_org, require, when};
use crate::http::AppState;
use crate::scim::schema::PROVOST_USER;
use crate::store::provisioning::RequestFilter;
use crate::store::sync::Entity;
use crate::store::Page;

const PAGE_SIZE: u64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct UserFilters {
    q: Option<String>,
    #[serde(rename = "type")]
    user_type: Option<String>,
    profile: Option<String>,
    role: Option<String>,
    active: Option<String>,
    frozen: Option<String>,
    holds: Option<String>,
    page: Option<u64>,
}

/// A SCIM string literal (JSON's), so any text the person typed stays a value.
fn literal(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

/// The SCIM filter the form's fields make; every value is a literal, never syntax.
fn scim_filter(filters: &UserFilters) -> Result<Option<String>, Problem> {
    let mut terms = Vec::new();
    fn given(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }
    if let Some(q) = given(&filters.q) {
        if q.chars().count() > 200 {
            return Err(Problem::bad_request("search for at most 200 characters"));
        }
        let q = literal(q);
        terms.push(format!("(userName co {q} or displayName co {q})"));
    }
    if let Some(t) = given(&filters.user_type) {
        terms.push(format!("userType eq {}", literal(t)));
    }
    if let Some(p) = given(&filters.profile) {
        terms.push(format!("{PROVOST_USER}:profileId eq {}", literal(p)));
    }
    if let Some(r) = given(&filters.role) {
        terms.push(format!("{PROVOST_USER}:roleId eq {}", literal(r)));
    }
    for (name, value, attr) in [
        ("active", &filters.active, "active".to_owned()),
        ("frozen", &filters.frozen, format!("{PROVOST_USER}:frozen")),
    ] {
        match given(value) {
            None | Some("either") => {}
            Some("yes") => terms.push(format!("{attr} eq true")),
            Some("no") => terms.push(format!("{attr} eq false")),
            Some(other) => {
                return Err(Problem::bad_request(format!(
                    "{name}={other}: choose yes, no or either"
                )))
            }
        }
    }
    if let Some(h) = given(&filters.holds) {
        terms.push(format!(
            "(entitlements.value eq {id} or groups.value eq {id})",
            id = literal(h)
        ));
    }
    Ok((!terms.is_empty()).then(|| terms.join(" and ")))
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(org): Path<String>,
    Query(filters): Query<UserFilters>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    require(
        &state,
        &viewer,
        viewer.roles.directory(),
        "the user directory",
    )
    .await?;
    let filter = scim_filter(&filters)?;
    let page_number = filters.page.unwrap_or(1).clamp(1, 100_000);
    let resource = crate::scim::schema::resource_type("User").expect("the User resource type");
    let scope = crate::scim::Scope {
        store: &*state.store,
        org: record.clone(),
        base: format!("/orgs/{org}/scim/v2"),
        timeout: Duration::from_millis(state.config.server.query_timeout_ms),
    };
    let params = crate::scim::ListParams {
        filter,
        sort_by: Some("userName".to_owned()),
        start_index: Some(json!((page_number - 1) * PAGE_SIZE + 1)),
        count: Some(json!(PAGE_SIZE)),
        ..Default::default()
    };
    let (found, more) = scope
        .page(resource, &params)
        .await
        .map_err(|err| Problem::bad_request(err.detail.clone()))?;
    let users: Vec<Value> = found
        .iter()
        .map(|u| {
            let ext = &u[PROVOST_USER];
            json!({
                "id": u["id"],
                "username": u["userName"],
                "name": u["displayName"],
                "type": u["userType"],
                "active": u["active"],
                "frozen": ext["frozen"],
                "profile": ext["profile"],
                "role": ext["role"],
                "last_login": ext["lastLogin"],
            })
        })
        .collect();
    let store = state.store.clone();
    let choices = |kind| {
        let store = store.clone();
        async move {
            store
                .list_entitlements(record.id, Some(kind), Page::first(2000))
                .await
                .map(|found| {
                    found
                        .into_iter()
                        .map(|e| json!({ "id": e.id, "label": e.label }))
                        .collect::<Vec<_>>()
                })
        }
    };
    let profiles = choices(EntitlementKind::Profile).await?;
    let roles = choices(EntitlementKind::Role).await?;
    let query = serde_urlencoded::to_string([
        ("q", filters.q.clone().unwrap_or_default()),
        ("type", filters.user_type.clone().unwrap_or_default()),
        ("profile", filters.profile.clone().unwrap_or_default()),
        ("role", filters.role.clone().unwrap_or_default()),
        ("active", filters.active.clone().unwrap_or_default()),
        ("frozen", filters.frozen.clone().unwrap_or_default()),
        ("holds", filters.holds.clone().unwrap_or_default()),
    ])
    .unwrap_or_default();
    page(
        "users.html",
        Some(&viewer),
        json!({
            "org": org,
            "users": users,
            "pages": {
                "page": page_number,
                "prev": (page_number > 1).then(|| page_number - 1),
                "next": more.then(|| page_number + 1),
            },
            "query": query,
            "f": {
                "q": filters.q, "type": filters.user_type, "profile": filters.profile,
                "role": filters.role, "active": filters.active, "frozen": filters.frozen,
                "holds": filters.holds,
            },
            "profiles": profiles,
            "roles": roles,
        }),
    )
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    let own = viewer.session.user_id.as_deref() == Some(id.as_str());
    require(
        &state,
        &viewer,
        own || viewer.roles.directory(),
        "other users' pages",
    )
    .await?;
    let account = state
        .store
        .get_account(record.id, &id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no user `{id}` in org `{org}`")))?;
    let grants = state.store.grants_of_account(record.id, &id).await?;
    let mut ids: Vec<String> = grants.iter().map(|g| g.entitlement_id.clone()).collect();
    for group in grants
        .iter()
        .filter_map(|g| g.source.encode().strip_prefix("group:").map(str::to_owned))
    {
        ids.push(group);
    }
    let entitlements: HashMap<String, provost_connector::model::Entitlement> = state
        .store
        .entitlements_by_ids(record.id, &ids)
        .await?
        .into_iter()
        .map(|e| (e.entitlement.id.clone(), e.entitlement))
        .collect();
    let label = |id: &str| {
        entitlements
            .get(id)
            .map_or_else(|| id.to_owned(), |e| e.label.clone())
    };
    let mut held: Vec<Value> = grants
        .iter()
        .map(|g| {
            let source = g.source.encode();
            let e = entitlements.get(&g.entitlement_id);
            let how = match (e.map(|e| e.kind), source.strip_prefix("group:")) {
                (_, Some(group)) => format!("through group {}", label(group)),
                (Some(EntitlementKind::Profile), _) => "the user's profile".to_owned(),
                (Some(EntitlementKind::Role), _) => "the user's role".to_owned(),
                (Some(EntitlementKind::UserLicense), _) => "the user's license".to_owned(),
                _ if source == "profile" => "through the user's profile".to_owned(),
                _ => "assigned directly".to_owned(),
            };
            json!({
                "id": g.entitlement_id,
                "label": label(&g.entitlement_id),
                "kind": e.map(|e| e.kind.as_str()),
                "how": how,
                "expires": g.expires_at.map(when),
            })
        })
        .collect();
    held.sort_by(|a, b| {
        (a["kind"].as_str(), a["label"].as_str()).cmp(&(b["kind"].as_str(), b["label"].as_str()))
    });
    let effective = crate::reports::effective::of_user(&state.store, &record, account.clone())
        .await
        .map_err(|err| Problem::internal(anyhow::anyhow!("{err}")))?;
    let history = state.store.changes_of_user(record.id, &id, 50).await?;
    // The entitlements of grants the user no longer holds, for their names.
    let gone: Vec<String> = history
        .iter()
        .filter_map(|c| {
            c.after
                .as_ref()
                .or(c.before.as_ref())
                .and_then(|row| row["entitlement_id"].as_str())
                .filter(|e| !entitlements.contains_key(*e))
                .map(str::to_owned)
        })
        .collect();
    let mut entitlements = entitlements;
    for found in state.store.entitlements_by_ids(record.id, &gone).await? {
        entitlements.insert(found.entitlement.id.clone(), found.entitlement);
    }
    let label = |id: &str| {
        entitlements
            .get(id)
            .map_or_else(|| id.to_owned(), |e| e.label.clone())
    };
    let requests = state
        .store
        .list_requests(
            record.id,
            &RequestFilter {
                account_id: Some(id.clone()),
                limit: 20,
                ..RequestFilter::default()
            },
        )
        .await?;
    let attr = |key: &str| {
        account
            .attributes
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let name_of = |key: &str| attr(key).map(|id| label(&id));
    page(
        "user.html",
        Some(&viewer),
        json!({
            "org": org,
            "own": own,
            "user": {
                "id": account.id,
                "username": account.username,
                "name": account.display_name,
                "email": account.email,
                "active": account.active,
                "type": account.user_type,
                "frozen": account.attributes.get("IsFrozen") == Some(&Value::Bool(true)),
                "profile": name_of("ProfileId"),
                "role": name_of("UserRoleId"),
                "license": name_of("UserLicenseId"),
                "last_login": attr("LastLoginDate"),
            },
            "held": held,
            "effective": effective.iter().map(|row| json!({
                "permission": row["permission"],
                "via": row["via_type"],
                "via_name": row["via_api_name"],
                "component": row["via_component_api_name"],
                "effective": row["effective"],
                "muted_by": row["muted_by"],
            })).collect::<Vec<_>>(),
            "history": history.iter().map(|c| {
                let grant = c.after.as_ref().or(c.before.as_ref()).filter(|_| c.entity == Entity::Grant);
                json!({
                    "at": when(c.observed_at),
                    "what": match grant.and_then(|g| g["entitlement_id"].as_str()) {
                        Some(entitlement) => label(entitlement),
                        None => "the user".to_owned(),
                    },
                    "op": c.op,
                    "fields": c.fields,
                    "request": c.request_id,
                })
            }).collect::<Vec<_>>(),
            "requests": requests.iter().map(|r| json!({
                "id": r.id, "action": r.action, "state": r.state,
                "summary": r.plan.get("summary"), "created": when(r.created_at),
            })).collect::<Vec<_>>(),
        }),
    )
}
