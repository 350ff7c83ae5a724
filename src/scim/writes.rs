//! SCIM writes as access requests. A POST, PUT, PATCH or DELETE is compared with the resource
//! as stored, and each difference becomes the request that makes it in Salesforce (create,
//! update, deactivate or reactivate a user; change their profile or role, freeze or unfreeze
//! them; grant or revoke a Group), planned and checked
//! like any other, approved by the SCIM client (its identity provider decided the
//! assignment) and carried out by the provisioning executor with its audit trail and
//! exactly-once guarantee. The answer waits until Salesforce confirmed every write.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;
use tokio::sync::Notify;

use super::error::ScimError;
use super::schema::{self, ResourceType};
use super::{patch, Scope};
use crate::config::OrgConfig;
use crate::provisioning::plan::{
    self, EntitlementRef, NewUser, PlanError, Refusal, RequestInput, UserChanges,
};
use crate::provisioning::request::{AccessRequest, RequestState};
use crate::provisioning::requests::{self, Approval, RequestError};
use crate::provisioning::Action;

/// What a write needs beyond the read scope.
pub struct Writer<'a> {
    pub scope: &'a Scope<'a>,
    pub org_config: &'a OrgConfig,
    /// The token's name: the requests' creator, and their approver as `scim:NAME`.
    pub caller: &'a str,
    pub work: &'a Notify,
    /// How long an answer waits for Salesforce before saying the write is still under way.
    pub wait: Duration,
}

/// Whether a stored attribute's change is "absent means clear" (PUT, PATCH remove) or "absent
/// means keep" (PUT of an attribute whose clearing would lock users out: externalId).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Put,
    Patch,
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// The value at `path` (keys matched case-insensitively, as SCIM attribute names are).
fn value_at<'v>(doc: &'v Value, path: &[&str]) -> Option<&'v Value> {
    let mut at = doc;
    for key in path {
        at = at
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)?;
    }
    Some(at)
}

fn text_at<'v>(doc: &'v Value, path: &[&str]) -> Option<&'v str> {
    value_at(doc, path)?.as_str()
}

/// The boolean at `path`, if given (`"True"`/`"False"` too, as Entra ID sends them).
fn bool_at(doc: &Value, path: &[&str]) -> Result<Option<bool>, ScimError> {
    match value_at(doc, path) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => as_bool(value).map(Some).ok_or_else(|| {
            ScimError::invalid_value(format!(
                "{} must be true or false, not {value}",
                path.last().copied().unwrap_or_default()
            ))
        }),
    }
}

/// The email a user document gives: the primary one, else the first.
fn email_of(doc: &Value) -> Option<String> {
    let emails = doc
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("emails"))?
        .1
        .as_array()?;
    emails
        .iter()
        .find(|e| e.get("primary").and_then(as_bool) == Some(true))
        .or_else(|| emails.first())
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn active_of(doc: &Value) -> Result<Option<bool>, ScimError> {
    bool_at(doc, &["active"])
}

/// A user's own fields as a document gives them.
struct UserFields {
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    title: Option<String>,
    department: Option<String>,
    federation_id: Option<String>,
}

fn fields_of(doc: &Value) -> UserFields {
    let owned = |v: Option<&str>| v.map(str::to_owned);
    UserFields {
        username: owned(text_at(doc, &["userName"])),
        email: email_of(doc),
        first_name: owned(text_at(doc, &["name", "givenName"])),
        last_name: owned(text_at(doc, &["name", "familyName"])),
        title: owned(text_at(doc, &["title"])),
        department: owned(text_at(doc, &[schema::ENTERPRISE, "department"])),
        federation_id: owned(text_at(doc, &["externalId"])),
    }
}

