//! The SCIM store's SQL, the same on SQLite and PostgreSQL, expanded into each backend's
//! [`ScimStore`](super::scim::ScimStore) impl. A compiled filter's pieces go through sqlx's
//! query builder: text as is (constants of the code), values as bound parameters.

#[derive(sqlx::FromRow)]
pub(super) struct UserGrantRow {
    pub(super) account_id: String,
    pub(super) entitlement_id: String,
    pub(super) kind: String,
    pub(super) label: String,
    pub(super) source: String,
}

#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    pub(super) entitlement_id: String,
    pub(super) account_id: String,
    pub(super) display_name: String,
}

/// Implements [`ScimStore`](super::scim::ScimStore) for a backend with a `pool` field.
macro_rules! impl_scim_store {
    ($store:ty, $db:ty) => {
        impl $store {
            fn scim_where(
                builder: &mut sqlx::QueryBuilder<'_, $db>,
                org: OrgId,
                query: &super::scim::ScimQuery<'_>,
            ) {
                use super::fragment::{Bind, Piece};
                match query.table {
                    super::scim::ScimTable::Accounts => {
                        builder.push(" FROM accounts a WHERE a.org_id = ");
                        builder.push_bind(org.0);
                    }
                    super::scim::ScimTable::Entitlements(scope) => {
                        builder.push(" FROM entitlements e WHERE e.org_id = ");
                        builder.push_bind(org.0);
                        builder.push(" AND ");
                        builder.push(scope);
                    }
                }
                if let Some(filter) = query.filter {
                    builder.push(" AND (");
                    for piece in &filter.pieces {
                        match piece {
                            Piece::Sql(text) => {
                                builder.push(text);
                            }
                            Piece::Bind(Bind::Text(value)) => {
                                builder.push_bind(value.clone());
                            }
                            Piece::Bind(Bind::Bool(value)) => {
                                builder.push_bind(*value);
                            }
                        }
                    }
                    builder.push(")");
                }
            }
        }

        #[async_trait::async_trait]
        impl super::scim::ScimStore for $store {
            async fn scim_select(
                &self,
                org: OrgId,
                query: super::scim::ScimQuery<'_>,
            ) -> Result<(Vec<String>, u64), StoreError> {
                let id = match query.table {
                    super::scim::ScimTable::Accounts => "a.id",
                    super::scim::ScimTable::Entitlements(_) => "e.id",
                };
                let ids: Vec<String> = if query.limit == 0 {
                    Vec::new()
                } else {
                    let mut builder = sqlx::QueryBuilder::<$db>::new(format!("SELECT {id}"));
                    Self::scim_where(&mut builder, org, &query);
                    builder.push(" ORDER BY ");
                    builder.push(query.order);
                    builder.push(" LIMIT ");
                    builder.push_bind(i64::from(query.limit));
                    builder.push(" OFFSET ");
                    builder.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
                    builder
                        .build_query_scalar()
                        .fetch_all(&self.pool)
                        .await?
                };
                // A first page shorter than asked holds every match: no need to count.
                let total = if query.offset == 0 && ids.len() < query.limit as usize {
                    ids.len() as u64
                } else {
                    let mut builder = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*)");
                    Self::scim_where(&mut builder, org, &query);
                    let count: i64 = builder.build_query_scalar().fetch_one(&self.pool).await?;
                    count as u64
                };
                Ok((ids, total))
            }

            async fn accounts_by_ids(
                &self,
                org: OrgId,
                ids: &[String],
            ) -> Result<Vec<Account>, StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut builder = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, username, email, first_name, last_name, display_name, active, \
                     user_type, attributes FROM accounts WHERE org_id = ",
                );
                builder.push_bind(org.0);
                builder.push(" AND id IN (");
                let mut list = builder.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                builder.push(")");
                let rows: Vec<queries::AccountRow> =
                    builder.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Account::from).collect())
            }

            async fn grants_of_accounts(
                &self,
                org: OrgId,
                ids: &[String],
            ) -> Result<Vec<super::scim::UserGrant>, StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut builder = sqlx::QueryBuilder::<$db>::new(
                    "SELECT g.account_id, g.entitlement_id, e.kind, e.label, g.source \
                     FROM grants g JOIN entitlements e ON e.org_id = g.org_id AND e.id = g.entitlement_id \
                     WHERE g.org_id = ",
                );
                builder.push_bind(org.0);
                builder.push(" AND g.account_id IN (");
                let mut list = builder.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                builder.push(") ORDER BY g.account_id, e.kind, e.label, g.entitlement_id");
                let rows: Vec<scim_queries::UserGrantRow> =
                    builder.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|r| super::scim::UserGrant {
                        account_id: r.account_id,
                        entitlement_id: r.entitlement_id,
                        kind: r.kind,
                        label: r.label,
                        source: r.source,
                    })
                    .collect())
            }

            async fn entitlements_by_ids(
                &self,
                org: OrgId,
                ids: &[String],
            ) -> Result<Vec<Entitlement>, StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut builder = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, kind, api_name, label, description, grantable, attributes \
                     FROM entitlements WHERE org_id = ",
                );
                builder.push_bind(org.0);
                builder.push(" AND id IN (");
                let mut list = builder.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                builder.push(")");
                let rows: Vec<queries::EntitlementRow> =
                    builder.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(Entitlement::try_from).collect()
            }

            async fn members_of(
                &self,
                org: OrgId,
                ids: &[String],
            ) -> Result<Vec<super::scim::Member>, StoreError> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut builder = sqlx::QueryBuilder::<$db>::new(
                    "SELECT g.entitlement_id, a.id AS account_id, a.display_name \
                     FROM grants g JOIN accounts a ON a.org_id = g.org_id AND a.id = g.account_id \
                     WHERE g.source = 'direct' AND g.org_id = ",
                );
                builder.push_bind(org.0);
                builder.push(" AND g.entitlement_id IN (");
                let mut list = builder.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                builder.push(") ORDER BY a.id");
                let rows: Vec<scim_queries::MemberRow> =
                    builder.build_query_as().fetch_all(&self.pool).await?;
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
    };
}

pub(super) use impl_scim_store;
