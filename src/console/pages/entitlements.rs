//! Entitlements: the catalog (profiles, permission sets and groups, public groups, roles,
//! licenses) with holder counts, searchable and paged; an entitlement's page with its holders
//! (paged), what it grants (its sensitive system permissions), the license it needs and its
//! recent changes.

use axum::extract::{Path, Query, State};
use axum::response::Response;
use provost_connector::model::EntitlementKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::session::Viewer;
use super::super::view::{page, Problem};
use super::{open_org, pages, require, when};
use crate::http::AppState;
use crate::store::sync::{ChangeQuery, Entity};

const PAGE_SIZE: u32 = 50;

#[derive(Debug, Deserialize)]
pub struct CatalogFilters {
    kind: Option<String>,
    q: Option<String>,
    page: Option<u64>,
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(org): Path<String>,
    Query(filters): Query<CatalogFilters>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    require(
        &state,
        &viewer,
        viewer.roles.directory(),
        "the entitlement catalog",
    )
    .await?;
    let kind = match filters.kind.as_deref().filter(|k| !k.is_empty()) {
        None => None,
        Some(text) => Some(text.parse::<EntitlementKind>().map_err(|_| {
            Problem::bad_request(format!(
                "kind={text}: choose profile, permission_set, permission_set_group, role, public_group, user_license or permission_set_license"
            ))
        })?),
    };
    let search = filters
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty());
    if search.is_some_and(|q| q.chars().count() > 200) {
        return Err(Problem::bad_request("search for at most 200 characters"));
    }
    let page_number = filters.page.unwrap_or(1).clamp(1, 100_000);
    let (entries, total) = state
        .store
        .catalog(
            record.id,
            kind,
            search,
            (page_number - 1) * u64::from(PAGE_SIZE),
            PAGE_SIZE,
        )
        .await?;
    let query = serde_urlencoded::to_string([
        ("kind", filters.kind.clone().unwrap_or_default()),
        ("q", filters.q.clone().unwrap_or_default()),
    ])
    .unwrap_or_default();
    page(
        "entitlements.html",
        Some(&viewer),
        json!({
            "org": org,
            "entries": entries.iter().map(|e| json!({
                "id": e.entitlement.id,
                "kind": e.entitlement.kind.as_str(),
                "api_name": e.entitlement.api_name,
                "label": e.entitlement.label,
                "grantable": e.entitlement.grantable,
                "holders": e.holders,
            })).collect::<Vec<_>>(),
            "pages": pages(page_number, u64::from(PAGE_SIZE), total),
            "query": query,
            "f": { "kind": filters.kind, "q": filters.q },
            "kinds": ["profile", "permission_set", "permission_set_group", "role", "public_group", "user_license", "permission_set_license"],
        }),
    )
}

#[derive(Debug, Deserialize)]
pub struct HolderPage {
    after: Option<String>,
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((org, id)): Path<(String, String)>,
    Query(paging): Query<HolderPage>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    require(
        &state,
        &viewer,
        viewer.roles.directory(),
        "the entitlement catalog",
    )
    .await?;
    let entitlement = state
        .store
        .get_entitlement(record.id, &id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no entitlement `{id}` in org `{org}`")))?;
    // The cursor is `USER.GRANT`, as the page's "next" link gives it.
    let after = paging
        .after
        .as_deref()
        .filter(|a| a.len() <= 64)
        .and_then(|a| a.split_once('.'));
    let (holders, total) = state
        .store
        .holders_page(record.id, &id, after, PAGE_SIZE)
        .await?;
    let next = (holders.len() == PAGE_SIZE as usize)
        .then(|| {
            holders
                .last()
                .map(|h| format!("{}.{}", h.account.id, h.grant_id))
        })
        .flatten();
    let grants: Vec<&str> = entitlement
        .attributes
        .get("system_permissions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let license = ["LicenseId", "PermissionSetLicenseId", "UserLicenseId"]
        .iter()
        .find_map(|key| entitlement.attributes.get(*key).and_then(Value::as_str));
    let license = match license {
        Some(license_id) => state
            .store
            .get_entitlement(record.id, license_id)
            .await?
            .map_or_else(|| license_id.to_owned(), |l| l.label),
        None => String::new(),
    };
    let changes = state
        .store
        .list_changes(
            record.id,
            &ChangeQuery {
                entity: Some(Entity::Entitlement),
                object_id: Some(id.clone()),
                limit: 20,
                ..Default::default()
            },
        )
        .await?;
    page(
        "entitlement.html",
        Some(&viewer),
        json!({
            "org": org,
            "e": {
                "id": entitlement.id,
                "kind": entitlement.kind.as_str(),
                "api_name": entitlement.api_name,
                "label": entitlement.label,
                "description": entitlement.description,
                "grantable": entitlement.grantable,
            },
            "grants": grants,
            "license": license,
            "holders": holders.iter().map(|h| json!({
                "id": h.account.id,
                "username": h.account.username,
                "name": h.account.display_name,
                "active": h.account.active,
                "source": h.source,
                "expires": h.expires_at.map(when),
            })).collect::<Vec<_>>(),
            "total": total,
            "next": next,
            "changes": changes.iter().map(|c| json!({
                "at": when(c.observed_at), "op": c.op, "fields": c.fields, "request": c.request_id,
            })).collect::<Vec<_>>(),
        }),
    )
}
