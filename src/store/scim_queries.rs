//! [`ScimStore`](super::scim::ScimStore): pages of resources selected by a compiled filter,
//! with their totals, each read under its deadline. A filter's pieces are pushed as they are:
//! text as is (constants of the code), values as bound parameters.

use super::sql::build;
use super::{queries, OrgId, SqlStore, StoreError};
use provost_connector::model::Entitlement;

/// An account of a page, with its grants as the grants expression gives them.
#[derive(sqlx::FromRow)]
pub(super) struct PageAccountRow {
    #[sqlx(flatten)]
    account: super::queries::AccountRow,
    grants: String,
    changed_at: Option<provost_connector::times::Timestamp>,
}

impl PageAccountRow {
    /// The account, and its grants ordered by kind, label and entitlement id.
    pub(super) fn into_parts(self) -> Result<super::scim::ScimUser, super::StoreError> {
        let rows: Vec<(String, String, String, String)> = serde_json::from_str(&self.grants)
            .map_err(|err| super::StoreError::Corrupt {
                what: "grants of a user",
                detail: format!("account {}: {err}", self.account.id),
            })?;
        let mut grants: Vec<super::scim::UserGrant> = rows
            .into_iter()
            .map(
                |(entitlement_id, kind, label, source)| super::scim::UserGrant {
                    entitlement_id,
                    kind,
                    label,
                    source,
                },
            )
            .collect();
        grants.sort_by(|x, y| {
            (&x.kind, &x.label, &x.entitlement_id).cmp(&(&y.kind, &y.label, &y.entitlement_id))
        });
        Ok(super::scim::ScimUser {
            account: self.account.into(),
            grants,
            changed_at: self.changed_at,
        })
    }
}

/// An entitlement with when it or its holders last changed.
#[derive(sqlx::FromRow)]
struct DatedEntitlementRow {
    #[sqlx(flatten)]
    entitlement: queries::EntitlementRow,
    changed_at: Option<provost_connector::times::Timestamp>,
}

#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    pub(super) entitlement_id: String,
    pub(super) account_id: String,
    pub(super) display_name: String,
}

impl SqlStore {
    /// ` FROM ... WHERE ...` of `query`: its table's rows of the org that meet its criterion.
    fn scim_where<'q>(
        &self,
        builder: &mut super::sql::Sql<'q>,
        org: OrgId,
        query: &super::scim::ScimQuery<'q>,
    ) {
        let compiler = self.scim_compiler(query.table);
        match super::scim_filter::table_condition(query.table) {
            None => {
                builder.push(" FROM accounts a WHERE a.org_id = ");
                builder.push_bind(org.0);
            }
            Some(condition) => {
                builder.push(" FROM entitlements e WHERE e.org_id = ");
                builder.push_bind(org.0);
                builder.push(" AND ");
                builder.push(condition);
            }
        }
        if let Some(filter) = query.filter {
            builder.push(" AND (");
            compiler.criterion(filter, builder);
            builder.push(")");
        }
    }

    fn scim_compiler(&self, table: super::scim::ScimTable) -> super::scim_filter::Compiler {
        super::scim_filter::Compiler {
            backend: self.pool.backend(),
            table,
        }
    }

    /// A statement stopped at the query's deadline is [`StoreError::TimedOut`].
    fn scim_failure(&self, err: sqlx::Error, query: &super::scim::ScimQuery<'_>) -> StoreError {
        if self.is_timeout(&err) {
            StoreError::TimedOut(query.deadline.budget)
        } else {
            err.into()
        }
    }

    /// How many rows match.
    async fn scim_count(
        &self,
        org: OrgId,
        query: &super::scim::ScimQuery<'_>,
    ) -> Result<u64, StoreError> {
        let mut builder = build("SELECT COUNT(*)");
        self.scim_where(&mut builder, org, query);
        let mut connection = self.timed_connection(query.deadline.remaining()?).await?;
        let count = builder.fetch_value::<i64>(&mut connection).await;
        connection.finished();
        Ok(count.map_err(|err| self.scim_failure(err, query))? as u64)
    }

    /// A page, read by `page`, and how many rows match in all. Past the first page
    /// the count is needed whatever the page holds, so it runs beside the page's query
    /// on another connection; a first page shorter than asked holds every match, so
    /// there it is counted only when full.
    async fn scim_page_with_total<T>(
        &self,
        org: OrgId,
        query: &super::scim::ScimQuery<'_>,
        page: impl std::future::Future<Output = Result<Vec<T>, StoreError>>,
    ) -> Result<(Vec<T>, u64), StoreError> {
        if let Some(total) = query.counted {
            return Ok((page.await?, total));
        }
        if query.offset > 0 {
            return tokio::try_join!(page, self.scim_count(org, query));
        }
        let found = page.await?;
        let total = if found.len() < query.limit as usize {
            found.len() as u64
        } else {
            self.scim_count(org, query).await?
        };
        Ok((found, total))
    }
}

