//! Writes through the API, with Salesforce's business rules and error codes.
//!
//! Error codes and texts come from SALESFORCE.md where it has them. Where it is silent the
//! choice is marked UNCONFIRMED: the behaviour a real org most plausibly has.

use serde_json::{Map, Value as Json};

use crate::error::SfError;
use crate::id::Id;
use crate::org::Org;
use crate::record::{parse_date, parse_datetime, Record, Value};
use crate::schema::{FieldSchema, FieldType, ObjectType};

/// Community and portal user types: the external users.
pub const EXTERNAL_USER_TYPES: &[&str] = &[
    "PowerPartner",
    "PowerCustomerSuccess",
    "CustomerSuccess",
    "CspLitePortal",
    "SelfService",
    "Guest",
];

/// The system permissions a user holds: the OR over every permission set assigned to them.
pub fn effective_permissions(org: &Org, user: Id) -> Vec<&'static str> {
    let schema = ObjectType::PermissionSet.schema();
    crate::schema::PERMISSION_FIELDS
        .iter()
        .copied()
        .filter(|permission| {
            let index = schema.field_index(permission).expect("permission field");
            org.sets_of(user).iter().any(|set| {
                org.get(ObjectType::PermissionSet, *set)
                    .is_some_and(|ps| ps.get(index).as_bool() == Some(true))
            })
        })
        .collect()
}

/// Whether `user` may write `object` records through the API, as Salesforce's permission
/// checks decide (Modify All Data allows everything).
pub fn check_write_access(org: &Org, user: Id, object: ObjectType) -> Result<(), SfError> {
    let held = effective_permissions(org, user);
    let has = |p: &str| held.contains(&p);
    if has("PermissionsModifyAllData") {
        return Ok(());
    }
    let allowed = match object {
        ObjectType::User | ObjectType::UserLogin | ObjectType::PermissionSetLicenseAssign => {
            has("PermissionsManageUsers") || has("PermissionsManageInternalUsers")
        }
        ObjectType::PermissionSetAssignment => {
            has("PermissionsAssignPermissionSets")
                || has("PermissionsManageProfilesPermissionsets")
                || has("PermissionsManageUsers")
        }
        ObjectType::PermissionSet
        | ObjectType::PermissionSetGroup
        | ObjectType::PermissionSetGroupComponent
        | ObjectType::MutingPermissionSet
        | ObjectType::ObjectPermissions
        | ObjectType::FieldPermissions
        | ObjectType::SetupEntityAccess
        | ObjectType::CustomPermission
        | ObjectType::Profile => has("PermissionsManageProfilesPermissionsets"),
        ObjectType::Group | ObjectType::GroupMember => has("PermissionsManageUsers"),
        ObjectType::UserRole => has("PermissionsManageRoles") || has("PermissionsManageUsers"),
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(SfError::new(
            400,
            "INSUFFICIENT_ACCESS_OR_READONLY",
            "insufficient access rights on cross-reference id",
        ))
    }
}

/// Creates a record from a REST body; returns its ID.
pub fn create(org: &mut Org, object: ObjectType, body: &Map<String, Json>) -> Result<Id, SfError> {
    ensure_object(org, object)?;
    if matches!(
        object,
        ObjectType::Organization
            | ObjectType::UserLogin
            | ObjectType::UserLicense
            | ObjectType::PermissionSetLicense
    ) {
        // UNCONFIRMED: the code Salesforce uses for a non-createable entity.
        return Err(SfError::new(
            400,
            "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY",
            format!("entity type cannot be inserted: {}", object.name()),
        ));
    }
    let schema = object.schema();
    let mut values = vec![Value::Null; schema.fields.len()];
    for (key, json) in body {
        if key == "attributes" {
            continue;
        }
        let index = field_index(object, key)?;
        let field = &schema.fields[index];
        if field.name == "Id" {
            return Err(SfError::new(
                400,
                "INVALID_FIELD",
                "Unable to create/update fields: Id. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
            )
            .with_fields(["Id"]));
        }
        if !field.createable {
            return Err(not_writable(field));
        }
        values[index] = coerce(org, field, json)?;
    }
    let missing: Vec<&str> = schema
        .fields
        .iter()
        .enumerate()
        .filter(|(i, f)| f.required && values[*i].is_null())
        .map(|(_, f)| f.name)
        .collect();
    if !missing.is_empty() {
        return Err(SfError::new(
            400,
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", missing.join(", ")),
        )
        .with_fields(missing));
    }
    let id = org.next_id(object);
    values[0] = Value::Id(id);
    let mut record = Record { values };
    fill_defaults(object, &mut record);
    let stamp = org.stamp();
    set_audit(object, &mut record, stamp, true);
    match object {
        ObjectType::User => create_user(org, record),
        ObjectType::PermissionSetAssignment => create_assignment(org, record),
        ObjectType::PermissionSet => create_permission_set(org, record),
        ObjectType::PermissionSetLicenseAssign => create_license_assignment(org, record),
        ObjectType::GroupMember => create_group_member(org, record),
        ObjectType::PermissionSetGroup => create_permission_set_group(org, record),
        ObjectType::PermissionSetGroupComponent => {
            let o = ObjectType::PermissionSetGroupComponent;
            let component = value_of(o, &record, "PermissionSetId").as_id();
            let kind = component
                .and_then(|c| org.find(c))
                .map(|(object, _)| object);
            if !matches!(
                kind,
                Some(ObjectType::PermissionSet | ObjectType::MutingPermissionSet)
            ) {
                return Err(SfError::new(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id: a component is a permission set or a muting permission set",
                )
                .with_fields(["PermissionSetId"]));
            }
            let group = value_of(o, &record, "PermissionSetGroupId").as_id();
            org.insert(o, record);
            if let Some(group) = group {
                mark_outdated(org, group);
            }
            Ok(id)
        }
        ObjectType::ObjectPermissions => {
            refuse_duplicate(org, object, &record, "SobjectType")?;
            org.insert(object, record);
            Ok(id)
        }
        ObjectType::FieldPermissions => {
            refuse_duplicate(org, object, &record, "Field")?;
            org.insert(object, record);
            Ok(id)
        }
        ObjectType::SetupEntityAccess => {
            // Salesforce fills the type in from the entity the row opens.
            let o = ObjectType::SetupEntityAccess;
            let kind = value_of(o, &record, "SetupEntityId")
                .as_id()
                .and_then(|entity| org.find(entity))
                .map(|(object, _)| object.name());
            let mut record = record;
            set(
                o,
                &mut record,
                "SetupEntityType",
                kind.map_or(Value::Null, Value::text),
            );
            org.insert(o, record);
            Ok(id)
        }
        _ => {
            org.insert(object, record);
            Ok(id)
        }
    }
}

