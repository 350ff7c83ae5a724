//! Records: `sobjects` describe, read, create, update, delete, and the `updated`/`deleted`
//! replication endpoints.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};

use super::rest::check_version;
use super::session::SessionUser;
use super::{error_response, Emulator};
use crate::error::SfError;
use crate::id::Id;
use crate::org::Org;
use crate::record::{format_datetime, parse_datetime, Value};
use crate::rules;
use crate::schema::{FieldType, ObjectType};

pub fn router() -> Router<Arc<Emulator>> {
    Router::new()
        .route("/services/data/{version}/sobjects", get(describe_global))
        .route("/services/data/{version}/sobjects/", get(describe_global))
        .route(
            "/services/data/{version}/sobjects/{object}",
            get(object_info).post(create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/",
            get(object_info).post(create),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe",
            get(describe),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/describe/",
            get(describe),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/updated",
            get(updated),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/updated/",
            get(updated),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/deleted",
            get(deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/deleted/",
            get(deleted),
        )
        .route(
            "/services/data/{version}/sobjects/{object}/{id}",
            get(read).patch(update).delete(remove),
        )
}

fn respond(result: Result<Response, SfError>) -> Response {
    result.unwrap_or_else(|err| error_response(&err))
}

/// The object a path names, if the org has it.
pub(super) fn object_of(org: &Org, name: &str) -> Result<ObjectType, SfError> {
    ObjectType::from_name(name)
        .filter(|object| org.has_object(*object))
        .ok_or_else(|| SfError::new(404, "NOT_FOUND", "The requested resource does not exist"))
}

pub(super) fn parse_id(text: &str) -> Result<Id, SfError> {
    Id::parse(text).ok_or_else(|| {
        SfError::new(
            400,
            "MALFORMED_ID",
            format!("Provided external ID field does not exist or is not accessible: {text}"),
        )
    })
}

/// A JSON object body, or Salesforce's parser error.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Json_>, SfError> {
    match serde_json::from_slice::<Json_>(body) {
        Ok(Json_::Object(map)) => Ok(map),
        Ok(_) => Err(SfError::new(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of SObject from a non-object value",
        )),
        Err(err) => Err(SfError::new(
            400,
            "JSON_PARSER_ERROR",
            format!("Unexpected character: {err}"),
        )),
    }
}

fn field_describe(field: &crate::schema::FieldSchema) -> Json_ {
    let (kind, soap) = match field.field_type {
        FieldType::Id => ("id", "tns:ID"),
        FieldType::String => ("string", "xsd:string"),
        FieldType::Email => ("email", "xsd:string"),
        FieldType::Picklist => ("picklist", "xsd:string"),
        FieldType::Boolean => ("boolean", "xsd:boolean"),
        FieldType::Int => ("int", "xsd:int"),
        FieldType::DateTime => ("datetime", "xsd:dateTime"),
        FieldType::Date => ("date", "xsd:date"),
        FieldType::Reference(_) | FieldType::AnyId => ("reference", "tns:ID"),
    };
    let reference_to: Vec<&str> = match field.field_type {
        FieldType::Reference(target) => vec![target.name()],
        FieldType::AnyId => vec!["User", "Group"],
        _ => vec![],
    };
    json!({
        "name": field.name,
        "label": field.name,
        "type": kind,
        "soapType": soap,
        "length": field.length,
        "nillable": field.nillable,
        "createable": field.createable,
        "updateable": field.updateable,
        "filterable": true,
        "sortable": true,
        "custom": false,
        "defaultedOnCreate": field.field_type == FieldType::Boolean,
        "referenceTo": reference_to,
        "relationshipName": field.relationship,
    })
}

fn object_summary(object: ObjectType) -> Json_ {
    let name = object.name();
    json!({
        "name": name,
        "label": name,
        "keyPrefix": object.key_prefix(),
        "queryable": true,
        "retrieveable": true,
        "createable": !matches!(object, ObjectType::Organization | ObjectType::UserLogin | ObjectType::UserLicense | ObjectType::PermissionSetLicense),
        "updateable": !matches!(object, ObjectType::Organization | ObjectType::UserLicense | ObjectType::PermissionSetLicense),
        "deletable": object.deletable(),
        "replicateable": object.has_replication_endpoints(),
        "custom": false,
        "urls": {
            "sobject": format!("/services/data/v{{version}}/sobjects/{name}"),
            "describe": format!("/services/data/v{{version}}/sobjects/{name}/describe"),
            "rowTemplate": format!("/services/data/v{{version}}/sobjects/{name}/{{ID}}"),
        },
    })
}

async fn describe_global(
    State(emulator): State<Arc<Emulator>>,
    Path(version): Path<String>,
) -> Response {
    respond((|| {
        let version = super::major(check_version(&version)?);
        let org = emulator.org.read();
        let objects: Vec<Json_> = ObjectType::ALL
            .into_iter()
            .filter(|o| org.has_object(*o) && o.since() <= version)
            .map(object_summary)
            .collect();
        Ok(
            Json(json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects }))
                .into_response(),
        )
    })())
}

