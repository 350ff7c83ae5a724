//! `object-access`, `field-access` and `setup-access`: what users can do on an object, which
//! fields they can read or edit, which connected apps, Apex classes and custom permissions
//! they can use; one row per user, target and path.
//!
//! Permissions are stored per permission set; a user reaches a set through their profile (its
//! profile-owned set), a direct assignment, or a permission set group (its aggregate set,
//! which holds the group's result with muted permissions removed, as Salesforce enforces it).
//! A group whose `Status` is not `Updated` may lag its components: its rows say so in
//! `group_status`.
//!
//! Object access also comes from two system permissions: Modify All Data (every action on
//! every object) and View All Data (read and view all on every object); those rows name the
//! permission in `through`, with `*` as the object unless one was asked for. Field access
//! comes from field permissions and from an object permission's View All Fields (read).
//! Field-level security applies to administrators too, so Modify All Data alone opens no
//! field (Salesforce's documented behaviour; profiles of administrators carry field
//! permissions for every field instead).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::Arc;

use provost_connector::model::{Permission, PermissionKind};
use serde_json::{json, Value};

use super::output::{Format, RowWriter, Written};
use super::{user_values, Context, Params, ReportError};
use crate::store::reports::{HeldEntitlement, Targets};
use crate::store::Store;

/// The actions of an object permission, in column order.
pub const OBJECT_ACTIONS: [&str; 7] = [
    "read",
    "create",
    "edit",
    "delete",
    "view_all",
    "modify_all",
    "view_all_fields",
];
const FIELD_ACTIONS: [&str; 2] = ["read", "edit"];

/// The columns every access row ends with: the path and the grant.
const PATH_COLUMNS: [&str; 10] = [
    "through",
    "via_type",
    "via_id",
    "via_api_name",
    "permission_set_id",
    "permission_set_api_name",
    "group_status",
    "grant_id",
    "assigned_since",
    "expires_at",
];

/// Which of the three reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Of {
    Objects,
    Fields,
    SetupEntities,
}

/// What one permission set opens that the report asked about: (target, what opened it:
/// `object_permission`, `Modify All Data`...) -> actions. A set that opens a target two ways
/// gives a row for each.
type Opens = BTreeMap<(String, &'static str), Vec<&'static str>>;

/// Setup entities by id: their type and name.
type Entities = HashMap<String, (Value, Value)>;

pub(super) async fn write(
    store: &Arc<dyn Store>,
    context: &Context,
    params: &Params,
    of: Of,
    format: Format,
    out: impl Write,
) -> Result<Written, ReportError> {
    let mut wanted = Wanted::of(of, params)?;
    spell_as_stored(store, context, of, &mut wanted).await?;
    let (opens, entities) = opens_by_set(store, context, params, of, &wanted).await?;
    let only = params
        .entitlement
        .as_deref()
        .map(|key| super::resolve_entitlement(context, key))
        .transpose()?
        .map(|e| e.id.clone());
    let paths = Paths::new(context);
    let rows = Rows {
        context,
        params,
        of,
        opens: &opens,
        entities: &entities,
        paths: &paths,
        only: only.as_deref(),
    };
    let mut columns: Vec<&'static str> = match of {
        Of::Objects => [&["object"][..], &OBJECT_ACTIONS].concat(),
        Of::Fields => [&["field"][..], &FIELD_ACTIONS].concat(),
        Of::SetupEntities => vec!["entity_type", "entity_id", "entity_name"],
    };
    columns.extend(PATH_COLUMNS);
    let mut writer = super::user_rows(out, format, &columns)?;
    // The entitlements that lead to a set with something to show: a profile, a set, a group.
    let leading: Vec<String> = context
        .entitlements
        .keys()
        .filter(|id| paths.set_of(id).is_some_and(|set| opens.contains_key(set)))
        .cloned()
        .collect();
    if params.as_of.is_none() && leading.len() < context.entitlements.len() / 2 {
        // A question about a few targets: only their holders are read.
        let held = store.holders(context.org.id, &leading).await?;
        for user in held.chunk_by(|a, b| a.account.id == b.account.id) {
            rows.of_user(user, &mut writer)?;
        }
    } else {
        let mut users = super::Users::new(params);
        while let Some(grants) = users.next(store, context.org.id).await? {
            rows.of_user(&grants, &mut writer)?;
        }
    }
    Ok(writer.finish()?)
}

/// The report's target filters, checked.
struct Wanted {
    /// object-access: the object; field-access: the object whose fields.
    object: Option<String>,
    field: Option<String>,
    action: Option<&'static str>,
    entity: Option<String>,
}