#[async_trait::async_trait]
impl super::scim::ScimStore for SqlStore {
    async fn scim_select(
        &self,
        org: OrgId,
        query: super::scim::ScimQuery<'_>,
    ) -> Result<(Vec<String>, u64), StoreError> {
        let compiler = self.scim_compiler(query.table);
        let page = async {
            if query.limit == 0 {
                return Ok(Vec::new());
            }
            let mut builder = build(format!("SELECT {}", compiler.id()));
            self.scim_where(&mut builder, org, &query);
            builder.push(" ORDER BY ");
            builder.push(&compiler.order(query.order));
            builder.push(" LIMIT ");
            builder.push_bind(i64::from(query.limit));
            builder.push(" OFFSET ");
            builder.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
            let mut connection = self.timed_connection(query.deadline.remaining()?).await?;
            let ids = builder.fetch_column::<String>(&mut connection).await;
            connection.finished();
            ids.map_err(|err| self.scim_failure(err, &query))
        };
        self.scim_page_with_total(org, &query, page).await
    }

    async fn scim_accounts(
        &self,
        org: OrgId,
        query: super::scim::ScimQuery<'_>,
    ) -> Result<(Vec<super::scim::ScimUser>, u64), StoreError> {
        let page = async {
            if query.limit == 0 {
                return Ok(Vec::new());
            }
            // The page's ids in a subquery (read from an index, even deep in the list),
            // then each account joined to them, with its grants gathered into one
            // column: one row per account, so the accounts' wide attributes are
            // neither repeated per grant nor carried through a sort of the grants.
            let order = self.scim_compiler(query.table).order(query.order);
            let mut builder = build(
                "SELECT a.id, a.username, a.email, a.first_name, a.last_name, \
                         a.display_name, a.active, a.user_type, a.attributes, a.changed_at, ",
            );
            builder.push(self.pool.backend().grants_json());
            builder.push(" AS grants FROM (SELECT a.id");
            self.scim_where(&mut builder, org, &query);
            builder.push(" ORDER BY ");
            builder.push(&order);
            builder.push(" LIMIT ");
            builder.push_bind(i64::from(query.limit));
            builder.push(" OFFSET ");
            builder.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
            // CROSS JOIN keeps SQLite's loop over the page, not over every account.
            builder.push(") p CROSS JOIN accounts a WHERE a.org_id = ");
            builder.push_bind(org.0);
            builder.push(" AND a.id = p.id ORDER BY ");
            builder.push(&order);
            let mut connection = self.timed_connection(query.deadline.remaining()?).await?;
            let rows = builder.fetch_all::<PageAccountRow>(&mut connection).await;
            connection.finished();
            let rows = rows.map_err(|err| self.scim_failure(err, &query))?;
            rows.into_iter().map(PageAccountRow::into_parts).collect()
        };
        self.scim_page_with_total(org, &query, page).await
    }

    async fn entitlements_by_ids(
        &self,
        org: OrgId,
        ids: &[String],
    ) -> Result<Vec<super::scim::ScimEntitlement>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder = build(
            "SELECT id, kind, api_name, label, description, grantable, attributes, changed_at \
                     FROM entitlements WHERE org_id = ",
        );
        builder.push_bind(org.0);
        builder.push(" AND id IN ");
        builder.push_list(ids.iter().map(String::as_str));
        let rows: Vec<DatedEntitlementRow> = builder.fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| {
                Ok(super::scim::ScimEntitlement {
                    entitlement: Entitlement::try_from(row.entitlement)?,
                    changed_at: row.changed_at,
                })
            })
            .collect()
    }

    async fn members_of(
        &self,
        org: OrgId,
        ids: &[String],
    ) -> Result<Vec<super::scim::Member>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut builder = build(
            "SELECT g.entitlement_id, a.id AS account_id, a.display_name \
                     FROM grants g JOIN accounts a ON a.org_id = g.org_id AND a.id = g.account_id \
                     WHERE g.source = 'direct' AND g.org_id = ",
        );
        builder.push_bind(org.0);
        builder.push(" AND g.entitlement_id IN ");
        builder.push_list(ids.iter().map(String::as_str));
        builder.push(" ORDER BY a.id");
        let rows: Vec<MemberRow> = builder.fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| super::scim::Member {
                entitlement_id: r.entitlement_id,
                account_id: r.account_id,
                display_name: r.display_name,
            })
            .collect())
    }
}
