//! From a parsed [`Filter`] and `sortBy` to what the store selects and sorts by: attribute
//! paths resolve through the [`schema`](super::schema) tables to the model's columns, values
//! are checked against the attributes' types, constants fold, and multi-valued attributes held
//! in other rows (a user's entitlements, a group's members) become [`Criterion::Any`], so
//! `entitlements[type eq "PermissionSet" and value eq "0PS..."]` means one entitlement matching
//! both, as RFC 7644 says. The store writes the SQL.

use serde_json::Value;

use super::error::ScimError;
use super::filter::{AttrPath, Filter, Op};
use super::schema::{self, Attr, ResourceType, Source, Type};
use crate::store::scim::{Collection, Criterion, Order, TextOp, TimeOp};

/// The most comparisons (and `pr` tests) one filter may hold. Identity providers send one or
/// two; a client looking users up in bulk (`id eq "1" or id eq "2" or ...`) a few dozen.
pub const MAX_TERMS: usize = 100;

/// The most subqueries one filter may cause: each `attr[...]` value filter, and each
/// comparison of a multi-valued attribute held in another table (`entitlements.value eq`,
/// `members.display co`), is one `EXISTS` evaluated per candidate row, the costly part of a
/// filter (170 of them held a core for 18 s on a 100,000-user org; ten `roles[display co]`
/// took 2.1 s there). Identity providers send one (Entra's `members[value eq "..."]`).
pub const MAX_SUBQUERIES: usize = 5;

/// What a filter is about.
#[derive(Clone, Copy)]
pub struct Target {
    pub resource: &'static ResourceType,
}

/// Resolves `filter` for `target`. A filter beyond [`MAX_TERMS`] or [`MAX_SUBQUERIES`] is
/// refused as `invalidFilter`, saying the limit.
pub fn resolve(target: &Target, filter: &Filter) -> Result<Criterion, ScimError> {
    within_limits(target, filter)?;
    node(target, filter, None)
}

/// Refuses a filter beyond [`MAX_TERMS`] or [`MAX_SUBQUERIES`] for `target`.
pub fn within_limits(target: &Target, filter: &Filter) -> Result<(), ScimError> {
    let mut cost = Cost::default();
    cost.add(target, filter, false);
    if cost.subqueries > MAX_SUBQUERIES {
        return Err(ScimError::invalid_filter(format!(
            "the filter tests a multi-valued attribute (entitlements, groups, roles, members: `attr[...]` or `attr.sub op value`) {} times; at most {MAX_SUBQUERIES} such tests are allowed in one filter, as each is a subquery per {}: split the query",
            cost.subqueries,
            target.resource.name
        )));
    }
    if cost.terms > MAX_TERMS {
        return Err(ScimError::invalid_filter(format!(
            "the filter compares {} attributes; at most {MAX_TERMS} are allowed in one filter: split the query",
            cost.terms
        )));
    }
    Ok(())
}

/// What a filter costs to run: its comparisons and its subqueries.
#[derive(Debug, Default, PartialEq, Eq)]
struct Cost {
    terms: usize,
    subqueries: usize,
}

impl Cost {
    /// Adds `filter`'s cost; `within` when it is inside a value filter, whose subquery is
    /// counted once for all its terms. Paths that do not resolve cost nothing here: resolving
    /// refuses them.
    fn add(&mut self, target: &Target, filter: &Filter, within: bool) {
        let held_elsewhere = |path: &AttrPath| {
            !within
                && schema::resolve(target.resource, path).is_ok_and(|resolved| {
                    matches!(resolved.attr.source, Source::Grants(_) | Source::Members)
                })
        };
        match filter {
            Filter::And(left, right) | Filter::Or(left, right) => {
                self.add(target, left, within);
                self.add(target, right, within);
            }
            Filter::Not(inner) => self.add(target, inner, within),
            Filter::ValuePath { attr, filter } => {
                if held_elsewhere(attr) {
                    self.subqueries += 1;
                }
                self.add(target, filter, true);
            }
            Filter::Present(path) | Filter::Compare { path, .. } => {
                self.terms += 1;
                if held_elsewhere(path) {
                    self.subqueries += 1;
                }
            }
        }
    }
}