impl Wanted {
    fn of(of: Of, params: &Params) -> Result<Wanted, ReportError> {
        let refuse = |what: &str, applies: &str| {
            ReportError::BadParameter(format!("--{what} applies to {applies} only"))
        };
        let actions: &[&'static str] = match of {
            Of::Objects => &OBJECT_ACTIONS,
            Of::Fields => &FIELD_ACTIONS,
            Of::SetupEntities => &[],
        };
        let action = match params.action.as_deref() {
            None => None,
            Some(_) if of == Of::SetupEntities => {
                return Err(refuse("action", "object-access and field-access"))
            }
            Some(text) => Some(
                actions
                    .iter()
                    .copied()
                    .find(|a| a.eq_ignore_ascii_case(text.trim()))
                    .ok_or_else(|| {
                        ReportError::BadParameter(format!(
                            "`{text}` is not an action of this report: use one of {}",
                            actions.join(", ")
                        ))
                    })?,
            ),
        };
        if params.field.is_some() && of != Of::Fields {
            return Err(refuse("field", "field-access"));
        }
        if params.object.is_some() && of == Of::SetupEntities {
            return Err(refuse("object", "object-access and field-access"));
        }
        if params.setup_entity.is_some() && of != Of::SetupEntities {
            return Err(refuse("setup-entity", "setup-access"));
        }
        let object = given("object", params.object.as_deref())?
            .map(|object| api_name("object", object))
            .transpose()?;
        let field = match given("field", params.field.as_deref())? {
            Some(field) => {
                let Some((of_object, name)) = field.split_once('.') else {
                    return Err(ReportError::BadParameter(format!(
                        "--field `{field}` names no object: give it as Object.Field, e.g. Contact.Email"
                    )));
                };
                let of_object = api_name("field", of_object)?;
                let name = api_name("field", name)?;
                if object.is_some_and(|o| !o.eq_ignore_ascii_case(of_object)) {
                    return Err(ReportError::BadParameter(format!(
                        "--field `{field}` is not a field of --object `{}`",
                        object.unwrap_or_default()
                    )));
                }
                Some(format!("{of_object}.{name}"))
            }
            None => None,
        };
        Ok(Wanted {
            object: object.map(str::to_owned),
            field,
            action,
            entity: given("setup-entity", params.setup_entity.as_deref())?.map(str::to_owned),
        })
    }
}

/// A filter's value, trimmed; an empty one is refused rather than matching nothing.
fn given<'a>(name: &str, value: Option<&'a str>) -> Result<Option<&'a str>, ReportError> {
    match value.map(str::trim) {
        Some("") => Err(ReportError::BadParameter(format!(
            "--{name} is empty: give a value, or leave it out"
        ))),
        other => Ok(other),
    }
}

/// An object's or field's API name: a letter, then letters, digits and underscores (custom
/// ones end in `__c`), at most 255 characters, as Salesforce allows.
fn api_name<'a>(what: &str, name: &'a str) -> Result<&'a str, ReportError> {
    let valid = name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name)
    } else {
        Err(ReportError::BadParameter(format!(
            "--{what}: `{}` is not a Salesforce API name (letters, digits and underscores, \
             e.g. Opportunity, Contact.Email, Invoice__c.Amount__c)",
            name.chars().take(80).collect::<String>()
        )))
    }
}

/// The stored spelling of the object or field the report asks about, when it was given in
/// another case (`opportunity`): API names are case-insensitive in Salesforce, the stored
/// targets are not. A name nothing opens stays as given (the answer may be "nobody").
async fn spell_as_stored(
    store: &Arc<dyn Store>,
    context: &Context,
    of: Of,
    wanted: &mut Wanted,
) -> Result<(), ReportError> {
    let org = context.org.id;
    if let Some(object) = wanted.object.clone().or_else(|| {
        wanted
            .field
            .as_deref()
            .and_then(|f| f.split_once('.'))
            .map(|(o, _)| o.to_owned())
    }) {
        let exact = store
            .permissions(org, PermissionKind::Object, Targets::Exactly(&object))
            .await?;
        if exact.is_empty() {
            let all = store
                .permissions(org, PermissionKind::Object, Targets::All)
                .await?;
            if let Some(found) = all.iter().find(|p| p.target.eq_ignore_ascii_case(&object)) {
                if wanted.object.is_some() {
                    wanted.object = Some(found.target.clone());
                }
                if let Some(field) = &wanted.field {
                    let name = field.split_once('.').map_or("", |(_, n)| n);
                    wanted.field = Some(format!("{}.{name}", found.target));
                }
            }
        }
    }
    if let (Of::Fields, Some(field)) = (of, wanted.field.clone()) {
        let exact = store
            .permissions(org, PermissionKind::Field, Targets::Exactly(&field))
            .await?;
        if exact.is_empty() {
            let object = field.split_once('.').map_or("", |(o, _)| o);
            let fields = store
                .permissions(org, PermissionKind::Field, Targets::FieldsOf(object))
                .await?;
            if let Some(found) = fields
                .iter()
                .find(|p| p.target.eq_ignore_ascii_case(&field))
            {
                wanted.field = Some(found.target.clone());
            }
        }
    }
    Ok(())
}

