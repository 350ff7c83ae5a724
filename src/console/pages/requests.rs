//! Access requests: the form, which shows the plan (the exact Salesforce write and the checks
//! it passed, or why it cannot work) and what a grant would add to the person's sensitive
//! permissions before anything is stored; my requests; the approval queue; a request's page
//! with its timeline, approve, reject and cancel. Planning, storing and deciding are
//! `provisioning::requests`, as for the API.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use provost_connector::model::EntitlementKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::session::{check_csrf, Viewer};
use super::super::view::{page, Problem};
use super::{form, open_org, require, when};
use crate::http::AppState;
use crate::provisioning::plan::{self, EntitlementRef, PlanError, RequestInput};
use crate::provisioning::request::RequestState;
use crate::provisioning::requests::{self, Decision, RequestError};
use crate::provisioning::Action;
use crate::store::provisioning::RequestFilter;
use crate::store::{OrgRecord, Page};

const PAGE_SIZE: u32 = 50;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    view: Option<String>,
    before: Option<i64>,
}

fn row(r: &crate::provisioning::request::AccessRequest) -> Value {
    json!({
        "id": r.id,
        "action": r.action,
        "state": r.state,
        "summary": r.plan.get("summary"),
        "requester": r.requester,
        "created": when(r.created_at),
        "user": r.plan.pointer("/user/name"),
        "entitlement": r.plan.pointer("/entitlement/label"),
    })
}

pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(org): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    let view = params.view.as_deref().unwrap_or(if viewer.roles.approve() {
        "queue"
    } else {
        "mine"
    });
    let filter = match view {
        "mine" => {
            let Some(user) = viewer.session.user_id.clone() else {
                return Err(Problem::bad_request(
                    "a one-time link's admin has no Salesforce user, so no requests of their own: open the queue or all requests",
                ));
            };
            RequestFilter {
                account_id: Some(user),
                ..RequestFilter::default()
            }
        }
        "queue" => {
            require(
                &state,
                &viewer,
                viewer.roles.approve(),
                "the approval queue",
            )
            .await?;
            RequestFilter {
                state: Some(RequestState::PendingApproval),
                ..RequestFilter::default()
            }
        }
        "all" => {
            require(
                &state,
                &viewer,
                viewer.roles.directory() || viewer.roles.audit(),
                "every request",
            )
            .await?;
            RequestFilter::default()
        }
        other => {
            return Err(Problem::bad_request(format!(
                "view={other}: choose mine, queue or all"
            )))
        }
    };
    let filter = RequestFilter {
        before: params.before.filter(|b| *b > 0),
        limit: PAGE_SIZE,
        ..filter
    };
    let found = state.store.list_requests(record.id, &filter).await?;
    let next = (found.len() == PAGE_SIZE as usize)
        .then(|| found.last().map(|r| r.id))
        .flatten();
    page(
        "requests.html",
        Some(&viewer),
        json!({
            "org": org,
            "view": view,
            "requests": found.iter().map(row).collect::<Vec<_>>(),
            "next": next,
        }),
    )
}

/// The form's fields, as sent.
#[derive(Debug, Default, Deserialize)]
pub struct RequestForm {
    csrf: Option<String>,
    step: Option<String>,
    action: Option<String>,
    user: Option<String>,
    entitlement: Option<String>,
    justification: Option<String>,
    ticket: Option<String>,
    expires_on: Option<String>,
}

/// What the form may offer: grantable permission sets, groups of them and public groups.
async fn offered(state: &AppState, record: &OrgRecord) -> Result<Vec<Value>, Problem> {
    let mut offered = Vec::new();
    for kind in [
        EntitlementKind::PermissionSet,
        EntitlementKind::PermissionSetGroup,
        EntitlementKind::PublicGroup,
    ] {
        let found = state
            .store
            .list_entitlements(record.id, Some(kind), Page::first(5000))
            .await?;
        offered.extend(found.into_iter().filter(|e| e.grantable).map(|e| {
            json!({ "id": e.id, "label": e.label, "api_name": e.api_name, "kind": kind.as_str() })
        }));
    }
    offered.sort_by(|a, b| a["label"].as_str().cmp(&b["label"].as_str()));
    Ok(offered)
}

#[derive(Debug, Deserialize)]
pub struct Prefill {
    entitlement: Option<String>,
    user: Option<String>,
    action: Option<String>,
}

pub async fn form_page(
    state: &AppState,
    viewer: &Viewer,
    org: &str,
    record: &OrgRecord,
    fields: &RequestForm,
    outcome: Value,
) -> Result<Response, Problem> {
    let for_others = viewer.roles.approve();
    page(
        "request_new.html",
        Some(viewer),
        json!({
            "org": org,
            "for_others": for_others,
            "offered": offered(state, record).await?,
            "f": {
                "action": fields.action.as_deref().unwrap_or("grant"),
                "user": fields.user,
                "entitlement": fields.entitlement,
                "justification": fields.justification,
                "ticket": fields.ticket,
                "expires_on": fields.expires_on,
            },
            "outcome": outcome,
        }),
    )
}

