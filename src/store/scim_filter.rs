//! From a [`Criterion`] and an [`Order`] to the SQL of this database: columns are expressions
//! of the code's own making over `a` (accounts), `e` (entitlements) and `m` (a group's member);
//! every value is a bound parameter. A collection (a user's grants, a group's members) is an
//! `EXISTS` over its rows, so `entitlements[type eq "PermissionSet" and value eq "0PS..."]` is
//! one entitlement meeting both, as RFC 7644 says.

use provost_connector::times::Timestamp;

use super::scim::{Collection, Column, Criterion, GrantScope, Order, ScimTable, TextOp, TimeOp};
use super::sql::Sql;
use super::Backend;

/// What each table serves, as a condition over `e`.
pub(super) fn table_condition(table: ScimTable) -> Option<&'static str> {
    match table {
        ScimTable::Accounts => None,
        ScimTable::Groups => Some(
            "e.kind IN ('permission_set', 'permission_set_group', 'public_group') \
             AND e.grantable = TRUE",
        ),
        ScimTable::Entitlements => Some(
            "(e.kind = 'profile' OR (e.kind IN ('permission_set', 'permission_set_group') \
             AND e.grantable = TRUE))",
        ),
        ScimTable::Roles => Some("e.kind = 'role'"),
    }
}

/// The condition on `g` (grants) and `e` (entitlements) that selects a scope's grants.
fn grant_condition(scope: GrantScope) -> &'static str {
    match scope {
        GrantScope::Entitlements => {
            "e.kind IN ('profile', 'permission_set', 'permission_set_group') \
             AND g.source IN ('direct', 'profile')"
        }
        GrantScope::Roles => "e.kind = 'role'",
        GrantScope::Groups => {
            "e.kind IN ('permission_set', 'permission_set_group', 'public_group') \
             AND e.grantable = TRUE AND g.source = 'direct'"
        }
    }
}

/// The SCIM `type` of an entitlement kind, over `e`.
const ENTITLEMENT_TYPE: &str = "CASE e.kind WHEN 'profile' THEN 'Profile' \
     WHEN 'permission_set' THEN 'PermissionSet' WHEN 'permission_set_group' THEN 'PermissionSetGroup' \
     WHEN 'public_group' THEN 'Group' WHEN 'role' THEN 'Role' ELSE e.kind END";

/// Salesforce's date-time form, as stored date-times read, so text comparison orders them.
const SALESFORCE_TIME: &str = "%Y-%m-%dT%H:%M:%S%.3f+0000";

/// `at` in Salesforce's form (`2024-01-02T03:04:05.000+0000`), in UTC.
pub fn salesforce_time(at: Timestamp) -> String {
    at.format(SALESFORCE_TIME).to_string()
}

/// How a column reads: as text, a boolean, or a date-time (text in Salesforce's form).
enum Kind {
    Text,
    Bool,
    Time,
    /// A date-time column the store keeps (compared with a bound time, not text).
    StoredTime,
}

/// Writes criteria and orders for one table of one database.
pub(super) struct Compiler {
    pub(super) backend: Backend,
    pub(super) table: ScimTable,
}

