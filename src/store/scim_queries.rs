//! The SCIM store's SQL, the same on SQLite and PostgreSQL, expanded into each backend's
//! [`ScimStore`](super::scim::ScimStore) impl. A compiled filter's pieces go through sqlx's
//! query builder: text as is (constants of the code), values as bound parameters.

/// An account of a page with one of its grants (none: the grant columns are null). The
/// account's attributes come as text, parsed once per account rather than once per grant.
#[derive(sqlx::FromRow)]
pub(super) struct AccountGrantRow {
    pub(super) id: String,
    username: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: String,
    active: bool,
    user_type: Option<String>,
    attributes: String,
    pub(super) entitlement_id: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) label: Option<String>,
    pub(super) source: Option<String>,
}

impl AccountGrantRow {
    pub(super) fn account(&self) -> Result<provost_connector::model::Account, super::StoreError> {
        Ok(provost_connector::model::Account {
            id: self.id.clone(),
            username: self.username.clone(),
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            display_name: self.display_name.clone(),
            active: self.active,
            user_type: self.user_type.clone(),
            attributes: serde_json::from_str(&self.attributes).map_err(|err| {
                super::StoreError::Corrupt {
                    what: "account attributes",
                    detail: err.to_string(),
                }
            })?,
        })
    }
}

type AccountWithGrants = (
    provost_connector::model::Account,
    Vec<super::scim::UserGrant>,
);

/// Rows in account order as accounts, each with its grants.
pub(super) fn accounts_with_grants(
    rows: Vec<AccountGrantRow>,
) -> Result<Vec<AccountWithGrants>, super::StoreError> {
    let mut page: Vec<AccountWithGrants> = Vec::new();
    for row in rows {
        if page.last().is_none_or(|(a, _)| a.id != row.id) {
            page.push((row.account()?, Vec::new()));
        }
        let (account, grants) = page.last_mut().expect("just pushed");
        if let (Some(entitlement_id), Some(kind), Some(label), Some(source)) =
            (row.entitlement_id, row.kind, row.label, row.source)
        {
            grants.push(super::scim::UserGrant {
                account_id: account.id.clone(),
                entitlement_id,
                kind,
                label,
                source,
            });
        }
    }
    Ok(page)
}

#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    pub(super) entitlement_id: String,
    pub(super) account_id: String,
    pub(super) display_name: String,
}

/// Implements [`ScimStore`](super::scim::ScimStore) for a backend with a `pool` field.
/// `$attributes_text` reads an account's attributes as text (a cast on PostgreSQL's JSONB).
macro_rules! impl_scim_store {
    ($store:ty, $db:ty, $attributes_text:expr) => {
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

        impl $store {
            /// Appends `(?, ?, ...)`, one bound parameter per id.
            fn push_ids(builder: &mut sqlx::QueryBuilder<'_, $db>, ids: &[String]) {
                builder.push("(");
                let mut list = builder.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                builder.push(")");
            }

            /// How many rows match.
            async fn scim_count(
                &self,
                org: OrgId,
                query: &super::scim::ScimQuery<'_>,
            ) -> Result<u64, StoreError> {
                let mut builder = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*)");
                Self::scim_where(&mut builder, org, query);
                let count: i64 = builder.build_query_scalar().fetch_one(&self.pool).await?;
                Ok(count as u64)
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
                let page = async {
                    if query.limit == 0 {
                        return Ok(Vec::new());
                    }
                    let mut builder = sqlx::QueryBuilder::<$db>::new(format!("SELECT {id}"));
                    Self::scim_where(&mut builder, org, &query);
                    builder.push(" ORDER BY ");
                    builder.push(query.order);
                    builder.push(" LIMIT ");
                    builder.push_bind(i64::from(query.limit));
                    builder.push(" OFFSET ");
                    builder.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
                    let ids: Vec<String> = builder
                        .build_query_scalar()
                        .fetch_all(&self.pool)
                        .await?;
                    Ok(ids)
                };
                self.scim_page_with_total(org, &query, page).await
            }

            async fn scim_accounts(
                &self,
                org: OrgId,
                query: super::scim::ScimQuery<'_>,
            ) -> Result<(Vec<(Account, Vec<super::scim::UserGrant>)>, u64), StoreError> {
                let page = async {
                    if query.limit == 0 {
                        return Ok(Vec::new());
                    }
                    // The page's ids in a subquery (read from an index, even deep in the list),
                    // then each account and its grants joined to them.
                    let mut builder = sqlx::QueryBuilder::<$db>::new(concat!(
                        "SELECT a.id, a.username, a.email, a.first_name, a.last_name, \
                         a.display_name, a.active, a.user_type, ",
                        $attributes_text,
                        " AS attributes, g.entitlement_id, e.kind, e.label, g.source \
                         FROM (SELECT a.id"
                    ));
                    Self::scim_where(&mut builder, org, &query);
                    builder.push(" ORDER BY ");
                    builder.push(query.order);
                    builder.push(" LIMIT ");
                    builder.push_bind(i64::from(query.limit));
                    builder.push(" OFFSET ");
                    builder.push_bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
                    // CROSS JOIN keeps SQLite's loop over the page, not over every account.
                    builder.push(
                        ") p CROSS JOIN accounts a \
                         LEFT JOIN grants g ON g.org_id = a.org_id AND g.account_id = a.id \
                         LEFT JOIN entitlements e ON e.org_id = g.org_id AND e.id = g.entitlement_id \
                         WHERE a.org_id = ",
                    );
                    builder.push_bind(org.0);
                    builder.push(" AND a.id = p.id ORDER BY ");
                    builder.push(query.order);
                    builder.push(", e.kind, e.label, g.entitlement_id");
                    let rows: Vec<scim_queries::AccountGrantRow> =
                        builder.build_query_as().fetch_all(&self.pool).await?;
                    scim_queries::accounts_with_grants(rows)
                };
                self.scim_page_with_total(org, &query, page).await
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
                builder.push(" AND id IN ");
                Self::push_ids(&mut builder, ids);
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
                builder.push(" AND g.entitlement_id IN ");
                Self::push_ids(&mut builder, ids);
                builder.push(" ORDER BY a.id");
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