/// `within` is the complex attribute whose values a `[...]` filter is about.
fn node(
    target: &Target,
    filter: &Filter,
    within: Option<&'static Attr>,
) -> Result<Criterion, ScimError> {
    Ok(match filter {
        Filter::And(left, right) => Criterion::And(
            Box::new(node(target, left, within)?),
            Box::new(node(target, right, within)?),
        ),
        Filter::Or(left, right) => Criterion::Or(
            Box::new(node(target, left, within)?),
            Box::new(node(target, right, within)?),
        ),
        Filter::Not(inner) => Criterion::Not(Box::new(node(target, inner, within)?)),
        Filter::ValuePath { attr, filter } => {
            if within.is_some() {
                return Err(ScimError::invalid_filter("value filters do not nest"));
            }
            let resolved = schema::resolve(target.resource, attr)?;
            if resolved.attr.ty != Type::Complex {
                return Err(ScimError::invalid_filter(format!(
                    "`{attr}[...]`: only complex attributes (such as emails, entitlements, members) take a value filter"
                )));
            }
            values_of(resolved.attr, node(target, filter, Some(resolved.attr))?)
        }
        Filter::Present(path) => {
            let (attr, sub) = locate(target, path, within)?;
            match sub {
                Some(sub) => values_of(attr, present(sub)?),
                None if !attr.sub.is_empty() => {
                    // A complex attribute is present when any of its values is.
                    let mut any: Option<Criterion> = None;
                    for sub in attr.sub.iter().filter(|s| s.source != Source::None) {
                        let one = present(sub)?;
                        any = Some(match any {
                            Some(before) => Criterion::Or(Box::new(before), Box::new(one)),
                            None => one,
                        });
                    }
                    values_of(attr, any.unwrap_or(Criterion::Const(false)))
                }
                None => present(attr)?,
            }
        }
        Filter::Compare { path, op, value } => {
            let (attr, sub) = locate(target, path, within)?;
            let held_elsewhere = matches!(attr.source, Source::Grants(_) | Source::Members);
            match sub {
                // `roles.value eq null`: the user has no role with a value, not "has a role
                // whose value is null" (which no stored role is).
                Some(sub) if value.is_null() && held_elsewhere && matches!(op, Op::Eq | Op::Ne) => {
                    let any = values_of(attr, compare(sub, Op::Ne, value)?);
                    if *op == Op::Eq {
                        Criterion::Not(Box::new(any))
                    } else {
                        any
                    }
                }
                Some(sub) => values_of(attr, compare(sub, *op, value)?),
                None => compare(attr, *op, value)?,
            }
        }
    })
}