/// The user's field changes from `current` to `desired`, if any.
fn user_changes(
    current: &Value,
    desired: &Value,
    mode: Mode,
) -> Result<Option<UserChanges>, ScimError> {
    let now = fields_of(current);
    let want = fields_of(desired);
    let mut changes = UserChanges::default();
    let mut any = false;
    let mut required = |name: &str,
                        now: &Option<String>,
                        want: &Option<String>,
                        slot: &mut Option<String>|
     -> Result<(), ScimError> {
        match want {
            Some(w) if Some(w) != now.as_ref() => {
                *slot = Some(w.clone());
                any = true;
                Ok(())
            }
            Some(_) => Ok(()),
            None if mode == Mode::Patch && now.is_some() => Err(ScimError::mutability(format!(
                "{name} cannot be removed: Salesforce requires it"
            ))),
            None => Ok(()),
        }
    };
    required(
        "userName",
        &now.username,
        &want.username,
        &mut changes.username,
    )?;
    required("emails", &now.email, &want.email, &mut changes.email)?;
    required(
        "name.familyName",
        &now.last_name,
        &want.last_name,
        &mut changes.last_name,
    )?;
    let mut optional = |now: &Option<String>,
                        want: &Option<String>,
                        keep_when_absent: bool,
                        slot: &mut Option<String>| {
        match want {
            Some(w) if Some(w) != now.as_ref() => {
                *slot = Some(w.clone());
                any = true;
            }
            None if now.is_some() && !keep_when_absent => {
                *slot = Some(String::new());
                any = true;
            }
            _ => {}
        }
    };
    optional(
        &now.first_name,
        &want.first_name,
        false,
        &mut changes.first_name,
    );
    optional(&now.title, &want.title, false, &mut changes.title);
    optional(
        &now.department,
        &want.department,
        false,
        &mut changes.department,
    );
    // A PUT that leaves externalId out keeps it: clearing a federation id would lock the user
    // out of single sign-on. PATCH remove clears it.
    optional(
        &now.federation_id,
        &want.federation_id,
        mode == Mode::Put,
        &mut changes.federation_id,
    );
    Ok(any.then_some(changes))
}

/// The profile, role and freeze changes from `current` to `desired`, through the Provost
/// extension's `profileId`, `roleId` and `frozen`. A PUT that leaves one out keeps it (an
/// identity provider that does not know the extension must not strip users' access); a PATCH
/// that removes the role removes it, and one that removes the profile is refused, since every
/// Salesforce user has one.
fn access_changes(
    user: &str,
    current: &Value,
    desired: &Value,
    mode: Mode,
) -> Result<Vec<RequestInput>, ScimError> {
    let at = |doc, key| text_at(doc, &[schema::PROVOST_USER, key]);
    let mut inputs = Vec::new();
    let to = |action, entitlement: Option<&str>| {
        let mut change = input(action, user);
        change.entitlement = entitlement.map(|id| EntitlementRef::Id(id.to_owned()));
        change
    };
    let (now, want) = (at(current, "profileId"), at(desired, "profileId"));
    match want {
        Some(profile) if Some(profile) != now => {
            inputs.push(to(Action::ChangeProfile, Some(profile)))
        }
        None if mode == Mode::Patch && now.is_some() => {
            return Err(ScimError::mutability(format!(
                "{}:profileId cannot be removed: every Salesforce user has a profile; replace it with another profile's id",
                schema::PROVOST_USER
            )))
        }
        _ => {}
    }
    let (now, want) = (at(current, "roleId"), at(desired, "roleId"));
    match want {
        Some(role) if Some(role) != now => inputs.push(to(Action::ChangeRole, Some(role))),
        None if mode == Mode::Patch && now.is_some() => inputs.push(to(Action::ChangeRole, None)),
        _ => {}
    }
    let frozen = |doc| bool_at(doc, &[schema::PROVOST_USER, "frozen"]);
    let was = frozen(current)?.unwrap_or(false);
    match frozen(desired)? {
        Some(true) if !was => inputs.push(to(Action::FreezeUser, None)),
        Some(false) if was => inputs.push(to(Action::UnfreezeUser, None)),
        // A PATCH that removes `frozen` unfreezes: its absence reads as false.
        None if mode == Mode::Patch && was => inputs.push(to(Action::UnfreezeUser, None)),
        _ => {}
    }
    Ok(inputs)
}

