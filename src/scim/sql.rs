//! From a parsed [`Filter`] and `sortBy` to SQL run by the store: attribute paths resolve
//! through the [`schema`](super::schema) tables to SQL expressions that are constants of the
//! code; every value from the request is a bound parameter. Multi-valued attributes held in
//! other tables (a user's entitlements, a group's members) become `EXISTS` subqueries, so
//! `entitlements[type eq "PermissionSet" and value eq "0PS..."]` means one entitlement
//! matching both, as RFC 7644 says.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use super::error::ScimError;
use super::filter::{AttrPath, Filter, Op};
use super::schema::{self, Attr, ResourceType, Source, Type};
pub use crate::store::fragment::{Bind, Piece, Sql};
use crate::store::Backend;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn of(backend: Backend) -> Dialect {
        match backend {
            Backend::Sqlite => Dialect::Sqlite,
            Backend::Postgres => Dialect::Postgres,
        }
    }

    /// `key` is a constant of the schema tables, never input.
    fn json_text(self, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("json_extract(a.attributes, '$.{key}')"),
            Dialect::Postgres => format!("(a.attributes->>'{key}')"),
        }
    }

    fn json_bool(self, key: &str) -> String {
        match self {
            Dialect::Sqlite => format!("(json_extract(a.attributes, '$.{key}') = TRUE)"),
            Dialect::Postgres => format!("((a.attributes->>'{key}') = 'true')"),
        }
    }

    /// Byte order for `<`, `>` and sorting on both backends.
    fn ordered(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => expr.to_owned(),
            Dialect::Postgres => format!("{expr} COLLATE \"C\""),
        }
    }
}

/// What a compiled filter is about.
#[derive(Clone, Copy)]
pub struct Target {
    pub dialect: Dialect,
    pub resource: &'static ResourceType,
}

impl Target {
    /// The resource's id column: `a.id` for users, `e.id` for the others.
    pub fn id_expr(&self) -> &'static str {
        if self.resource.name == "User" {
            "a.id"
        } else {
            "e.id"
        }
    }
}