pub async fn new_form(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(org): Path<String>,
    Query(prefill): Query<Prefill>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    let fields = RequestForm {
        action: prefill.action,
        user: prefill.user,
        entitlement: prefill.entitlement,
        ..RequestForm::default()
    };
    form_page(&state, &viewer, &org, &record, &fields, Value::Null).await
}

/// The request the form describes, for the viewer: a requester asks for themselves only.
fn input_of(viewer: &Viewer, fields: &RequestForm) -> Result<RequestInput, String> {
    let action = match fields.action.as_deref().unwrap_or("grant") {
        "grant" => Action::Grant,
        "revoke" => Action::Revoke,
        other => {
            return Err(format!(
                "action `{other}`: the console asks for grant or revoke"
            ))
        }
    };
    let user = if viewer.roles.approve() {
        fields
            .user
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .or_else(|| viewer.session.user_id.clone())
    } else {
        viewer.session.user_id.clone()
    };
    let Some(user) = user else {
        return Err("name the user (their username, email or id)".to_owned());
    };
    let entitlement = fields
        .entitlement
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .ok_or("choose the permission set or group to ask for")?;
    let expires_at = match fields
        .expires_on
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        None => None,
        Some(date) => {
            let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| format!("the end date `{date}` is not a date (YYYY-MM-DD)"))?;
            Some(format!("{day}T23:59:59Z"))
        }
    };
    let text = |v: &Option<String>, name: &str, most: usize| -> Result<Option<String>, String> {
        match v.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) if t.chars().count() > most => {
                Err(format!("the {name} is longer than {most} characters"))
            }
            other => Ok(other.map(str::to_owned)),
        }
    };
    Ok(RequestInput {
        action,
        user: Some(user),
        entitlement: Some(EntitlementRef::Id(entitlement.to_owned())),
        justification: text(&fields.justification, "justification", 2000)?,
        requester: Some(viewer.actor().to_owned()),
        ticket: text(&fields.ticket, "ticket", 255)?,
        expires_at,
        new_user: None,
        changes: None,
    })
}

/// The sensitive permissions granting `entitlement_id` would add to `account_id`'s (see
/// `reports::effective::gains`); none for a user or entitlement not in the model.
pub(super) async fn gains(
    state: &AppState,
    record: &OrgRecord,
    account_id: &str,
    entitlement_id: &str,
) -> Result<Vec<&'static str>, Problem> {
    let Some(account) = state.store.get_account(record.id, account_id).await? else {
        return Ok(Vec::new());
    };
    crate::reports::effective::gains(&state.store, record, account, entitlement_id)
        .await
        .map_err(|err| Problem::internal(anyhow::anyhow!("{err}")))
}

pub async fn preview_or_submit(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let (org_config, record) = open_org(&state, &viewer, &org).await?;
    let fields: RequestForm = form(&headers, &body)?;
    check_csrf(&state, Some(&viewer), &headers, fields.csrf.as_deref())?;
    let input = match input_of(&viewer, &fields) {
        Ok(input) => input,
        Err(message) => {
            let outcome = json!({ "refused": { "code": "incomplete", "message": message } });
            return form_page(&state, &viewer, &org, &record, &fields, outcome).await;
        }
    };
    if fields.step.as_deref() == Some("submit") {
        let created = requests::create(
            &*state.store,
            org_config,
            &record,
            viewer.actor(),
            input,
            None,
        )
        .await;
        return match created {
            Ok(created) => {
                if created.request.state == RequestState::Approved {
                    state.work.notify_one();
                }
                Ok(Redirect::to(&format!(
                    "/console/orgs/{org}/requests/{}",
                    created.request.id
                ))
                .into_response())
            }
            Err(err) => {
                let outcome = json!({ "refused": refusal(err)? });
                form_page(&state, &viewer, &org, &record, &fields, outcome).await
            }
        };
    }
    let writes = crate::org::writes_for(org_config);
    let outcome = match plan::plan(
        &*state.store,
        record.id,
        &input,
        &*writes,
        chrono::Utc::now(),
    )
    .await
    {
        Ok(planned) => {
            let gains = match (&planned.account_id, &planned.entitlement_id, input.action) {
                (Some(user), Some(entitlement), Action::Grant) => {
                    gains(&state, &record, user, entitlement).await?
                }
                _ => Vec::new(),
            };
            json!({
                "plan": planned.plan,
                "write": serde_json::to_string_pretty(&planned.plan.write).unwrap_or_default(),
                "gains": gains,
            })
        }
        Err(PlanError::Refused(refusal)) => {
            json!({ "refused": { "code": refusal.code, "message": refusal.message } })
        }
        Err(PlanError::Store(err)) => return Err(err.into()),
    };
    form_page(&state, &viewer, &org, &record, &fields, outcome).await
}