fn input(action: Action, user: &str) -> RequestInput {
    RequestInput {
        action,
        user: Some(user.to_owned()),
        entitlement: None,
        justification: Some("SCIM".to_owned()),
        requester: None,
        ticket: None,
        expires_at: None,
        new_user: None,
        changes: None,
    }
}

/// Checks that the body of a POST or PUT is a `resource` resource: a JSON object whose
/// `schemas` name the resource's core schema. Anything else (`null`, `{}`, a PatchOp, an
/// array, a body meant for another endpoint) is refused before anything is compared or
/// planned: read as a resource with no attributes, it would ask to clear everything.
pub fn resource_body(body: &Value, resource: &ResourceType) -> Result<(), ScimError> {
    let example = match resource.name {
        "Group" => format!(
            "{{\"schemas\": [\"{}\"], \"displayName\": \"...\", \"members\": [{{\"value\": \"005...\"}}]}}",
            schema::GROUP
        ),
        _ => format!(
            "{{\"schemas\": [\"{}\"], \"userName\": \"...\", ...}}",
            schema::USER
        ),
    };
    let Some(object) = body.as_object() else {
        return Err(ScimError::invalid_syntax(format!(
            "the body must be a {} resource, a JSON object such as {example}; it is {}",
            resource.name,
            json_kind(body)
        )));
    };
    let schemas = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v);
    let names_core = schemas.and_then(Value::as_array).is_some_and(|names| {
        names
            .iter()
            .filter_map(Value::as_str)
            .any(|name| name.eq_ignore_ascii_case(resource.schema))
    });
    if !names_core {
        return Err(ScimError::invalid_value(format!(
            "the body is not a {} resource: its `schemas` must include \"{}\" (RFC 7643 section 3), as in {example}",
            resource.name, resource.schema
        )));
    }
    Ok(())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The members a PUT of a Group asks for: `None` when the body leaves `members` out (the
/// members are kept, as a PUT that renames a group must not empty it).
fn put_members(body: &Value) -> Result<Option<BTreeSet<String>>, ScimError> {
    let given = body.as_object().and_then(|o| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("members"))
            .map(|(_, v)| v)
    });
    match given {
        None => Ok(None),
        Some(Value::Array(_)) => members_of(body).map(Some),
        Some(other) => Err(ScimError::invalid_value(format!(
            "members must be an array of {{\"value\": USER_ID}}, not {}; leave it out to keep the members",
            json_kind(other)
        ))),
    }
}

/// The member ids of a Group document.
fn members_of(doc: &Value) -> Result<BTreeSet<String>, ScimError> {
    let Some(members) = doc.as_object().and_then(|o| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("members"))
            .map(|(_, v)| v)
    }) else {
        return Ok(BTreeSet::new());
    };
    match members {
        Value::Null => Ok(BTreeSet::new()),
        Value::Array(items) => items
            .iter()
            .map(|m| {
                m.get("value")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ScimError::invalid_value(format!(
                            "a member needs a `value` (the user's id): {m}"
                        ))
                    })
            })
            .collect(),
        other => Err(ScimError::invalid_value(format!(
            "members must be an array, not {other}"
        ))),
    }
}