/// Updates fields of a live record.
pub fn update(
    org: &mut Org,
    object: ObjectType,
    id: Id,
    body: &Map<String, Json>,
) -> Result<(), SfError> {
    ensure_object(org, object)?;
    let current = live(org, object, id)?;
    let schema = object.schema();
    let mut record = (*current).clone();
    for (key, json) in body {
        if key == "attributes" {
            continue;
        }
        let index = field_index(object, key)?;
        let field = &schema.fields[index];
        if field.name == "Id" {
            // Salesforce tolerates the record's own Id in a PATCH body.
            continue;
        }
        if !field.updateable {
            return Err(not_writable(field));
        }
        let value = coerce(org, field, json)?;
        if field.required && value.is_null() {
            return Err(SfError::new(
                400,
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", field.name),
            )
            .with_fields([field.name]));
        }
        record.values[index] = value;
    }
    let stamp = org.stamp();
    set_audit(object, &mut record, stamp, false);
    if object == ObjectType::User {
        update_user(org, &current, record)
    } else {
        org.replace(object, record);
        Ok(())
    }
}

/// Deletes a live record (it then shows in `queryAll` with `IsDeleted = true`).
pub fn delete(org: &mut Org, object: ObjectType, id: Id) -> Result<(), SfError> {
    ensure_object(org, object)?;
    let current = live(org, object, id)?;
    if object == ObjectType::User {
        // UNCONFIRMED: the code; the rule (users are deactivated, never deleted) is documented.
        return Err(SfError::new(
            400,
            "DELETE_FAILED",
            "Users cannot be deleted. Deactivate the user instead by setting IsActive to false.",
        ));
    }
    if !object.deletable() {
        return Err(SfError::new(
            400,
            "DELETE_FAILED",
            format!("entity type cannot be deleted: {}", object.name()),
        ));
    }
    let field = |name: &str| {
        current
            .get(object.schema().field_index(name).expect("known field"))
            .clone()
    };
    match object {
        ObjectType::PermissionSetAssignment => {
            if let Some(set) = field("PermissionSetId").as_id() {
                if is_profile_owned(org, set) && field("PermissionSetGroupId").is_null() {
                    return Err(profile_owned_error());
                }
            }
        }
        ObjectType::PermissionSet => {
            if field("IsOwnedByProfile").as_bool() == Some(true) {
                return Err(profile_owned_error());
            }
            if referenced_by(
                org,
                ObjectType::PermissionSetAssignment,
                "PermissionSetId",
                id,
            ) {
                // UNCONFIRMED: code and text.
                return Err(SfError::new(
                    400,
                    "DELETE_FAILED",
                    "This permission set is assigned to users. Remove the assignments first.",
                ));
            }
            remove_access_of(org, id);
        }
        ObjectType::PermissionSetGroupComponent => {
            if let Some(group) = field("PermissionSetGroupId").as_id() {
                mark_outdated(org, group);
            }
        }
        ObjectType::MutingPermissionSet => {
            remove_access_of(org, id);
            for component in children_of(
                org,
                ObjectType::PermissionSetGroupComponent,
                "PermissionSetId",
                id,
            ) {
                org.remove(ObjectType::PermissionSetGroupComponent, component);
            }
        }
        ObjectType::PermissionSetGroup => {
            if referenced_by(
                org,
                ObjectType::PermissionSetAssignment,
                "PermissionSetGroupId",
                id,
            ) {
                return Err(SfError::new(
                    400,
                    "DELETE_FAILED",
                    "This permission set group is assigned to users. Remove the assignments first.",
                ));
            }
            let component_index = ObjectType::PermissionSetGroupComponent
                .schema()
                .field_index("PermissionSetId")
                .expect("known field");
            for component in children_of(
                org,
                ObjectType::PermissionSetGroupComponent,
                "PermissionSetGroupId",
                id,
            ) {
                // UNCONFIRMED: a group's muting set goes with it (it belongs to one group).
                let muting = org
                    .get(ObjectType::PermissionSetGroupComponent, component)
                    .and_then(|c| c.get(component_index).as_id())
                    .filter(|set| org.get(ObjectType::MutingPermissionSet, *set).is_some());
                org.remove(ObjectType::PermissionSetGroupComponent, component);
                if let Some(muting) = muting {
                    remove_access_of(org, muting);
                    org.remove(ObjectType::MutingPermissionSet, muting);
                }
            }
            for aggregate in children_of(org, ObjectType::PermissionSet, "PermissionSetGroupId", id)
            {
                remove_access_of(org, aggregate);
                org.remove(ObjectType::PermissionSet, aggregate);
            }
        }
        ObjectType::Group => {
            for member in children_of(org, ObjectType::GroupMember, "GroupId", id) {
                org.remove(ObjectType::GroupMember, member);
            }
        }
        ObjectType::UserRole if referenced_by(org, ObjectType::User, "UserRoleId", id) => {
            return Err(SfError::new(
                400,
                "DELETE_FAILED",
                "This role has users assigned to it. Reassign them first.",
            ));
        }
        ObjectType::PermissionSetLicenseAssign => {
            if let Some(license) = field("PermissionSetLicenseId").as_id() {
                adjust_used(org, ObjectType::PermissionSetLicense, license, -1);
            }
        }
        _ => {}
    }
    org.remove(object, id);
    Ok(())
}