/// How a leaf attribute reads in SQL.
enum Leaf {
    Text { expr: String, case_exact: bool },
    Bool(String),
    Time(String),
    ConstText(&'static str),
    ConstTrue,
}

fn leaf(target: &Target, attr: &Attr) -> Result<Leaf, ScimError> {
    let d = target.dialect;
    Ok(match (attr.source, attr.ty) {
        (Source::Id, _) => Leaf::Text {
            expr: target.id_expr().to_owned(),
            case_exact: true,
        },
        (Source::Sql(expr), Type::Boolean) => Leaf::Bool(format!("({expr})")),
        (Source::IsProfile, _) => Leaf::Bool("(e.kind = 'profile')".to_owned()),
        (Source::Sql(expr), _) => Leaf::Text {
            expr: format!("({expr})"),
            case_exact: attr.case_exact,
        },
        (Source::Json(key), _) => Leaf::Text {
            expr: d.json_text(key),
            case_exact: attr.case_exact,
        },
        (Source::JsonBool(key), _) => Leaf::Bool(d.json_bool(key)),
        (Source::JsonTime(key), _) => Leaf::Time(d.json_text(key)),
        (Source::LabelOf(key), _) => Leaf::Text {
            expr: format!(
                "(SELECT l.label FROM entitlements l WHERE l.org_id = a.org_id AND l.id = {})",
                d.json_text(key)
            ),
            case_exact: false,
        },
        (Source::Const(value), _) => Leaf::ConstText(value),
        (Source::ConstTrue, _) => Leaf::ConstTrue,
        (Source::None | Source::Grants(_) | Source::Members, _) => {
            return Err(ScimError::invalid_filter(format!(
                "`{}` cannot be filtered on",
                attr.name
            )))
        }
    })
}

/// The most comparisons (and `pr` tests) one filter may hold. Identity providers send one or
/// two; a client looking users up in bulk (`id eq "1" or id eq "2" or ...`) a few dozen.
pub const MAX_TERMS: usize = 100;

/// The most subqueries one filter may cause: each `attr[...]` value filter, and each
/// comparison of a multi-valued attribute held in another table (`entitlements.value eq`,
/// `members.display co`), is one `EXISTS` evaluated per candidate row, the costly part of a
/// filter (170 of them held a core for 18 s on a 100,000-user org; ten `roles[display co]`
/// took 2.1 s there). Identity providers send one (Entra's `members[value eq "..."]`).
pub const MAX_SUBQUERIES: usize = 5;

/// Compiles `filter` for `target`: a boolean SQL expression over `a` (users) or `e`
/// (entitlements served as Groups, Entitlements or Roles). A filter beyond [`MAX_TERMS`] or
/// [`MAX_SUBQUERIES`] is refused as `invalidFilter`, saying the limit.
pub fn compile(target: &Target, filter: &Filter) -> Result<Sql, ScimError> {
    within_limits(target, filter)?;
    let mut out = Sql::default();
    node(target, filter, None, &mut out)?;
    Ok(out)
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
    /// counted once for all its terms. Paths that do not resolve cost nothing here: compiling
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
    out: &mut Sql,
) -> Result<(), ScimError> {
    match filter {
        Filter::And(left, right) | Filter::Or(left, right) => {
            out.push("(");
            node(target, left, within, out)?;
            out.push(if matches!(filter, Filter::And(..)) {
                " AND "
            } else {
                " OR "
            });
            node(target, right, within, out)?;
            out.push(")");
        }
        Filter::Not(inner) => {
            out.push("NOT COALESCE((");
            node(target, inner, within, out)?;
            out.push("), FALSE)");
        }
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
            values_of(resolved.attr, out, |out| {
                node(target, filter, Some(resolved.attr), out)
            })?;
        }
        Filter::Present(path) => {
            let (attr, sub) = locate(target, path, within)?;
            match sub {
                Some(sub) => values_of(attr, out, |out| present(target, sub, out))?,
                None if !attr.sub.is_empty() => {
                    // A complex attribute is present when any of its values is.
                    values_of(attr, out, |out| {
                        let subs: Vec<&Attr> = attr
                            .sub
                            .iter()
                            .filter(|s| s.source != Source::None)
                            .collect();
                        out.push("(");
                        for (i, s) in subs.iter().enumerate() {
                            if i > 0 {
                                out.push(" OR ");
                            }
                            present(target, s, out)?;
                        }
                        out.push(")");
                        Ok(())
                    })?
                }
                None => present(target, attr, out)?,
            }
        }
        Filter::Compare { path, op, value } => {
            let (attr, sub) = locate(target, path, within)?;
            let held_elsewhere = matches!(attr.source, Source::Grants(_) | Source::Members);
            match sub {
                // `roles.value eq null`: the user has no role with a value, not "has a role
                // whose value is null" (which no stored role is).
                Some(sub) if value.is_null() && held_elsewhere && matches!(op, Op::Eq | Op::Ne) => {
                    if *op == Op::Eq {
                        out.push("NOT ");
                    }
                    values_of(attr, out, |out| compare(target, sub, Op::Ne, value, out))?
                }
                Some(sub) => values_of(attr, out, |out| compare(target, sub, *op, value, out))?,
                None => compare(target, attr, *op, value, out)?,
            }
        }
    }
    Ok(())
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

/// Writes `inner` about the values of the complex attribute `attr`: inside an `EXISTS` over
/// the rows holding them, or as is when they are columns of the resource's own row.
fn values_of(
    attr: &'static Attr,
    out: &mut Sql,
    inner: impl FnOnce(&mut Sql) -> Result<(), ScimError>,
) -> Result<(), ScimError> {
    match attr.source {
        Source::Grants(scope) => {
            out.push(
                "EXISTS (SELECT 1 FROM grants g JOIN entitlements e \
                 ON e.org_id = g.org_id AND e.id = g.entitlement_id \
                 WHERE g.org_id = a.org_id AND g.account_id = a.id AND ",
            );
            out.push(scope.condition());
            out.push(" AND ");
            inner(out)?;
            out.push(")");
        }
        Source::Members => {
            out.push(
                "EXISTS (SELECT 1 FROM grants g JOIN accounts m \
                 ON m.org_id = g.org_id AND m.id = g.account_id \
                 WHERE g.org_id = e.org_id AND g.entitlement_id = e.id AND g.source = 'direct' AND ",
            );
            inner(out)?;
            out.push(")");
        }
        _ => inner(out)?,
    }
    Ok(())
}

fn present(target: &Target, attr: &Attr, out: &mut Sql) -> Result<(), ScimError> {
    // `primary` of a user's entitlements is shown only on the profile, where it is true.
    if attr.source == Source::IsProfile {
        out.push("(e.kind = 'profile')");
        return Ok(());
    }
    match leaf(target, attr)? {
        Leaf::Text { expr, .. } => out.push(&format!("({expr} IS NOT NULL AND {expr} <> '')")),
        Leaf::Bool(expr) | Leaf::Time(expr) => out.push(&format!("({expr} IS NOT NULL)")),
        Leaf::ConstText(_) | Leaf::ConstTrue => out.push("TRUE"),
    }
    Ok(())
}

fn like_pattern(op: Op, value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    match op {
        Op::Co => format!("%{escaped}%"),
        Op::Sw => format!("{escaped}%"),
        _ => format!("%{escaped}"),
    }
}

fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "<>",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Co | Op::Sw | Op::Ew => unreachable!("substring operators are not comparisons"),
    }
}