impl Writer<'_> {
    fn approval(&self) -> Approval {
        Approval::Given {
            by: format!("scim:{}", self.caller),
            reason: format!(
                "a SCIM write by the token `{}`: its identity provider decided the assignment",
                self.caller
            ),
        }
    }

    /// Plans every request without storing any, so that one that would be refused (an
    /// unknown member, a license mismatch) refuses the whole write before any of it is made.
    async fn check(&self, inputs: &[RequestInput]) -> Result<(), ScimError> {
        let now = chrono::Utc::now();
        for input in inputs {
            plan::plan(
                self.scope.store,
                self.scope.org.id,
                input,
                &*crate::org::writes_for(self.org_config),
                now,
            )
            .await
            .map_err(|err| match err {
                PlanError::Refused(refusal) => refused(refusal),
                PlanError::Store(err) => err.into(),
            })?;
        }
        Ok(())
    }

    /// Checks and creates the requests, wakes the executor and waits until each ended.
    async fn carry_out(&self, inputs: Vec<RequestInput>) -> Result<Vec<AccessRequest>, ScimError> {
        let most = self.org_config.scim_max_changes;
        if inputs.len() > most as usize {
            return Err(ScimError::too_many(format!(
                "this write would make {} access requests (grants, revocations, user changes), \
                 more than the {most} one SCIM write may make in org `{}` (`scim_max_changes`); \
                 nothing was changed: send the change in smaller PATCHes, or raise the limit",
                inputs.len(),
                self.org_config.name
            )));
        }
        self.check(&inputs).await?;
        let mut waiting = Vec::new();
        for input in inputs {
            let created = requests::create_with(
                self.scope.store,
                self.org_config,
                &self.scope.org,
                self.caller,
                input,
                None,
                self.approval(),
            )
            .await;
            match created {
                Ok(created) => waiting.push(created.request),
                // Another write asks for the same thing: its outcome is ours.
                Err(RequestError::Duplicate { twin, .. }) => waiting.push(*twin),
                Err(RequestError::Refused(refusal)) => return Err(refused(refusal)),
                Err(RequestError::Store(err)) => return Err(err.into()),
                Err(other) => {
                    return Err(ScimError::new(
                        StatusCode::CONFLICT,
                        None,
                        other.to_string(),
                    ))
                }
            }
        }
        self.work.notify_one();
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut done = Vec::new();
        for request in waiting {
            done.push(self.wait_for(request, deadline).await?);
        }
        Ok(done)
    }

    async fn wait_for(
        &self,
        mut request: AccessRequest,
        deadline: tokio::time::Instant,
    ) -> Result<AccessRequest, ScimError> {
        let mut pause = Duration::from_millis(10);
        loop {
            match request.state {
                RequestState::Completed | RequestState::Expired => return Ok(request),
                RequestState::Failed => {
                    let error = request.error.clone().unwrap_or_default();
                    let detail = format!(
                        "Salesforce refused request {} ({}): {error}",
                        request.id, request.action
                    );
                    return Err(if error.contains("DUPLICATE_USERNAME") {
                        ScimError::uniqueness(detail)
                    } else {
                        ScimError::invalid_value(detail)
                    });
                }
                RequestState::Rejected | RequestState::Cancelled => {
                    return Err(ScimError::new(
                        StatusCode::CONFLICT,
                        None,
                        format!(
                            "request {} was {} before it was carried out",
                            request.id, request.state
                        ),
                    ))
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ScimError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    format!(
                        "request {} is {} and Salesforce has not confirmed it yet; it will be carried out: read the resource again later (GET /api/v1/orgs/{}/access-requests/{} shows its progress)",
                        request.id, request.state, self.scope.org.name, request.id
                    ),
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
            request = self
                .scope
                .store
                .get_request(self.scope.org.id, request.id)
                .await?
                .ok_or_else(|| ScimError::not_found(format!("request {} vanished", request.id)))?;
        }
    }

    /// The writes that take a user from `current` to `desired`.
    async fn update_user(
        &self,
        id: &str,
        current: &Value,
        desired: &Value,
        mode: Mode,
    ) -> Result<Value, ScimError> {
        let mut inputs = Vec::new();
        if let Some(changes) = user_changes(current, desired, mode)? {
            let mut update = input(Action::UpdateUser, id);
            update.changes = Some(changes);
            inputs.push(update);
        }
        let was = active_of(current)?.unwrap_or(true);
        if let Some(active) = active_of(desired)? {
            if active != was {
                inputs.push(input(
                    if active {
                        Action::ReactivateUser
                    } else {
                        Action::DeactivateUser
                    },
                    id,
                ));
            }
        }
        inputs.extend(access_changes(id, current, desired, mode)?);
        // All checked first; then one at a time, since two writes of one user record must not
        // share a batch.
        self.check(&inputs).await?;
        for one in inputs {
            self.carry_out(vec![one]).await?;
        }
        self.scope.get(users(), id).await
    }

    pub async fn replace_user(
        &self,
        id: &str,
        body: &Value,
        preconditions: &Preconditions,
    ) -> Result<Value, ScimError> {
        resource_body(body, users())?;
        let current = self.current(users(), id, preconditions).await?;
        if text_at(body, &["userName"]).is_none() {
            return Err(ScimError::invalid_value(
                "a PUT of a User must carry userName",
            ));
        }
        self.update_user(id, &current, body, Mode::Put).await
    }

    pub async fn patch_user(
        &self,
        id: &str,
        body: &Value,
        preconditions: &Preconditions,
    ) -> Result<Value, ScimError> {
        let current = self.current(users(), id, preconditions).await?;
        let mut desired = current.clone();
        patch::apply(users(), &mut desired, body)?;
        self.update_user(id, &current, &desired, Mode::Patch).await
    }

    /// DELETE deactivates: Salesforce never deletes users.
    pub async fn delete_user(
        &self,
        id: &str,
        preconditions: &Preconditions,
    ) -> Result<(), ScimError> {
        let current = self.current(users(), id, preconditions).await?;
        if active_of(&current)? != Some(false) {
            self.carry_out(vec![input(Action::DeactivateUser, id)])
                .await?;
        }
        Ok(())
    }

    pub async fn create_user(&self, body: &Value) -> Result<Value, ScimError> {
        resource_body(body, users())?;
        let fields = fields_of(body);
        let username = fields
            .username
            .clone()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| ScimError::invalid_value("userName is required"))?;
        let last_name = fields
            .last_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| {
                ScimError::invalid_value(
                    "name.familyName is required: Salesforce requires a LastName",
                )
            })?;
        // Salesforce requires an email; an email-shaped userName stands in for a missing one.
        let email = fields
            .email
            .clone()
            .or_else(|| username.contains('@').then(|| username.clone()))
            .ok_or_else(|| {
                ScimError::invalid_value("emails is required: Salesforce requires an Email")
            })?;
        let profile = text_at(body, &[schema::PROVOST_USER, "profileId"])
            .map(str::to_owned)
            .or_else(|| self.org_config.user_defaults.profile.clone())
            .ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "no profile for the new user: send `{}`.profileId, or set `user_defaults.profile` for org `{}` in the configuration",
                    schema::PROVOST_USER, self.scope.org.name
                ))
            })?;
        let profile = if profile.starts_with("00e") && matches!(profile.len(), 15 | 18) {
            EntitlementRef::Id(profile)
        } else {
            EntitlementRef::Named {
                kind: provost_connector::model::EntitlementKind::Profile,
                name: profile,
            }
        };
        let create = RequestInput {
            action: Action::CreateUser,
            user: None,
            entitlement: Some(profile),
            justification: Some("SCIM".to_owned()),
            requester: None,
            ticket: None,
            expires_at: None,
            new_user: Some(NewUser {
                username,
                email,
                last_name,
                first_name: fields.first_name,
                alias: None,
                federation_id: fields.federation_id,
                department: fields.department,
                title: fields.title,
            }),
            changes: None,
        };
        let done = self.carry_out(vec![create]).await?;
        let id = done
            .first()
            .and_then(|r| r.result.as_ref())
            .and_then(|r| r["record_id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                ScimError::new(
                    StatusCode::BAD_GATEWAY,
                    None,
                    "Salesforce created the user without answering its id",
                )
            })?;
        if active_of(body)? == Some(false) {
            self.carry_out(vec![input(Action::DeactivateUser, &id)])
                .await?;
        }
        self.scope.get(users(), &id).await
    }

    /// The grants and revocations that take a Group's members from `current` to `desired`.
    async fn update_members(
        &self,
        id: &str,
        current: &Value,
        desired: &Value,
    ) -> Result<Value, ScimError> {
        let now = members_of(current)?;
        let want = members_of(desired)?;
        let mut inputs = Vec::new();
        for (action, users) in [
            (Action::Revoke, now.difference(&want)),
            (Action::Grant, want.difference(&now)),
        ] {
            for user in users {
                let mut one = input(action, user);
                one.entitlement = Some(EntitlementRef::Id(id.to_owned()));
                inputs.push(one);
            }
        }
        if !inputs.is_empty() {
            self.carry_out(inputs).await?;
        }
        self.scope.get(groups(), id).await
    }

    /// A PUT of a Group: its members become those given. `displayName` is required and, being
    /// Salesforce's label, read-only: a different one is ignored (RFC 7644 section 3.5.1). A PUT
    /// that leaves `members` out keeps them; one that would remove every member is refused:
    /// emptying a permission set through a replace is too easy to do by mistake (an empty
    /// template, a client that lost its state), so it takes an explicit PATCH remove.
    pub async fn replace_group(
        &self,
        id: &str,
        body: &Value,
        preconditions: &Preconditions,
    ) -> Result<Value, ScimError> {
        resource_body(body, groups())?;
        if text_at(body, &["displayName"]).is_none_or(|name| name.trim().is_empty()) {
            return Err(ScimError::invalid_value(
                "a PUT of a Group must carry its displayName (a required attribute); it is read-only, so any value is accepted and the group keeps its Salesforce label",
            ));
        }
        let current = self.current(groups(), id, preconditions).await?;
        let Some(wanted) = put_members(body)? else {
            return Ok(current);
        };
        let held = members_of(&current)?;
        if wanted.is_empty() && !held.is_empty() {
            return Err(ScimError::invalid_value(format!(
                "this PUT would remove every member ({}) of Group `{}` ({id}), revoking it from all of them; \
                 nothing was changed. A PUT may not empty a group: to revoke it from everyone, send a PATCH \
                 {{\"op\": \"remove\", \"path\": \"members\"}}; to keep the members, leave `members` out",
                held.len(),
                text_at(&current, &["displayName"]).unwrap_or_default(),
            )));
        }
        let desired = serde_json::json!({
            "members": wanted.iter().map(|id| serde_json::json!({"value": id})).collect::<Vec<_>>()
        });
        self.update_members(id, &current, &desired).await
    }

    pub async fn patch_group(
        &self,
        id: &str,
        body: &Value,
        preconditions: &Preconditions,
    ) -> Result<Value, ScimError> {
        let current = self.current(groups(), id, preconditions).await?;
        let mut desired = current.clone();
        patch::apply(groups(), &mut desired, body)?;
        self.update_members(id, &current, &desired).await
    }

    /// The resource as stored, if the write's preconditions hold (412 otherwise).
    async fn current(
        &self,
        resource: &'static ResourceType,
        id: &str,
        preconditions: &Preconditions,
    ) -> Result<Value, ScimError> {
        let current = self.scope.get(resource, id).await?;
        let version = super::resources::version_of(&current).unwrap_or_default();
        preconditions.check(resource, version)?;
        Ok(current)
    }
}