fn ensure_object(org: &Org, object: ObjectType) -> Result<(), SfError> {
    if org.has_object(object) {
        Ok(())
    } else {
        Err(SfError::invalid_type(object.name()))
    }
}

fn live(org: &Org, object: ObjectType, id: Id) -> Result<std::sync::Arc<Record>, SfError> {
    match org.get(object, id) {
        Some(record) => Ok(record.clone()),
        None if org.is_deleted(object, id) => Err(SfError::entity_is_deleted()),
        None => Err(SfError::not_found()),
    }
}

fn field_index(object: ObjectType, key: &str) -> Result<usize, SfError> {
    object.schema().field_index(key).ok_or_else(|| {
        SfError::new(
            400,
            "INVALID_FIELD",
            format!(
                "No such column '{key}' on sobject of type {}",
                object.name()
            ),
        )
        .with_fields([key])
    })
}

fn not_writable(field: &FieldSchema) -> SfError {
    SfError::new(
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        format!(
            "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
            field.name
        ),
    )
    .with_fields([field.name])
}

/// Converts a JSON value to a field's value, checking type, length and references.
fn coerce(org: &Org, field: &FieldSchema, json: &Json) -> Result<Value, SfError> {
    let parse_error = |expected: &str| {
        SfError::new(
            400,
            "JSON_PARSER_ERROR",
            format!("Cannot deserialize instance of {expected} from {} value {json} or request may be missing a required field", token_name(json)),
        )
    };
    if json.is_null() {
        return Ok(Value::Null);
    }
    match field.field_type {
        FieldType::Boolean => match json {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(parse_error("boolean")),
        },
        FieldType::Int => json
            .as_i64()
            .map(Value::Int)
            .ok_or_else(|| parse_error("int")),
        FieldType::DateTime => json
            .as_str()
            .and_then(parse_datetime)
            .map(Value::DateTime)
            .ok_or_else(|| parse_error("datetime")),
        FieldType::Date => json
            .as_str()
            .and_then(parse_date)
            .map(Value::Date)
            .ok_or_else(|| parse_error("date")),
        FieldType::String | FieldType::Email | FieldType::Picklist => {
            let text = match json {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                Json::Bool(b) => b.to_string(),
                _ => return Err(parse_error("string")),
            };
            if field.length > 0 && text.chars().count() > field.length as usize {
                return Err(SfError::new(
                    400,
                    "STRING_TOO_LONG",
                    format!(
                        "{}: data value too large: {text} (max length={})",
                        field.name, field.length
                    ),
                )
                .with_fields([field.name]));
            }
            if field.field_type == FieldType::Email && !looks_like_email(&text) {
                return Err(SfError::new(
                    400,
                    "INVALID_EMAIL_ADDRESS",
                    format!("{}: invalid email address: {text}", field.name),
                )
                .with_fields([field.name]));
            }
            Ok(Value::text(text))
        }
        FieldType::Id | FieldType::Reference(_) | FieldType::AnyId => {
            let text = json.as_str().ok_or_else(|| parse_error("id"))?;
            let id = Id::parse(text).ok_or_else(|| {
                SfError::new(
                    400,
                    "MALFORMED_ID",
                    format!("{}: id value of incorrect type: {text}", field.name),
                )
                .with_fields([field.name])
            })?;
            let exists = match field.field_type {
                FieldType::Reference(target) => org.get(target, id).is_some(),
                _ => org.find(id).is_some(),
            };
            if !exists {
                return Err(SfError::new(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                )
                .with_fields([field.name]));
            }
            Ok(Value::Id(id))
        }
    }
}