impl Compiler {
    fn json_text(&self, key: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_extract(a.attributes, '$.{key}')"),
            Backend::Postgres => format!("(a.attributes->>'{key}')"),
        }
    }

    /// Byte order for `<`, `>` and sorting on both databases.
    fn ordered(&self, expr: &str) -> String {
        match self.backend {
            Backend::Sqlite => expr.to_owned(),
            Backend::Postgres => format!("{expr} COLLATE \"C\""),
        }
    }

    /// The table's id column.
    pub(super) fn id(&self) -> &'static str {
        if self.table == ScimTable::Accounts {
            "a.id"
        } else {
            "e.id"
        }
    }

    /// A column's SQL expression (over constants of the code and the attribute keys of the
    /// SCIM schema's tables, never input) and how it reads.
    fn column(&self, column: Column) -> (String, Kind) {
        let sql = |expr: &str| (format!("({expr})"), Kind::Text);
        match column {
            Column::Id => (self.id().to_owned(), Kind::Text),
            Column::Username => sql("a.username"),
            Column::Email => sql("a.email"),
            Column::FirstName => sql("a.first_name"),
            Column::LastName => sql("a.last_name"),
            Column::DisplayName => sql("a.display_name"),
            Column::UserType => sql("a.user_type"),
            Column::Active => ("(a.active = TRUE)".to_owned(), Kind::Bool),
            Column::UserText(key) => (self.json_text(key), Kind::Text),
            Column::UserFlag(key) => (
                match self.backend {
                    Backend::Sqlite => format!("(json_extract(a.attributes, '$.{key}') = TRUE)"),
                    Backend::Postgres => format!("((a.attributes->>'{key}') = 'true')"),
                },
                Kind::Bool,
            ),
            Column::UserTime(key) => (self.json_text(key), Kind::Time),
            Column::ChangedAt => (
                if self.table == ScimTable::Accounts {
                    "a.changed_at"
                } else {
                    "e.changed_at"
                }
                .to_owned(),
                Kind::StoredTime,
            ),
            Column::LabelOf(key) => (
                format!(
                    "(SELECT l.label FROM entitlements l WHERE l.org_id = a.org_id AND l.id = {})",
                    self.json_text(key)
                ),
                Kind::Text,
            ),
            Column::EntitlementId => sql("e.id"),
            Column::Label => sql("e.label"),
            Column::ApiName => sql("e.api_name"),
            Column::Description => sql("e.description"),
            Column::EntitlementType => sql(ENTITLEMENT_TYPE),
            Column::IsProfile => ("(e.kind = 'profile')".to_owned(), Kind::Bool),
            Column::MemberId => sql("m.id"),
            Column::MemberName => sql("m.display_name"),
        }
    }

    /// Appends `criterion` as a boolean SQL expression.
    pub(super) fn criterion<'q>(&self, criterion: &'q Criterion, out: &mut Sql<'q>) {
        match criterion {
            Criterion::Const(holds) => {
                out.push(if *holds { "TRUE" } else { "FALSE" });
            }
            Criterion::And(left, right) | Criterion::Or(left, right) => {
                out.push("(");
                self.criterion(left, out);
                out.push(if matches!(criterion, Criterion::And(..)) {
                    " AND "
                } else {
                    " OR "
                });
                self.criterion(right, out);
                out.push(")");
            }
            Criterion::Not(inner) => {
                out.push("NOT COALESCE((");
                self.criterion(inner, out);
                out.push("), FALSE)");
            }
            Criterion::Present(Column::IsProfile) => {
                // `primary` of a user's entitlements is shown only on the profile, where it is
                // true.
                out.push("(e.kind = 'profile')");
            }
            Criterion::Present(column) => {
                let (expr, kind) = self.column(*column);
                out.push(&match kind {
                    Kind::Text => format!("({expr} IS NOT NULL AND {expr} <> '')"),
                    Kind::Bool | Kind::Time | Kind::StoredTime => format!("({expr} IS NOT NULL)"),
                });
            }
            Criterion::Null { column, null } => {
                let (expr, _) = self.column(*column);
                out.push(&format!(
                    "({expr} IS {}NULL)",
                    if *null { "" } else { "NOT " }
                ));
            }
            Criterion::Flag { column, value } => {
                let (expr, _) = self.column(*column);
                out.push(&if *value {
                    format!("COALESCE({expr}, FALSE)")
                } else {
                    format!("NOT COALESCE({expr}, FALSE)")
                });
            }
            Criterion::Text {
                column,
                op,
                value,
                case_exact,
            } => self.text(*column, *op, value, *case_exact, out),
            Criterion::Time { column, op, at } => {
                let (expr, kind) = self.column(*column);
                let negate = *op == TimeOp::Ne;
                let sign = match op {
                    TimeOp::Eq | TimeOp::Ne => "=",
                    TimeOp::Gt => ">",
                    TimeOp::Ge => ">=",
                    TimeOp::Lt => "<",
                    TimeOp::Le => "<=",
                };
                out.push(if negate { "NOT COALESCE(" } else { "(" });
                out.push(&format!("{expr} {sign} "));
                match kind {
                    Kind::StoredTime => out.push_bind(*at),
                    _ => out.push_bind(salesforce_time(*at)),
                };
                out.push(if negate { ", FALSE)" } else { ")" });
            }
            Criterion::Any {
                collection,
                criterion,
            } => {
                match collection {
                    Collection::Grants(scope) => {
                        out.push(
                            "EXISTS (SELECT 1 FROM grants g JOIN entitlements e \
                             ON e.org_id = g.org_id AND e.id = g.entitlement_id \
                             WHERE g.org_id = a.org_id AND g.account_id = a.id AND ",
                        );
                        out.push(grant_condition(*scope));
                        out.push(" AND ");
                    }
                    Collection::Members => {
                        out.push(
                            "EXISTS (SELECT 1 FROM grants g JOIN accounts m \
                             ON m.org_id = g.org_id AND m.id = g.account_id \
                             WHERE g.org_id = e.org_id AND g.entitlement_id = e.id \
                             AND g.source = 'direct' AND ",
                        );
                    }
                }
                self.criterion(criterion, out);
                out.push(")");
            }
        }
    }

    fn text<'q>(
        &self,
        column: Column,
        op: TextOp,
        value: &'q str,
        case_exact: bool,
        out: &mut Sql<'q>,
    ) {
        let (expr, _) = self.column(column);
        let (lhs, rhs) = if case_exact {
            (expr.clone(), "")
        } else {
            (format!("lower({expr})"), "lower")
        };
        let comparison = |sign: &str, negate: bool, out: &mut Sql<'q>| {
            let lhs = if sign == "=" {
                lhs.clone()
            } else {
                self.ordered(&lhs)
            };
            out.push(if negate { "NOT COALESCE(" } else { "(" });
            out.push(&format!("{lhs} {sign} {rhs}("));
            out.push_bind(value);
            out.push(if negate { "), FALSE)" } else { "))" });
        };
        match op {
            TextOp::Eq => comparison("=", false, out),
            TextOp::Ne => comparison("=", true, out),
            TextOp::Gt => comparison(">", false, out),
            TextOp::Ge => comparison(">=", false, out),
            TextOp::Lt => comparison("<", false, out),
            TextOp::Le => comparison("<=", false, out),
            TextOp::Contains | TextOp::StartsWith | TextOp::EndsWith if value.is_empty() => {
                out.push(&format!("({expr} IS NOT NULL)"));
            }
            TextOp::Contains | TextOp::StartsWith | TextOp::EndsWith if !case_exact => {
                out.push(&format!("({lhs} LIKE lower("));
                out.push_bind(like_pattern(op, value));
                out.push(") ESCAPE '\\')");
            }
            TextOp::Contains => {
                let function = match self.backend {
                    Backend::Sqlite => "instr",
                    Backend::Postgres => "strpos",
                };
                out.push(&format!("({function}({expr}, "));
                out.push_bind(value);
                out.push(") > 0)");
            }
            TextOp::StartsWith | TextOp::EndsWith => {
                let head = match (self.backend, op) {
                    (Backend::Sqlite, TextOp::StartsWith) => format!("substr({expr}, 1, length("),
                    (Backend::Sqlite, _) => format!("substr({expr}, -length("),
                    (Backend::Postgres, TextOp::StartsWith) => format!("left({expr}, length("),
                    (Backend::Postgres, _) => format!("right({expr}, length("),
                };
                out.push(&format!("({head}"));
                out.push_bind(value);
                out.push(")) = ");
                out.push_bind(value);
                out.push(")");
            }
        }
    }

    /// The `ORDER BY` keys of `order` (nulls last, then by id so pages are stable).
    pub(super) fn order(&self, order: Order) -> String {
        let id = self.id();
        let direction = if order.descending { "DESC" } else { "ASC" };
        let Some((column, case_exact)) = order.by else {
            return format!("{id}{}", if order.descending { " DESC" } else { "" });
        };
        let (expr, kind) = self.column(column);
        let expr = match kind {
            Kind::Text if case_exact => self.ordered(&expr),
            Kind::Text => self.ordered(&format!("lower({expr})")),
            Kind::Bool | Kind::Time | Kind::StoredTime => expr,
        };
        if column == Column::Username {
            // Never null: without the nulls-last key, SQLite walks its index on
            // lower(username) in order instead of sorting every user for a page.
            return format!("{expr} {direction}, {id} {direction}");
        }
        format!("({expr}) IS NULL, {expr} {direction}, {id} {direction}")
    }
}

pub(super) fn like_pattern(op: TextOp, value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    match op {
        TextOp::Contains => format!("%{escaped}%"),
        TextOp::StartsWith => format!("{escaped}%"),
        _ => format!("%{escaped}"),
    }
}