/// The versions a write is conditional on (RFC 7232): `If-Match` (the version the change is
/// based on: any other is 412) and `If-None-Match` (a version the change must not apply to;
/// `*` means "only if it does not exist", which a write of an existing resource never is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    pub if_match: Option<Vec<String>>,
    pub if_none_match: Option<Vec<String>>,
}

impl Preconditions {
    /// From each header's values, every comma-separated tag. A header that is present but
    /// names no version is refused rather than read as absent: the client meant a condition.
    pub fn parse<'h>(
        if_match: impl Iterator<Item = &'h str>,
        if_none_match: impl Iterator<Item = &'h str>,
    ) -> Result<Preconditions, ScimError> {
        fn tags<'h>(
            name: &str,
            values: impl Iterator<Item = &'h str>,
        ) -> Result<Option<Vec<String>>, ScimError> {
            let mut present = false;
            let mut tags = Vec::new();
            for value in values {
                present = true;
                tags.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned),
                );
            }
            if present && tags.is_empty() {
                return Err(ScimError::invalid_value(format!(
                    "{name} is empty: send the version you hold (its ETag, meta.version), or *, or leave the header out"
                )));
            }
            Ok(present.then_some(tags))
        }
        Ok(Preconditions {
            if_match: tags("If-Match", if_match)?,
            if_none_match: tags("If-None-Match", if_none_match)?,
        })
    }

    fn check(&self, resource: &ResourceType, version: &str) -> Result<(), ScimError> {
        if let Some(held) = &self.if_match {
            if !held.iter().any(|t| t == "*" || t == version) {
                return Err(ScimError::precondition(format!(
                    "the {} changed since version {}: it is now {version}; read it again and retry",
                    resource.name,
                    held.join(", ")
                )));
            }
        }
        if let Some(excluded) = &self.if_none_match {
            if excluded.iter().any(|t| t == "*" || t == version) {
                return Err(ScimError::precondition(format!(
                    "If-None-Match: {} matches the {} as it is ({version}), so the write was not made",
                    excluded.join(", "),
                    resource.name
                )));
            }
        }
        Ok(())
    }
}