fn token_name(json: &Json) -> &'static str {
    match json {
        Json::String(_) => "VALUE_STRING",
        Json::Number(_) => "VALUE_NUMBER_INT",
        Json::Bool(true) => "VALUE_TRUE",
        Json::Bool(false) => "VALUE_FALSE",
        Json::Array(_) => "START_ARRAY",
        Json::Object(_) => "START_OBJECT",
        Json::Null => "VALUE_NULL",
    }
}

fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.ends_with('.')
        }
        None => false,
    }
}

fn fill_defaults(object: ObjectType, record: &mut Record) {
    let schema = object.schema();
    for (i, field) in schema.fields.iter().enumerate() {
        if field.field_type == FieldType::Boolean && record.values[i].is_null() {
            let default = matches!(field.name, "IsActive");
            record.values[i] = Value::Bool(default);
        }
    }
}

fn set_audit(object: ObjectType, record: &mut Record, stamp: i64, created: bool) {
    let schema = object.schema();
    let names: &[&str] = if created {
        &["CreatedDate", "LastModifiedDate", "SystemModstamp"]
    } else {
        &["LastModifiedDate", "SystemModstamp"]
    };
    for name in names {
        if let Some(i) = schema.field_index(name) {
            record.values[i] = Value::DateTime(stamp);
        }
    }
}

fn value_of(object: ObjectType, record: &Record, name: &str) -> Value {
    record
        .get(object.schema().field_index(name).expect("known field"))
        .clone()
}

fn set(object: ObjectType, record: &mut Record, name: &str, value: Value) {
    let index = object.schema().field_index(name).expect("known field");
    record.values[index] = value;
}

fn field_of(org: &Org, object: ObjectType, id: Id, name: &str) -> Value {
    org.get(object, id)
        .map(|record| value_of(object, record, name))
        .unwrap_or(Value::Null)
}

fn is_profile_owned(org: &Org, permission_set: Id) -> bool {
    field_of(
        org,
        ObjectType::PermissionSet,
        permission_set,
        "IsOwnedByProfile",
    )
    .as_bool()
        == Some(true)
}

/// UNCONFIRMED: the code; the text is what Setup shows for the same attempt.
fn profile_owned_error() -> SfError {
    SfError::new(
        400,
        "FIELD_INTEGRITY_EXCEPTION",
        "You can't assign or unassign this permission set because it's associated with a profile.",
    )
}

fn referenced_by(org: &Org, child: ObjectType, field: &str, id: Id) -> bool {
    let index = child.schema().field_index(field).expect("known field");
    org.table(child)
        .live
        .values()
        .any(|record| record.get(index).as_id() == Some(id))
}

/// A group whose components changed: Salesforce recalculates its aggregate set in the
/// background, and until then the group's `Status` is `Outdated` and the aggregate lags.
fn mark_outdated(org: &mut Org, group: Id) {
    let o = ObjectType::PermissionSetGroup;
    if let Some(record) = org.get(o, group) {
        let mut record = (**record).clone();
        set(o, &mut record, "Status", Value::text("Outdated"));
        org.replace(o, record);
    }
}

/// Recalculates every group that is not `Updated`, as Salesforce's background job does: the
/// aggregate set gets its components' system permissions OR'ed with the muted ones removed,
/// and the union of their object, field and setup-entity permissions; the group becomes
/// `Updated`. Returns how many groups were recalculated.
pub fn recalculate_groups(org: &mut Org) -> usize {
    let o = ObjectType::PermissionSetGroup;
    let status = o.schema().field_index("Status").expect("known field");
    let outdated: Vec<Id> = org
        .table(o)
        .live
        .values()
        .filter(|g| g.get(status).as_text() != Some("Updated"))
        .map(|g| g.id())
        .collect();
    for group in &outdated {
        recalculate_group(org, *group);
    }
    outdated.len()
}