/// The attribute a path names, and the sub-attribute compared (a complex attribute compared
/// as a whole compares its `value`).
fn locate(
    target: &Target,
    path: &AttrPath,
    within: Option<&'static Attr>,
) -> Result<(&'static Attr, Option<&'static Attr>), ScimError> {
    if let Some(parent) = within {
        return Ok((schema::resolve_sub(parent, path)?, None));
    }
    let resolved = schema::resolve(target.resource, path)?;
    match resolved.sub {
        Some(sub) => Ok((resolved.attr, Some(sub))),
        None if resolved.attr.ty == Type::Complex => {
            let value = resolved
                .attr
                .sub
                .iter()
                .find(|s| s.name == "value")
                .ok_or_else(|| {
                    ScimError::invalid_filter(format!(
                        "`{path}` is complex: name one of its sub-attributes ({})",
                        resolved
                            .attr
                            .sub
                            .iter()
                            .map(|s| format!("{}.{}", resolved.attr.name, s.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            Ok((resolved.attr, Some(value)))
        }
        None => Ok((resolved.attr, None)),
    }
}

/// `inner` about the values of the complex attribute `attr`: over the rows holding them, or
/// as is when they are columns of the resource's own row.
fn values_of(attr: &'static Attr, inner: Criterion) -> Criterion {
    match attr.source {
        Source::Grants(scope) => Criterion::Any {
            collection: Collection::Grants(scope),
            criterion: Box::new(inner),
        },
        Source::Members => Criterion::Any {
            collection: Collection::Members,
            criterion: Box::new(inner),
        },
        _ => inner,
    }
}

fn not_filterable(attr: &Attr) -> ScimError {
    ScimError::invalid_filter(format!("`{}` cannot be filtered on", attr.name))
}

fn present(attr: &Attr) -> Result<Criterion, ScimError> {
    match attr.source {
        Source::Column(column) => Ok(Criterion::Present(column)),
        Source::Const(_) | Source::ConstTrue => Ok(Criterion::Const(true)),
        Source::None | Source::Grants(_) | Source::Members => Err(not_filterable(attr)),
    }
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        // Entra ID sends booleans as strings.
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn compare(attr: &Attr, op: Op, value: &Value) -> Result<Criterion, ScimError> {
    let wrong = |expected: &str| {
        ScimError::invalid_filter(format!(
            "`{} {} {value}`: {} is {expected}",
            attr.name,
            op.as_str(),
            attr.name
        ))
    };
    let column = match attr.source {
        Source::Column(column) => column,
        Source::Const(constant) => {
            let Value::String(text) = value else {
                return Ok(Criterion::Const(op == Op::Ne));
            };
            let (a, b) = if attr.case_exact {
                (constant.to_owned(), text.clone())
            } else {
                (constant.to_lowercase(), text.to_lowercase())
            };
            return Ok(Criterion::Const(match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
            }));
        }
        Source::ConstTrue => {
            let wanted =
                as_bool(value).ok_or_else(|| wrong("a boolean: compare it with true or false"))?;
            return Ok(Criterion::Const(match op {
                Op::Eq => wanted,
                Op::Ne => !wanted,
                _ => return Err(wrong("a boolean: only eq, ne and pr apply")),
            }));
        }
        Source::None | Source::Grants(_) | Source::Members => return Err(not_filterable(attr)),
    };
    match attr.ty {
        Type::Boolean => {
            let wanted =
                as_bool(value).ok_or_else(|| wrong("a boolean: compare it with true or false"))?;
            match op {
                Op::Eq | Op::Ne => Ok(Criterion::Flag {
                    column,
                    value: (op == Op::Eq) == wanted,
                }),
                _ => Err(wrong("a boolean: only eq, ne and pr apply")),
            }
        }
        Type::DateTime => {
            let Value::String(text) = value else {
                return Err(wrong("a dateTime: quote an RFC 3339 time"));
            };
            let op = match op {
                Op::Eq => TimeOp::Eq,
                Op::Ne => TimeOp::Ne,
                Op::Gt => TimeOp::Gt,
                Op::Ge => TimeOp::Ge,
                Op::Lt => TimeOp::Lt,
                Op::Le => TimeOp::Le,
                Op::Co | Op::Sw | Op::Ew => {
                    return Err(wrong("a dateTime: co, sw and ew do not apply"))
                }
            };
            let at = provost_connector::times::parse_rfc3339(text).ok_or_else(|| {
                wrong("a dateTime: give an RFC 3339 time such as 2024-03-31T23:59:59Z")
            })?;
            Ok(Criterion::Time { column, op, at })
        }
        _ => match value {
            Value::String(text) => Ok(Criterion::Text {
                column,
                op: match op {
                    Op::Eq => TextOp::Eq,
                    Op::Ne => TextOp::Ne,
                    Op::Gt => TextOp::Gt,
                    Op::Ge => TextOp::Ge,
                    Op::Lt => TextOp::Lt,
                    Op::Le => TextOp::Le,
                    Op::Co => TextOp::Contains,
                    Op::Sw => TextOp::StartsWith,
                    Op::Ew => TextOp::EndsWith,
                },
                value: text.clone(),
                case_exact: attr.case_exact,
            }),
            Value::Null if matches!(op, Op::Eq | Op::Ne) => Ok(Criterion::Null {
                column,
                null: op == Op::Eq,
            }),
            _ => Err(wrong("a string: quote the value")),
        },
    }
}

/// The order `sortBy` asks for (an attribute without a column, such as a constant, sorts by
/// id).
pub fn order_by(
    target: &Target,
    sort_by: Option<&str>,
    descending: bool,
) -> Result<Order, ScimError> {
    let by_id = Order {
        by: None,
        descending,
    };
    let Some(sort_by) = sort_by else {
        return Ok(by_id);
    };
    let path = super::filter::parse_attr_path(sort_by)
        .map_err(|err| ScimError::invalid_value(format!("sortBy: {}", err.detail)))?;
    let (attr, sub) = locate(target, &path, None)
        .map_err(|err| ScimError::invalid_value(format!("sortBy: {}", err.detail)))?;
    let sorted = sub.unwrap_or(attr);
    if matches!(attr.source, Source::Grants(_) | Source::Members) {
        return Err(ScimError::invalid_value(format!(
            "sortBy={sort_by}: sorting by a multi-valued attribute held elsewhere is not supported; sort by a single-valued one such as userName"
        )));
    }
    match sorted.source {
        Source::Column(column) => Ok(Order {
            by: Some((column, sorted.case_exact)),
            descending,
        }),
        Source::Const(_) | Source::ConstTrue => Ok(by_id),
        Source::None | Source::Grants(_) | Source::Members => Err(ScimError::invalid_value(
            format!("sortBy: `{}` cannot be filtered on", sorted.name),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse;
    use crate::store::scim::{criterion_sql, order_sql, ScimTable};
    use crate::store::Backend;

    fn users() -> Target {
        Target {
            resource: schema::resource_type("User").unwrap(),
        }
    }

    /// The SQL a filter of users becomes on `backend`, and its parameters.
    fn sql_on(backend: Backend, filter: &str) -> (String, Vec<String>) {
        let criterion = resolve(&users(), &parse(filter).unwrap()).unwrap();
        criterion_sql(backend, ScimTable::Accounts, &criterion)
    }

    fn sql(filter: &str) -> (String, Vec<String>) {
        sql_on(Backend::Sqlite, filter)
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let (text, binds) = sql(r#"userName eq "x'; DROP TABLE accounts; --""#);
        assert_eq!(text, "(lower((a.username)) = lower(?))");
        assert_eq!(binds, vec!["x'; DROP TABLE accounts; --".to_owned()]);
    }

    #[test]
    fn case_exact_and_case_insensitive_attributes() {
        assert_eq!(sql(r#"id eq "005""#).0, "(a.id = (?))");
        assert_eq!(
            sql(r#"externalId sw "ab""#).0,
            "(substr(json_extract(a.attributes, '$.FederationIdentifier'), 1, length(?)) = ?)"
        );
        let (text, binds) = sql(r#"displayName co "50%_off""#);
        assert_eq!(text, "(lower((a.display_name)) LIKE lower(?) ESCAPE '\\')");
        assert_eq!(binds, vec!["%50\\%\\_off%".to_owned()]);
    }

    #[test]
    fn multi_valued_attributes_become_exists() {
        let (text, binds) = sql(r#"entitlements[type eq "PermissionSet" and value eq "0PS1"]"#);
        assert!(
            text.starts_with("EXISTS (SELECT 1 FROM grants g JOIN entitlements e"),
            "{text}"
        );
        assert_eq!(text.matches("EXISTS").count(), 1);
        assert_eq!(binds.len(), 2);
        let (two, _) =
            sql(r#"entitlements.type eq "PermissionSet" and entitlements.value eq "0PS1""#);
        assert_eq!(two.matches("EXISTS").count(), 2);
    }

    #[test]
    fn constants_fold_and_booleans_accept_strings() {
        assert_eq!(sql(r#"emails[type eq "work"]"#).0, "TRUE");
        assert_eq!(sql(r#"emails.type eq "home""#).0, "FALSE");
        assert_eq!(
            sql("active eq \"False\"").0,
            "NOT COALESCE((a.active = TRUE), FALSE)"
        );
        assert_eq!(
            sql("not (active eq true)").0,
            "NOT COALESCE((COALESCE((a.active = TRUE), FALSE)), FALSE)"
        );
    }

    #[test]
    fn wrong_types_and_unknown_attributes_are_invalid_filters() {
        for (filter, says) in [
            ("nickName eq \"x\"", "no attribute"),
            ("active gt true", "only eq, ne and pr"),
            ("userName eq 5", "a string"),
            ("name eq \"x\"", "is complex"),
            ("emails[foo eq \"x\"]", "no sub-attribute"),
            (
                "urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq \"x\"",
                "no attribute",
            ),
            (
                "urn:provost:scim:schemas:extension:salesforce:2.0:User:lastLogin gt \"yesterday\"",
                "RFC 3339",
            ),
        ] {
            let err = resolve(&users(), &parse(filter).unwrap()).unwrap_err();
            assert_eq!(err.scim_type, Some("invalidFilter"), "{filter}");
            assert!(err.detail.contains(says), "{filter}: {}", err.detail);
        }
    }

    #[test]
    fn times_compare_in_salesforce_form_and_postgres_orders_bytes() {
        let (text, binds) = sql(r#"meta.created ge "2024-03-31T23:00:00+02:00""#);
        assert_eq!(text, "(json_extract(a.attributes, '$.CreatedDate') >= ?)");
        assert_eq!(binds, vec!["2024-03-31T21:00:00.000+0000".to_owned()]);
        let (pg, _) = sql_on(Backend::Postgres, r#"userName gt "m""#);
        assert_eq!(pg, "(lower((a.username)) COLLATE \"C\" > lower(?))");
    }

    #[test]
    fn sort_keys() {
        let target = users();
        let order = |sort_by, descending| {
            order_sql(
                Backend::Sqlite,
                ScimTable::Accounts,
                order_by(&target, sort_by, descending).unwrap(),
            )
        };
        assert_eq!(order(None, false), "a.id");
        assert_eq!(
            order(Some("name.familyName"), true),
            "(lower((a.last_name))) IS NULL, lower((a.last_name)) DESC, a.id DESC"
        );
        assert_eq!(
            order_by(&target, Some("entitlements"), false)
                .unwrap_err()
                .scim_type,
            Some("invalidValue")
        );
    }
}