fn compare(
    target: &Target,
    attr: &Attr,
    op: Op,
    value: &Value,
    out: &mut Sql,
) -> Result<(), ScimError> {
    let d = target.dialect;
    let wrong = |expected: &str| {
        ScimError::invalid_filter(format!(
            "`{} {} {value}`: {} is {expected}",
            attr.name,
            op.as_str(),
            attr.name
        ))
    };
    match leaf(target, attr)? {
        Leaf::Text { expr, case_exact } => {
            let text = match value {
                Value::String(s) => s.as_str(),
                Value::Null if op == Op::Eq => {
                    out.push(&format!("({expr} IS NULL)"));
                    return Ok(());
                }
                Value::Null if op == Op::Ne => {
                    out.push(&format!("({expr} IS NOT NULL)"));
                    return Ok(());
                }
                _ => return Err(wrong("a string: quote the value")),
            };
            let (lhs, rhs) = if case_exact {
                (expr.clone(), "")
            } else {
                (format!("lower({expr})"), "lower")
            };
            match op {
                Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                    let negate = op == Op::Ne;
                    let op = if negate { Op::Eq } else { op };
                    let lhs = if op == Op::Eq { lhs } else { d.ordered(&lhs) };
                    out.push(if negate { "NOT COALESCE(" } else { "(" });
                    out.push(&format!("{lhs} {} {rhs}(", sql_op(op)));
                    out.bind_text(text);
                    out.push(if negate { "), FALSE)" } else { "))" });
                }
                Op::Co | Op::Sw | Op::Ew if text.is_empty() => {
                    out.push(&format!("({expr} IS NOT NULL)"));
                }
                Op::Co | Op::Sw | Op::Ew if !case_exact => {
                    out.push(&format!("({lhs} LIKE lower("));
                    out.bind_text(like_pattern(op, text));
                    out.push(") ESCAPE '\\')");
                }
                Op::Co => {
                    let function = match d {
                        Dialect::Sqlite => "instr",
                        Dialect::Postgres => "strpos",
                    };
                    out.push(&format!("({function}({expr}, "));
                    out.bind_text(text);
                    out.push(") > 0)");
                }
                Op::Sw | Op::Ew => {
                    let head = match (d, op) {
                        (Dialect::Sqlite, Op::Sw) => format!("substr({expr}, 1, length("),
                        (Dialect::Sqlite, _) => format!("substr({expr}, -length("),
                        (Dialect::Postgres, Op::Sw) => format!("left({expr}, length("),
                        (Dialect::Postgres, _) => format!("right({expr}, length("),
                    };
                    out.push(&format!("({head}"));
                    out.bind_text(text);
                    out.push(")) = ");
                    out.bind_text(text);
                    out.push(")");
                }
            }
        }
        Leaf::Bool(expr) => {
            let wanted = match value {
                Value::Bool(b) => *b,
                // Entra ID sends booleans as strings.
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(wrong("a boolean: compare it with true or false")),
            };
            match op {
                Op::Eq | Op::Ne => {
                    let holds = (op == Op::Eq) == wanted;
                    out.push(
                        if holds {
                            format!("COALESCE({expr}, FALSE)")
                        } else {
                            format!("NOT COALESCE({expr}, FALSE)")
                        }
                        .as_str(),
                    );
                }
                _ => return Err(wrong("a boolean: only eq, ne and pr apply")),
            }
        }
        Leaf::Time(expr) => {
            let Value::String(text) = value else {
                return Err(wrong("a dateTime: quote an RFC 3339 time"));
            };
            if matches!(op, Op::Co | Op::Sw | Op::Ew) {
                return Err(wrong("a dateTime: co, sw and ew do not apply"));
            }
            let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
                wrong("a dateTime: give an RFC 3339 time such as 2024-03-31T23:59:59Z")
            })?;
            let negate = op == Op::Ne;
            let op = if negate { Op::Eq } else { op };
            out.push(if negate { "NOT COALESCE(" } else { "(" });
            out.push(&format!("{expr} {} ", sql_op(op)));
            out.bind_text(salesforce_time(at));
            out.push(if negate { ", FALSE)" } else { ")" });
        }
        Leaf::ConstText(constant) => {
            let Value::String(text) = value else {
                out.push(if op == Op::Ne { "TRUE" } else { "FALSE" });
                return Ok(());
            };
            let (a, b) = if attr.case_exact {
                (constant.to_owned(), text.clone())
            } else {
                (constant.to_lowercase(), text.to_lowercase())
            };
            let holds = match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Co => a.contains(&b),
                Op::Sw => a.starts_with(&b),
                Op::Ew => a.ends_with(&b),
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Lt => a < b,
                Op::Le => a <= b,
            };
            out.push(if holds { "TRUE" } else { "FALSE" });
        }
        Leaf::ConstTrue => {
            let wanted = match value {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return Err(wrong("a boolean: compare it with true or false")),
            };
            let holds = match op {
                Op::Eq => wanted,
                Op::Ne => !wanted,
                _ => return Err(wrong("a boolean: only eq, ne and pr apply")),
            };
            out.push(if holds { "TRUE" } else { "FALSE" });
        }
    }
    Ok(())
}