fn recalculate_group(org: &mut Org, group: Id) {
    let components: Vec<Id> = children_of(
        org,
        ObjectType::PermissionSetGroupComponent,
        "PermissionSetGroupId",
        group,
    )
    .into_iter()
    .filter_map(|c| {
        value_of(
            ObjectType::PermissionSetGroupComponent,
            org.get(ObjectType::PermissionSetGroupComponent, c)?,
            "PermissionSetId",
        )
        .as_id()
    })
    .collect();
    let Some(aggregate) = children_of(
        org,
        ObjectType::PermissionSet,
        "PermissionSetGroupId",
        group,
    )
    .into_iter()
    .next() else {
        return;
    };
    let sets: Vec<Id> = components
        .iter()
        .copied()
        .filter(|c| org.get(ObjectType::PermissionSet, *c).is_some())
        .collect();
    let muting: Vec<Id> = components
        .iter()
        .copied()
        .filter(|c| org.get(ObjectType::MutingPermissionSet, *c).is_some())
        .collect();
    let holds = |object: ObjectType, id: Id, field: &str| {
        org.get(object, id)
            .is_some_and(|r| value_of(object, r, field).as_bool() == Some(true))
    };
    let flags: Vec<(&str, bool)> = crate::schema::PERMISSION_FIELDS
        .iter()
        .map(|field| {
            let held = sets
                .iter()
                .any(|s| holds(ObjectType::PermissionSet, *s, field));
            let muted = muting
                .iter()
                .any(|m| holds(ObjectType::MutingPermissionSet, *m, field));
            (*field, held && !muted)
        })
        .collect();
    let mut record = (**org
        .get(ObjectType::PermissionSet, aggregate)
        .expect("listed just now"))
    .clone();
    for (field, on) in flags {
        set(
            ObjectType::PermissionSet,
            &mut record,
            field,
            Value::Bool(on),
        );
    }
    org.replace(ObjectType::PermissionSet, record);

    // The aggregate's access rows: the union of the component sets' (muting sets' object
    // and field rows are not applied: UNCONFIRMED how Salesforce mutes those).
    remove_access_of(org, aggregate);
    let stamp = org.stamp();
    for (object, key) in [
        (ObjectType::ObjectPermissions, "SobjectType"),
        (ObjectType::FieldPermissions, "Field"),
        (ObjectType::SetupEntityAccess, "SetupEntityId"),
    ] {
        let schema = object.schema();
        let key_index = schema.field_index(key).expect("known field");
        let mut merged: std::collections::BTreeMap<String, Record> = Default::default();
        for component in &sets {
            for row in children_of(org, object, "ParentId", *component) {
                let row = org.get(object, row).expect("listed just now");
                let target = format!("{:?}", row.get(key_index));
                match merged.get_mut(&target) {
                    Some(kept) => {
                        for (i, field) in schema.fields.iter().enumerate() {
                            if field.name.starts_with("Permissions")
                                && row.get(i).as_bool() == Some(true)
                            {
                                kept.values[i] = Value::Bool(true);
                            }
                        }
                    }
                    None => {
                        merged.insert(target, (**row).clone());
                    }
                }
            }
        }
        for (_, mut row) in merged {
            row.values[0] = Value::Id(org.next_id(object));
            set(object, &mut row, "ParentId", Value::Id(aggregate));
            set_audit(object, &mut row, stamp, true);
            org.insert(object, row);
        }
    }
    let o = ObjectType::PermissionSetGroup;
    if let Some(record) = org.get(o, group) {
        let mut record = (**record).clone();
        set(o, &mut record, "Status", Value::text("Updated"));
        set_audit(o, &mut record, stamp, false);
        org.replace(o, record);
    }
}

/// Removes what a permission set or muting set opens, as Salesforce does with the set.
fn remove_access_of(org: &mut Org, parent: Id) {
    for object in [
        ObjectType::ObjectPermissions,
        ObjectType::FieldPermissions,
        ObjectType::SetupEntityAccess,
    ] {
        for row in children_of(org, object, "ParentId", parent) {
            org.remove(object, row);
        }
    }
}

/// Refuses a second row of the same permission set and target (`key`: SobjectType, Field).
fn refuse_duplicate(
    org: &Org,
    object: ObjectType,
    record: &Record,
    key: &str,
) -> Result<(), SfError> {
    let (parent_index, key_index) = (
        object
            .schema()
            .field_index("ParentId")
            .expect("known field"),
        object.schema().field_index(key).expect("known field"),
    );
    let (parent, target) = (record.get(parent_index), record.get(key_index));
    if let Some(existing) = org
        .table(object)
        .live
        .values()
        .find(|r| r.get(parent_index) == parent && r.get(key_index) == target)
    {
        return Err(SfError::new(
            400,
            "DUPLICATE_VALUE",
            format!(
                "duplicate value found: {key} duplicates value on record with id: {}",
                existing.id()
            ),
        )
        .with_fields([key]));
    }
    Ok(())
}

fn children_of(org: &Org, child: ObjectType, field: &str, id: Id) -> Vec<Id> {
    let index = child.schema().field_index(field).expect("known field");
    org.table(child)
        .live
        .values()
        .filter(|record| record.get(index).as_id() == Some(id))
        .map(|record| record.id())
        .collect()
}

/// Changes a license's `UsedLicenses` by `delta`.
fn adjust_used(org: &mut Org, object: ObjectType, license: Id, delta: i64) {
    if let Some(record) = org.get(object, license) {
        let mut record = (**record).clone();
        let index = object
            .schema()
            .field_index("UsedLicenses")
            .expect("known field");
        let used = match record.values[index] {
            Value::Int(n) => n,
            _ => 0,
        };
        record.values[index] = Value::Int((used + delta).max(0));
        org.replace(object, record);
    }
}

fn license_has_room(org: &Org, object: ObjectType, license: Id) -> bool {
    let total = field_of(org, object, license, "TotalLicenses");
    let used = field_of(org, object, license, "UsedLicenses");
    match (total, used) {
        (Value::Int(total), Value::Int(used)) => used < total,
        _ => true,
    }
}

fn license_limit_exceeded() -> SfError {
    SfError::new(400, "LICENSE_LIMIT_EXCEEDED", "License Limit Exceeded")
}

fn profile_license(org: &Org, profile: Id) -> Option<Id> {
    field_of(org, ObjectType::Profile, profile, "UserLicenseId").as_id()
}

fn user_license(org: &Org, user: Id) -> Option<Id> {
    let profile = field_of(org, ObjectType::User, user, "ProfileId").as_id()?;
    profile_license(org, profile)
}