async fn object_info(
    State(emulator): State<Arc<Emulator>>,
    Path((version, object)): Path<(String, String)>,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let object = object_of(&emulator.org.read(), &object)?;
        Ok(
            Json(json!({ "objectDescribe": object_summary(object), "recentItems": [] }))
                .into_response(),
        )
    })())
}

async fn describe(
    State(emulator): State<Arc<Emulator>>,
    Path((version, object)): Path<(String, String)>,
) -> Response {
    respond((|| {
        let version = super::major(check_version(&version)?);
        let org = emulator.org.read();
        let object = object_of(&org, &object).and_then(|object| {
            if object.since() <= version {
                Ok(object)
            } else {
                Err(SfError::not_found())
            }
        })?;
        let schema = object.schema();
        let mut body = object_summary(object);
        // Only what this user may see here, at this version (field-level security, the org's
        // features, the fields the version has).
        body["fields"] = Json_::Array(
            schema
                .fields
                .iter()
                .enumerate()
                .filter(|(index, _)| org.field_visible_at(object, *index, version))
                .map(|(_, field)| field_describe(field))
                .collect(),
        );
        body["childRelationships"] = Json_::Array(
            schema
                .children
                .iter()
                .filter(|c| org.has_object(c.child) && c.child.since() <= version)
                .map(|c| json!({ "childSObject": c.child.name(), "field": c.field, "relationshipName": c.name, "cascadeDelete": false }))
                .collect(),
        );
        Ok(Json(body).into_response())
    })())
}

#[derive(Debug, Deserialize)]
struct FieldsParam {
    fields: Option<String>,
}

async fn read(
    State(emulator): State<Arc<Emulator>>,
    Path((version, object, id)): Path<(String, String, String)>,
    Query(params): Query<FieldsParam>,
) -> Response {
    respond((|| {
        let version = check_version(&version)?;
        let major = super::major(version);
        let org = emulator.org.read();
        let object = object_of(&org, &object)?;
        if object.since() > major {
            return Err(SfError::not_found());
        }
        let id = parse_id(&id)?;
        let record = match org.get(object, id) {
            Some(record) => record.clone(),
            None if org.is_deleted(object, id) => return Err(SfError::entity_is_deleted()),
            None => return Err(SfError::not_found()),
        };
        let schema = object.schema();
        let wanted: Vec<usize> = match params.fields {
            Some(list) => list
                .split(',')
                .map(|name| {
                    let visible = schema
                        .field_index(name.trim())
                        .filter(|index| org.field_visible_at(object, *index, major));
                    visible.ok_or_else(|| {
                        SfError::new(
                            400,
                            "INVALID_FIELD",
                            format!(
                                "No such column '{}' on sobject of type {}",
                                name.trim(),
                                object.name()
                            ),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            None => (0..schema.fields.len())
                .filter(|index| org.field_visible_at(object, *index, major))
                .collect(),
        };
        let mut body = Map::new();
        body.insert(
            "attributes".into(),
            json!({ "type": object.name(), "url": format!("/services/data/v{version}/sobjects/{}/{}", object.name(), id) }),
        );
        for index in wanted {
            body.insert(
                schema.fields[index].name.to_owned(),
                record.get(index).to_json(),
            );
        }
        Ok(Json(Json_::Object(body)).into_response())
    })())
}

/// The checks every write makes before touching the org.
pub(super) fn before_write(
    emulator: &Emulator,
    org: &Org,
    user: SessionUser,
    object: ObjectType,
) -> Result<(), SfError> {
    rules::check_write_access(org, user.0, object)?;
    let rate = emulator.faults.read().lock_row_rate;
    if emulator.roll(rate) {
        return Err(SfError::new(
            400,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record",
        ));
    }
    Ok(())
}

async fn create(
    State(emulator): State<Arc<Emulator>>,
    Extension(user): Extension<SessionUser>,
    Path((version, object)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let fields = json_object(&body)?;
        let mut org = emulator.org.write();
        let object = object_of(&org, &object)?;
        before_write(&emulator, &org, user, object)?;
        let id = rules::create(&mut org, object, &fields)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({ "id": id.as_str(), "success": true, "errors": [] })),
        )
            .into_response())
    })())
}