/// For each permission set with something the report asked about, what it opens.
async fn opens_by_set(
    store: &Arc<dyn Store>,
    context: &Context,
    params: &Params,
    of: Of,
    wanted: &Wanted,
) -> Result<(HashMap<String, Opens>, Entities), ReportError> {
    let mut opens: HashMap<String, Opens> = HashMap::new();
    let mut entities = Entities::new();
    let mut add = |set: &str, target: String, actions: Vec<&'static str>, through: &'static str| {
        if actions.is_empty() || wanted.action.is_some_and(|a| !actions.contains(&a)) {
            return;
        }
        opens
            .entry(set.to_owned())
            .or_default()
            .insert((target, through), actions);
    };
    match of {
        Of::Objects => {
            let targets = wanted
                .object
                .as_deref()
                .map_or(Targets::All, Targets::Exactly);
            for permission in
                read_permissions(store, context, params, PermissionKind::Object, targets).await?
            {
                let actions = known(&permission.actions, &OBJECT_ACTIONS);
                add(
                    &permission.entitlement_id,
                    permission.target,
                    actions,
                    "object_permission",
                );
            }
            // Modify All Data and View All Data open every object.
            let every = wanted.object.clone().unwrap_or_else(|| "*".to_owned());
            for set in context.entitlements.values() {
                if super::holds_permission(set, "PermissionsModifyAllData") {
                    add(
                        &set.id,
                        every.clone(),
                        OBJECT_ACTIONS.to_vec(),
                        "Modify All Data",
                    );
                } else if super::holds_permission(set, "PermissionsViewAllData") {
                    add(
                        &set.id,
                        every.clone(),
                        vec!["read", "view_all"],
                        "View All Data",
                    );
                }
            }
        }
        Of::Fields => {
            let targets = match (&wanted.field, &wanted.object) {
                (Some(field), _) => Targets::Exactly(field),
                (None, Some(object)) => Targets::FieldsOf(object),
                (None, None) => Targets::All,
            };
            for permission in
                read_permissions(store, context, params, PermissionKind::Field, targets).await?
            {
                let actions = known(&permission.actions, &FIELD_ACTIONS);
                add(
                    &permission.entitlement_id,
                    permission.target,
                    actions,
                    "field_permission",
                );
            }
            // View All Fields on an object reads each of its fields: shown for the field or
            // object asked about (without one, as `Object.*`).
            let object = wanted
                .field
                .as_deref()
                .and_then(|f| f.split_once('.'))
                .map(|(o, _)| o.to_owned())
                .or_else(|| wanted.object.clone());
            let targets = object.as_deref().map_or(Targets::All, Targets::Exactly);
            for permission in
                read_permissions(store, context, params, PermissionKind::Object, targets).await?
            {
                if permission.actions.iter().any(|a| a == "view_all_fields") {
                    let target = wanted
                        .field
                        .clone()
                        .unwrap_or_else(|| format!("{}.*", permission.target));
                    add(
                        &permission.entitlement_id,
                        target,
                        vec!["read"],
                        "View All Fields",
                    );
                }
            }
        }
        Of::SetupEntities => {
            for permission in read_permissions(
                store,
                context,
                params,
                PermissionKind::SetupEntity,
                Targets::All,
            )
            .await?
            {
                let name = permission.attributes.get("name").and_then(Value::as_str);
                let matches = wanted.entity.as_deref().is_none_or(|wanted| {
                    permission.target == wanted
                        || name.is_some_and(|name| name.eq_ignore_ascii_case(wanted))
                });
                if matches {
                    entities.insert(
                        permission.target.clone(),
                        (
                            permission
                                .attributes
                                .get("type")
                                .cloned()
                                .unwrap_or_default(),
                            json!(name),
                        ),
                    );
                    add(
                        &permission.entitlement_id,
                        permission.target.clone(),
                        vec!["access"],
                        "setup_entity_access",
                    );
                }
            }
        }
    }
    Ok((opens, entities))
}