/// The permission set a profile owns.
pub fn profile_permission_set(org: &Org, profile: Id) -> Option<Id> {
    let schema = ObjectType::PermissionSet.schema();
    let profile_index = schema.field_index("ProfileId").expect("known field");
    let owned_index = schema.field_index("IsOwnedByProfile").expect("known field");
    org.table(ObjectType::PermissionSet)
        .live
        .values()
        .find(|ps| {
            ps.get(owned_index).as_bool() == Some(true)
                && ps.get(profile_index).as_id() == Some(profile)
        })
        .map(|ps| ps.id())
}

fn create_user(org: &mut Org, mut record: Record) -> Result<Id, SfError> {
    let o = ObjectType::User;
    let id = record.id();
    let username = value_of(o, &record, "Username");
    let username = username.as_text().unwrap_or_default().to_owned();
    if !looks_like_email(&username) {
        // UNCONFIRMED: the code; the rule (usernames have the form of an email address) is real.
        return Err(SfError::new(
            400,
            "INVALID_NEW_VALUE",
            "Username: invalid username, must be in the form of an email address (e.g. john@acme.com)",
        )
        .with_fields(["Username"]));
    }
    if org.user_by_username(&username).is_some() {
        return Err(duplicate_username());
    }
    let profile = value_of(o, &record, "ProfileId")
        .as_id()
        .expect("required field");
    let user_type = field_of(org, ObjectType::Profile, profile, "UserType");
    let license = profile_license(org, profile);
    let active = value_of(o, &record, "IsActive").as_bool() == Some(true);
    if active {
        if let Some(license) = license {
            if !license_has_room(org, ObjectType::UserLicense, license) {
                return Err(license_limit_exceeded());
            }
        }
    }
    let external = user_type
        .as_text()
        .is_some_and(|t| EXTERNAL_USER_TYPES.contains(&t));
    set(o, &mut record, "UserType", user_type);
    set(o, &mut record, "IsPortalEnabled", Value::Bool(external));
    set_name(&mut record);
    let stamp = org.stamp();
    org.insert(o, record);
    if active {
        if let Some(license) = license {
            adjust_used(org, ObjectType::UserLicense, license, 1);
        }
    }
    insert_login(org, id, false, stamp);
    if let Some(set_id) = profile_permission_set(org, profile) {
        insert_assignment(org, id, set_id, None, stamp);
    }
    Ok(id)
}

fn update_user(org: &mut Org, before: &Record, mut after: Record) -> Result<(), SfError> {
    let o = ObjectType::User;
    let id = after.id();
    let old_username = value_of(o, before, "Username");
    let new_username = value_of(o, &after, "Username");
    if old_username != new_username {
        let name = new_username.as_text().unwrap_or_default();
        if org.user_by_username(name).is_some_and(|other| other != id) {
            return Err(duplicate_username());
        }
    }
    let old_profile = value_of(o, before, "ProfileId").as_id();
    let new_profile = value_of(o, &after, "ProfileId").as_id();
    let old_license = old_profile.and_then(|p| profile_license(org, p));
    let new_license = new_profile.and_then(|p| profile_license(org, p));
    let was_active = value_of(o, before, "IsActive").as_bool() == Some(true);
    let is_active = value_of(o, &after, "IsActive").as_bool() == Some(true);

    if old_profile != new_profile && old_license != new_license {
        // Directly assigned permission sets that need the old license block the change.
        if let Some(blocking) = licensed_sets_of(org, id)
            .into_iter()
            .find(|(_, l)| Some(*l) != new_license)
        {
            let label = field_of(org, ObjectType::PermissionSet, blocking.0, "Label");
            return Err(SfError::new(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                format!(
                    "The user license doesn't allow the permission: {}",
                    label.as_text().unwrap_or_default()
                ),
            ));
        }
    }
    let takes_seat = is_active && (!was_active || old_license != new_license);
    if takes_seat {
        if let Some(license) = new_license {
            if !license_has_room(org, ObjectType::UserLicense, license) {
                return Err(license_limit_exceeded());
            }
        }
    }
    if let Some(profile) = new_profile {
        let user_type = field_of(org, ObjectType::Profile, profile, "UserType");
        set(o, &mut after, "UserType", user_type);
    }
    set_name(&mut after);
    org.replace(o, after);

    if was_active {
        if let Some(license) = old_license {
            adjust_used(org, ObjectType::UserLicense, license, -1);
        }
    }
    if is_active {
        if let Some(license) = new_license {
            adjust_used(org, ObjectType::UserLicense, license, 1);
        }
    }
    if old_profile != new_profile {
        // The profile-owned assignment follows the profile.
        let stamp = org.stamp();
        if let Some(old_set) = old_profile.and_then(|p| profile_permission_set(org, p)) {
            let index = ObjectType::PermissionSetAssignment.schema();
            let assignee = index.field_index("AssigneeId").expect("known field");
            let set_index = index.field_index("PermissionSetId").expect("known field");
            let old: Vec<Id> = org
                .table(ObjectType::PermissionSetAssignment)
                .live
                .values()
                .filter(|r| {
                    r.get(assignee).as_id() == Some(id) && r.get(set_index).as_id() == Some(old_set)
                })
                .map(|r| r.id())
                .collect();
            for assignment in old {
                org.remove(ObjectType::PermissionSetAssignment, assignment);
            }
        }
        if let Some(new_set) = new_profile.and_then(|p| profile_permission_set(org, p)) {
            insert_assignment(org, id, new_set, None, stamp);
        }
    }
    Ok(())
}