async fn update(
    State(emulator): State<Arc<Emulator>>,
    Extension(user): Extension<SessionUser>,
    Path((version, object, id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let fields = json_object(&body)?;
        let mut org = emulator.org.write();
        let object = object_of(&org, &object)?;
        let id = parse_id(&id)?;
        before_write(&emulator, &org, user, object)?;
        rules::update(&mut org, object, id, &fields)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

async fn remove(
    State(emulator): State<Arc<Emulator>>,
    Extension(user): Extension<SessionUser>,
    Path((version, object, id)): Path<(String, String, String)>,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let mut org = emulator.org.write();
        let object = object_of(&org, &object)?;
        let id = parse_id(&id)?;
        before_write(&emulator, &org, user, object)?;
        rules::delete(&mut org, object, id)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })())
}

#[derive(Debug, Deserialize)]
struct Window {
    start: Option<String>,
    end: Option<String>,
}

fn window(params: &Window) -> Result<(i64, i64), SfError> {
    let parse = |value: &Option<String>, name: &str| {
        value.as_deref().and_then(parse_datetime).ok_or_else(|| {
            SfError::new(
                400,
                "INVALID_REPLICATION_DATE",
                format!("{name} must be a date-time such as 2024-01-01T00:00:00+00:00"),
            )
        })
    };
    let start = parse(&params.start, "start")?;
    let end = parse(&params.end, "end")?;
    if end < start {
        return Err(SfError::new(
            400,
            "INVALID_REPLICATION_DATE",
            "end must not be before start",
        ));
    }
    Ok((start, end))
}

fn replicated(org: &Org, name: &str) -> Result<ObjectType, SfError> {
    let object = object_of(org, name)?;
    if object.has_replication_endpoints() {
        Ok(object)
    } else {
        // UNCONFIRMED: the code for an object that is not replicateable.
        Err(SfError::new(
            400,
            "INVALID_TYPE",
            format!("sObject type {} is not replicateable", object.name()),
        ))
    }
}

/// The rows (id, stamp) that changed within a window, and the window.
struct Changed {
    rows: Vec<(Id, i64)>,
    start: i64,
    end: i64,
}

/// Rows of a replicateable object whose `SystemModstamp` falls in the window: live rows for
/// `updated`, deleted rows for `deleted`.
fn changed_in_window(
    org: &Org,
    name: &str,
    params: &Window,
    deleted: bool,
) -> Result<Changed, SfError> {
    let object = replicated(org, name)?;
    let (start, end) = window(params)?;
    let stamp = object
        .schema()
        .field_index("SystemModstamp")
        .expect("replicated objects have it");
    let table = org.table(object);
    let rows = if deleted { &table.deleted } else { &table.live };
    let changed = rows
        .iter()
        .filter_map(|(id, r)| match r.get(stamp) {
            Value::DateTime(t) if *t >= start && *t <= end => Some((*id, *t)),
            _ => None,
        })
        .collect();
    Ok(Changed {
        rows: changed,
        start,
        end,
    })
}

async fn updated(
    State(emulator): State<Arc<Emulator>>,
    Path((version, object)): Path<(String, String)>,
    Query(params): Query<Window>,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let changed = changed_in_window(&emulator.org.read(), &object, &params, false)?;
        let ids: Vec<&str> = changed.rows.iter().map(|(id, _)| id.as_str()).collect();
        let latest = format_datetime(changed.end);
        Ok(Json(json!({ "ids": ids, "latestDateCovered": latest })).into_response())
    })())
}

async fn deleted(
    State(emulator): State<Arc<Emulator>>,
    Path((version, object)): Path<(String, String)>,
    Query(params): Query<Window>,
) -> Response {
    respond((|| {
        check_version(&version)?;
        let changed = changed_in_window(&emulator.org.read(), &object, &params, true)?;
        let records: Vec<Json_> = changed
            .rows
            .iter()
            .map(|(id, at)| json!({ "id": id.as_str(), "deletedDate": format_datetime(*at) }))
            .collect();
        Ok(Json(json!({
            "deletedRecords": records,
            "earliestDateAvailable": format_datetime(changed.start),
            "latestDateCovered": format_datetime(changed.end),
        }))
        .into_response())
    })())
}