/// The permissions of `kind` on `targets`: live, or as of `params.as_of`.
async fn read_permissions(
    store: &Arc<dyn Store>,
    context: &Context,
    params: &Params,
    kind: PermissionKind,
    targets: Targets<'_>,
) -> Result<Vec<Permission>, ReportError> {
    Ok(match params.as_of {
        None => store.permissions(context.org.id, kind, targets).await?,
        Some(at) => {
            store
                .permissions_at(context.org.id, kind, targets, at)
                .await?
        }
    })
}

/// The actions among `known` that `actions` lists, in `known`'s order.
fn known(actions: &[String], known: &[&'static str]) -> Vec<&'static str> {
    known
        .iter()
        .copied()
        .filter(|k| actions.iter().any(|a| a == k))
        .collect()
}

/// How an entitlement a user holds leads to a permission set.
struct Paths<'a> {
    /// Profile -> its profile-owned set; group -> its aggregate set.
    sets: HashMap<&'a str, &'a provost_connector::model::Entitlement>,
    context: &'a Context,
}

impl<'a> Paths<'a> {
    fn new(context: &'a Context) -> Paths<'a> {
        Paths {
            sets: super::carrying_sets(&context.entitlements),
            context,
        }
    }

    /// The set entitlement `id` leads to: a profile's, a group's aggregate, or itself.
    fn set_of(&self, id: &'a str) -> Option<&'a str> {
        match self.context.entitlements.get(id)?.kind.as_str() {
            "profile" | "permission_set_group" => self.sets.get(id).map(|set| set.id.as_str()),
            "permission_set" => Some(id),
            _ => None,
        }
    }
}

/// What writing a user's rows needs.
struct Rows<'a> {
    context: &'a Context,
    params: &'a Params,
    of: Of,
    opens: &'a HashMap<String, Opens>,
    entities: &'a Entities,
    paths: &'a Paths<'a>,
    /// `--entitlement`: only paths through it.
    only: Option<&'a str>,
}

impl Rows<'_> {
    fn of_user<W: Write>(
        &self,
        grants: &[HeldEntitlement],
        writer: &mut RowWriter<W>,
    ) -> Result<(), ReportError> {
        let Rows {
            context,
            params,
            of,
            opens,
            entities,
            paths,
            only,
        } = self;
        let Some(first) = grants.first() else {
            return Ok(());
        };
        if !params.admits(&first.account) {
            return Ok(());
        }
        let user = user_values(context, &first.account);
        for grant in grants {
            // A group's component sets are reached through the group's aggregate set.
            if grant.source.starts_with("group:")
                || only.is_some_and(|only| only != grant.entitlement_id)
            {
                continue;
            }
            let Some(set_id) = paths.set_of(&grant.entitlement_id) else {
                continue;
            };
            let Some(targets) = opens.get(set_id) else {
                continue;
            };
            let via = context.entitlements.get(&grant.entitlement_id);
            let set = context.entitlements.get(set_id);
            let via_type = via.map_or("", |e| e.kind.as_str());
            let group_status = match via {
                Some(group) if group.kind.as_str() == "permission_set_group" => group
                    .attributes
                    .get("Status")
                    .cloned()
                    .unwrap_or(Value::Null),
                _ => Value::Null,
            };
            for ((target, through), actions) in targets {
                let mut values = user.clone();
                match of {
                    Of::Objects => {
                        values.push(json!(target));
                        values.extend(OBJECT_ACTIONS.iter().map(|a| json!(actions.contains(a))));
                    }
                    Of::Fields => {
                        values.push(json!(target));
                        values.extend(FIELD_ACTIONS.iter().map(|a| json!(actions.contains(a))));
                    }
                    Of::SetupEntities => {
                        let (kind, name) = entities
                            .get(target)
                            .map_or((Value::Null, Value::Null), |(k, n)| (k.clone(), n.clone()));
                        values.extend([kind, json!(target), name]);
                    }
                }
                values.extend([
                    json!(through),
                    json!(via_type),
                    json!(grant.entitlement_id),
                    json!(via.map(|e| e.api_name.as_str())),
                    json!(set_id),
                    json!(set.map(|e| e.api_name.as_str())),
                    group_status.clone(),
                    json!(grant.grant_id),
                    super::time_value(grant.since),
                    super::time_value(grant.expires_at),
                ]);
                writer.row(&values)?;
            }
        }
        Ok(())
    }
}