/// (permission set, license) of every license-bound, directly assigned set of a user.
fn licensed_sets_of(org: &Org, user: Id) -> Vec<(Id, Id)> {
    let schema = ObjectType::PermissionSetAssignment.schema();
    let assignee = schema.field_index("AssigneeId").expect("known field");
    let set_index = schema.field_index("PermissionSetId").expect("known field");
    let group_index = schema
        .field_index("PermissionSetGroupId")
        .expect("known field");
    org.table(ObjectType::PermissionSetAssignment)
        .live
        .values()
        .filter(|r| r.get(assignee).as_id() == Some(user) && r.get(group_index).is_null())
        .filter_map(|r| r.get(set_index).as_id())
        .filter(|set| !is_profile_owned(org, *set))
        .filter_map(|set| {
            field_of(org, ObjectType::PermissionSet, set, "LicenseId")
                .as_id()
                .map(|l| (set, l))
        })
        .collect()
}

fn set_name(record: &mut Record) {
    let o = ObjectType::User;
    let first = value_of(o, record, "FirstName");
    let last = value_of(o, record, "LastName");
    let name = match (first.as_text(), last.as_text()) {
        (Some(first), Some(last)) => format!("{first} {last}"),
        (None, Some(last)) => last.to_owned(),
        (Some(first), None) => first.to_owned(),
        (None, None) => String::new(),
    };
    set(o, record, "Name", Value::text(name));
}

fn duplicate_username() -> SfError {
    SfError::new(
        400,
        "DUPLICATE_USERNAME",
        "Duplicate Username.<br>The username already exists in this or another Salesforce organization. Usernames must be unique across all Salesforce organizations. To resolve, use a different username (it doesn't need to match the user's email address).",
    )
    .with_fields(["Username"])
}

/// Inserts the UserLogin row every user has.
pub fn insert_login(org: &mut Org, user: Id, frozen: bool, stamp: i64) {
    let o = ObjectType::UserLogin;
    let mut values = vec![Value::Null; o.schema().fields.len()];
    values[0] = Value::Id(org.next_id(o));
    let mut record = Record { values };
    set(o, &mut record, "UserId", Value::Id(user));
    set(o, &mut record, "IsFrozen", Value::Bool(frozen));
    set(o, &mut record, "IsPasswordLocked", Value::Bool(false));
    set(o, &mut record, "LastModifiedDate", Value::DateTime(stamp));
    set(o, &mut record, "SystemModstamp", Value::DateTime(stamp));
    org.insert(o, record);
}

/// Inserts an assignment without checks (the generator and the user rules use it).
pub fn insert_assignment(org: &mut Org, user: Id, set_id: Id, group: Option<Id>, stamp: i64) -> Id {
    let o = ObjectType::PermissionSetAssignment;
    let mut values = vec![Value::Null; o.schema().fields.len()];
    let id = org.next_id(o);
    values[0] = Value::Id(id);
    let mut record = Record { values };
    set(o, &mut record, "AssigneeId", Value::Id(user));
    set(o, &mut record, "PermissionSetId", Value::Id(set_id));
    set(
        o,
        &mut record,
        "PermissionSetGroupId",
        group.map_or(Value::Null, Value::Id),
    );
    set(o, &mut record, "IsActive", Value::Bool(true));
    set(o, &mut record, "IsDeleted", Value::Bool(false));
    set_audit(o, &mut record, stamp, true);
    org.insert(o, record);
    id
}

fn create_assignment(org: &mut Org, mut record: Record) -> Result<Id, SfError> {
    let o = ObjectType::PermissionSetAssignment;
    let assignee = value_of(o, &record, "AssigneeId")
        .as_id()
        .expect("required field");
    let set_id = value_of(o, &record, "PermissionSetId").as_id();
    let group = value_of(o, &record, "PermissionSetGroupId").as_id();
    let (target, set_id) = match (set_id, group) {
        (Some(_), Some(_)) => {
            return Err(SfError::new(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                "Specify either a permission set or a permission set group, not both.",
            ))
        }
        (None, None) => {
            return Err(SfError::new(
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [PermissionSetId]",
            )
            .with_fields(["PermissionSetId"]))
        }
        (Some(set_id), None) => {
            if is_profile_owned(org, set_id) {
                return Err(profile_owned_error());
            }
            if field_of(org, ObjectType::PermissionSet, set_id, "Type").as_text() == Some("Group") {
                // UNCONFIRMED: code and text for assigning a group's aggregate set directly.
                return Err(SfError::new(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    "You can't assign a permission set group's aggregate permission set. Assign the permission set group instead.",
                ));
            }
            if let Some(license) =
                field_of(org, ObjectType::PermissionSet, set_id, "LicenseId").as_id()
            {
                if user_license(org, assignee) != Some(license) {
                    let label = field_of(org, ObjectType::PermissionSet, set_id, "Label");
                    return Err(SfError::new(
                        400,
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!(
                            "The user license doesn't allow the permission: {}",
                            label.as_text().unwrap_or_default()
                        ),
                    ));
                }
            }
            (set_id, set_id)
        }
        (None, Some(group)) => {
            let aggregate = children_of(
                org,
                ObjectType::PermissionSet,
                "PermissionSetGroupId",
                group,
            )
            .into_iter()
            .next();
            (group, aggregate.unwrap_or(group))
        }
    };
    if org.has_assignment(assignee, target) {
        return Err(SfError::new(
            400,
            "DUPLICATE_VALUE",
            format!(
                "Duplicate PermissionSetAssignment. Assignee: {assignee}; Permission Set: {target}"
            ),
        ));
    }
    set(o, &mut record, "PermissionSetId", Value::Id(set_id));
    set(o, &mut record, "IsActive", Value::Bool(true));
    let id = record.id();
    org.insert(o, record);
    Ok(id)
}