fn refused(refusal: Refusal) -> ScimError {
    match refusal.code {
        "username_taken" => ScimError::uniqueness(refusal.message),
        _ => ScimError::invalid_value(refusal.message),
    }
}

fn users() -> &'static ResourceType {
    schema::resource_type("User").expect("Users are served")
}

fn groups() -> &'static ResourceType {
    schema::resource_type("Group").expect("Groups are served")
}

/// The body of a refused create or delete of a catalog resource.
pub fn not_authored(resource: &ResourceType) -> ScimError {
    ScimError::not_implemented(match resource.name {
        "Group" => "Provost does not create or delete Groups: they are Salesforce's permission sets, permission set groups and public groups, authored in Salesforce Setup. Add and remove members to grant and revoke.".to_owned(),
        "User" => "Users are deactivated, not deleted".to_owned(),
        other => format!("{other}s are a read-only catalog of what Salesforce defines"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn put_clears_optional_fields_but_keeps_the_federation_id() {
        let current = json!({"userName": "a@x.com", "emails": [{"value": "a@x.com"}], "name": {"familyName": "A", "givenName": "Ann"}, "title": "CEO", "externalId": "fed-1"});
        let desired = json!({"userName": "a@x.com", "emails": [{"value": "a@x.com"}], "name": {"familyName": "A"}});
        let changes = user_changes(&current, &desired, Mode::Put)
            .unwrap()
            .unwrap();
        assert_eq!(changes.first_name.as_deref(), Some(""));
        assert_eq!(changes.title.as_deref(), Some(""));
        assert_eq!(changes.federation_id, None);
        let patched = user_changes(&current, &desired, Mode::Patch)
            .unwrap()
            .unwrap();
        assert_eq!(patched.federation_id.as_deref(), Some(""));
        assert!(user_changes(&current, &current, Mode::Put)
            .unwrap()
            .is_none());
        let no_user = json!({"emails": [{"value": "a@x.com"}], "name": {"familyName": "A"}});
        assert_eq!(
            user_changes(&current, &no_user, Mode::Patch)
                .unwrap_err()
                .scim_type,
            Some("mutability")
        );
    }

    #[test]
    fn booleans_and_members_read_as_clients_send_them() {
        assert_eq!(active_of(&json!({"active": "False"})).unwrap(), Some(false));
        assert_eq!(active_of(&json!({})).unwrap(), None);
        assert!(active_of(&json!({"active": 0})).is_err());
        let members = members_of(&json!({"members": [{"value": "1"}, {"value": "2"}]})).unwrap();
        assert_eq!(members.into_iter().collect::<Vec<_>>(), vec!["1", "2"]);
        assert!(members_of(&json!({"members": [{"display": "x"}]})).is_err());
    }
}