/// A refusal in words, or a failure to show as a problem page.
fn refusal(err: RequestError) -> Result<Value, Problem> {
    Ok(match err {
        RequestError::Refused(r) => json!({ "code": r.code, "message": r.message }),
        RequestError::Conflict { code, message } => json!({ "code": code, "message": message }),
        RequestError::Duplicate { message, .. } => {
            json!({ "code": "duplicate_request", "message": message })
        }
        RequestError::Forbidden(message) => json!({ "code": "forbidden", "message": message }),
        RequestError::NotFound(message) => json!({ "code": "not_found", "message": message }),
        RequestError::Store(err) => return Err(err.into()),
    })
}

pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((org, id)): Path<(String, i64)>,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    let request = state
        .store
        .get_request(record.id, id)
        .await?
        .ok_or_else(|| Problem::not_found(format!("no access request {id} in org `{org}`")))?;
    let own = request.requester == viewer.actor()
        || request.created_by == viewer.actor()
        || (request.account_id.is_some() && request.account_id == viewer.session.user_id);
    if !(own || viewer.roles.directory() || viewer.roles.audit()) {
        // As if it did not exist: a requester learns nothing of other people's requests.
        return Err(Problem::not_found(format!(
            "no access request {id} of yours in org `{org}`"
        )));
    }
    let timeline = state.store.request_audit(id).await?;
    let pending = request.state == RequestState::PendingApproval;
    let may_decide = pending
        && viewer.roles.approve()
        && request.requester != viewer.actor()
        && request.created_by != viewer.actor();
    let gains = match (&request.account_id, &request.entitlement_id) {
        (Some(user), Some(entitlement)) if pending && request.action == "grant" => {
            gains(&state, &record, user, entitlement).await?
        }
        _ => Vec::new(),
    };
    let may_cancel = matches!(
        request.state,
        RequestState::PendingApproval | RequestState::Approved
    ) && (request.created_by == viewer.actor() || viewer.roles.approve());
    page(
        "request.html",
        Some(&viewer),
        json!({
            "org": org,
            "r": row(&request),
            "detail": {
                "justification": request.justification,
                "ticket": request.ticket,
                "approver": request.approver,
                "expires": request.expires_at.map(when),
                "error": request.error,
                "checks": request.plan.get("checks"),
                "write": serde_json::to_string_pretty(&request.plan.get("write")).unwrap_or_default(),
                "result": request.result.as_ref().map(|r| serde_json::to_string_pretty(r).unwrap_or_default()),
            },
            "timeline": timeline.iter().map(|e| json!({
                "at": when(e.at), "actor": e.actor, "event": e.event,
                "comment": serde_json::from_str::<Value>(&e.data).ok().and_then(|d| d.get("comment").cloned()),
            })).collect::<Vec<_>>(),
            "gains": gains,
            "pending_grant": pending && request.action == "grant",
            "may_decide": may_decide,
            "may_cancel": may_cancel,
            "own_pending": pending && viewer.roles.approve() && !may_decide,
        }),
    )
}

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    csrf: Option<String>,
    decision: Option<String>,
    comment: Option<String>,
}

pub async fn decide(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((org, id)): Path<(String, i64)>,
    body: Bytes,
) -> Result<Response, Problem> {
    let (_, record) = open_org(&state, &viewer, &org).await?;
    let fields: DecisionForm = form(&headers, &body)?;
    check_csrf(&state, Some(&viewer), &headers, fields.csrf.as_deref())?;
    let decision = match fields.decision.as_deref() {
        Some("approve") => Decision::Approve,
        Some("reject") => Decision::Reject,
        Some("cancel") => Decision::Cancel,
        other => {
            return Err(Problem::bad_request(format!(
                "decision {other:?}: approve, reject or cancel"
            )))
        }
    };
    if decision != Decision::Cancel {
        require(
            &state,
            &viewer,
            viewer.roles.approve(),
            "approving or rejecting requests",
        )
        .await?;
    }
    let comment = fields
        .comment
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if comment.as_ref().is_some_and(|c| c.chars().count() > 2000) {
        return Err(Problem::bad_request(
            "the comment is longer than 2000 characters",
        ));
    }
    let decided = requests::decide(
        &*state.store,
        &record,
        id,
        viewer.actor(),
        viewer.roles.approve(),
        decision,
        comment,
    )
    .await;
    match decided {
        Ok(request) => {
            if request.state == RequestState::Approved {
                state.work.notify_one();
            }
            Ok(Redirect::to(&format!("/console/orgs/{org}/requests/{id}")).into_response())
        }
        Err(RequestError::Store(err)) => Err(err.into()),
        Err(RequestError::NotFound(message)) => Err(Problem::not_found(message)),
        Err(RequestError::Forbidden(message)) => Err(Problem::forbidden(message)),
        Err(other) => Err(Problem::new(
            axum::http::StatusCode::CONFLICT,
            "Cannot do that",
            refusal(other)?["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )),
    }
}