fn create_permission_set(org: &mut Org, mut record: Record) -> Result<Id, SfError> {
    let o = ObjectType::PermissionSet;
    let name = value_of(o, &record, "Name");
    let name_index = o.schema().field_index("Name").expect("known field");
    if org.table(o).live.values().any(|ps| {
        ps.get(name_index).as_text().map(str::to_lowercase) == name.as_text().map(str::to_lowercase)
    }) {
        // UNCONFIRMED: the code for a duplicate API name.
        return Err(SfError::new(
            400,
            "DUPLICATE_DEVELOPER_NAME",
            "The API Name you entered is already in use. Please enter another.",
        )
        .with_fields(["Name"]));
    }
    set(o, &mut record, "IsOwnedByProfile", Value::Bool(false));
    set(o, &mut record, "IsCustom", Value::Bool(true));
    set(o, &mut record, "Type", Value::text("Regular"));
    let id = record.id();
    org.insert(o, record);
    Ok(id)
}

fn create_permission_set_group(org: &mut Org, mut record: Record) -> Result<Id, SfError> {
    let o = ObjectType::PermissionSetGroup;
    set(o, &mut record, "Status", Value::text("Updated"));
    let id = record.id();
    let label = value_of(o, &record, "MasterLabel");
    let stamp = org.stamp();
    org.insert(o, record);
    insert_aggregate_set(org, id, label.as_text().unwrap_or_default(), stamp);
    Ok(id)
}

/// The aggregate permission set Salesforce keeps for every permission set group.
pub fn insert_aggregate_set(org: &mut Org, group: Id, label: &str, stamp: i64) -> Id {
    let o = ObjectType::PermissionSet;
    let mut values = vec![Value::Null; o.schema().fields.len()];
    let id = org.next_id(o);
    values[0] = Value::Id(id);
    let mut record = Record { values };
    fill_defaults(o, &mut record);
    set(
        o,
        &mut record,
        "Name",
        Value::text(format!("X{}", id.as_str())),
    );
    set(
        o,
        &mut record,
        "Label",
        Value::text(format!("Group {label}")),
    );
    set(o, &mut record, "PermissionSetGroupId", Value::Id(group));
    set(o, &mut record, "IsOwnedByProfile", Value::Bool(false));
    set(o, &mut record, "IsCustom", Value::Bool(false));
    set(o, &mut record, "Type", Value::text("Group"));
    set_audit(o, &mut record, stamp, true);
    org.insert(o, record);
    id
}

fn create_license_assignment(org: &mut Org, record: Record) -> Result<Id, SfError> {
    let o = ObjectType::PermissionSetLicenseAssign;
    let assignee = value_of(o, &record, "AssigneeId").as_id();
    let license = value_of(o, &record, "PermissionSetLicenseId")
        .as_id()
        .expect("required field");
    let assignee_index = o.schema().field_index("AssigneeId").expect("known field");
    let license_index = o
        .schema()
        .field_index("PermissionSetLicenseId")
        .expect("known field");
    if org.table(o).live.values().any(|r| {
        r.get(assignee_index).as_id() == assignee && r.get(license_index).as_id() == Some(license)
    }) {
        return Err(SfError::new(
            400,
            "DUPLICATE_VALUE",
            "duplicate value found: PermissionSetLicenseAssign",
        ));
    }
    if !license_has_room(org, ObjectType::PermissionSetLicense, license) {
        return Err(license_limit_exceeded());
    }
    let id = record.id();
    org.insert(o, record);
    adjust_used(org, ObjectType::PermissionSetLicense, license, 1);
    Ok(id)
}

fn create_group_member(org: &mut Org, record: Record) -> Result<Id, SfError> {
    let o = ObjectType::GroupMember;
    let group_index = o.schema().field_index("GroupId").expect("known field");
    let member_index = o
        .schema()
        .field_index("UserOrGroupId")
        .expect("known field");
    let group = record.get(group_index).as_id();
    let member = record.get(member_index).as_id();
    if member.is_some_and(|m| !matches!(m.prefix(), "005" | "00G")) {
        return Err(SfError::new(
            400,
            "FIELD_INTEGRITY_EXCEPTION",
            "UserOrGroupId: a group member must be a user or a group",
        )
        .with_fields(["UserOrGroupId"]));
    }
    if org
        .table(o)
        .live
        .values()
        .any(|r| r.get(group_index).as_id() == group && r.get(member_index).as_id() == member)
    {
        return Err(SfError::new(
            400,
            "DUPLICATE_VALUE",
            "duplicate value found: GroupMember",
        ));
    }
    let id = record.id();
    org.insert(o, record);
    Ok(id)
}