/// Salesforce's own date-time form (`2024-01-02T03:04:05.000+0000`), which is how stored
/// date-times read, so text comparison orders them.
pub fn salesforce_time(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    ))
    .expect("a UTC time formats")
}

/// The `ORDER BY` keys for `sortBy` (nulls last, then by id so pages are stable).
pub fn order_by(
    target: &Target,
    sort_by: Option<&str>,
    descending: bool,
) -> Result<String, ScimError> {
    let id = target.id_expr();
    let Some(sort_by) = sort_by else {
        return Ok(format!("{id}{}", if descending { " DESC" } else { "" }));
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
    let direction = if descending { "DESC" } else { "ASC" };
    let expr = match leaf(target, sorted)? {
        Leaf::Text { expr, case_exact } => {
            let key = if case_exact {
                expr
            } else {
                format!("lower({expr})")
            };
            target.dialect.ordered(&key)
        }
        Leaf::Bool(expr) | Leaf::Time(expr) => expr,
        Leaf::ConstText(_) | Leaf::ConstTrue => return Ok(format!("{id} {direction}")),
    };
    Ok(format!(
        "({expr}) IS NULL, {expr} {direction}, {id} {direction}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse;

    fn users(dialect: Dialect) -> Target {
        Target {
            dialect,
            resource: schema::resource_type("User").unwrap(),
        }
    }

    fn sql(filter: &str) -> (String, Vec<Bind>) {
        let compiled = compile(&users(Dialect::Sqlite), &parse(filter).unwrap()).unwrap();
        (
            compiled.text(),
            compiled.binds().into_iter().cloned().collect(),
        )
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let (text, binds) = sql(r#"userName eq "x'; DROP TABLE accounts; --""#);
        assert_eq!(text, "(lower((a.username)) = lower(?))");
        assert_eq!(
            binds,
            vec![Bind::Text("x'; DROP TABLE accounts; --".into())]
        );
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
        assert_eq!(binds, vec![Bind::Text("%50\\%\\_off%".into())]);
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
            let err = compile(&users(Dialect::Sqlite), &parse(filter).unwrap()).unwrap_err();
            assert_eq!(err.scim_type, Some("invalidFilter"), "{filter}");
            assert!(err.detail.contains(says), "{filter}: {}", err.detail);
        }
    }

    #[test]
    fn times_compare_in_salesforce_form_and_postgres_orders_bytes() {
        let (text, binds) = sql(r#"meta.created ge "2024-03-31T23:00:00+02:00""#);
        assert_eq!(text, "(json_extract(a.attributes, '$.CreatedDate') >= ?)");
        assert_eq!(
            binds,
            vec![Bind::Text("2024-03-31T21:00:00.000+0000".into())]
        );
        let pg = compile(
            &users(Dialect::Postgres),
            &parse(r#"userName gt "m""#).unwrap(),
        )
        .unwrap();
        assert_eq!(pg.text(), "(lower((a.username)) COLLATE \"C\" > lower(?))");
    }

    #[test]
    fn sort_keys() {
        let target = users(Dialect::Sqlite);
        assert_eq!(order_by(&target, None, false).unwrap(), "a.id");
        assert_eq!(
            order_by(&target, Some("name.familyName"), true).unwrap(),
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
