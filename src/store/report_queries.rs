//! The report store's SQL, the same on SQLite and PostgreSQL, expanded into each backend's
//! [`ReportStore`](super::reports::ReportStore) impl.

use provost_connector::model::Account;
use serde_json::{Map, Value};
use sqlx::types::Json;
use time::OffsetDateTime;

use super::reports::HeldEntitlement;

/// The change that made a grant what it is now: its creation, or for a user's profile or
/// role (whose grant id stays) the last update that changed the entitlement.
pub(super) const HELD_SELECT: &str = "SELECT a.id AS account_id, a.username, a.email, \
    a.first_name, a.last_name, a.display_name, a.active, a.user_type, a.attributes, \
    g.id AS grant_id, g.entitlement_id, g.source, g.expires_at, e.kind, e.api_name, e.label, \
    c.observed_at AS since, c.request_id \
    FROM accounts a \
    JOIN grants g ON g.org_id = a.org_id AND g.account_id = a.id \
    JOIN entitlements e ON e.org_id = g.org_id AND e.id = g.entitlement_id \
    LEFT JOIN changes c ON c.id = (SELECT MAX(c2.id) FROM changes c2 \
        WHERE c2.org_id = g.org_id AND c2.entity = 'grant' AND c2.object_id = g.id \
        AND (c2.op = 'created' OR (c2.op = 'updated' AND c2.fields LIKE '%\"entitlement_id\"%'))) \
    WHERE a.org_id = $1 AND (a.id > $2 OR (a.id = $2 AND g.id > $3)) \
    ORDER BY a.id, g.id LIMIT $4";

#[derive(sqlx::FromRow)]
pub(super) struct HeldRow {
    account_id: String,
    username: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: String,
    active: bool,
    user_type: Option<String>,
    attributes: Json<Map<String, Value>>,
    grant_id: String,
    entitlement_id: String,
    source: String,
    expires_at: Option<OffsetDateTime>,
    kind: String,
    api_name: String,
    label: String,
    since: Option<OffsetDateTime>,
    request_id: Option<i64>,
}

impl From<HeldRow> for HeldEntitlement {
    fn from(row: HeldRow) -> Self {
        HeldEntitlement {
            account: Account {
                id: row.account_id,
                username: row.username,
                email: row.email,
                first_name: row.first_name,
                last_name: row.last_name,
                display_name: row.display_name,
                active: row.active,
                user_type: row.user_type,
                attributes: row.attributes.0,
            },
            grant_id: row.grant_id,
            entitlement_id: row.entitlement_id,
            source: row.source,
            expires_at: row.expires_at,
            kind: row.kind,
            api_name: row.api_name,
            label: row.label,
            since: row.since,
            request_id: row.request_id,
        }
    }
}

/// Implements [`ReportStore`](super::reports::ReportStore) for a backend with a `pool` field.
macro_rules! impl_report_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::reports::ReportStore for $store {
            async fn held_entitlements(
                &self,
                org: OrgId,
                after: Option<(&str, &str)>,
                limit: u32,
            ) -> Result<Vec<super::reports::HeldEntitlement>, StoreError> {
                let (account, grant) = after.unwrap_or(("", ""));
                let rows: Vec<report_queries::HeldRow> =
                    sqlx::query_as(report_queries::HELD_SELECT)
                        .bind(org.0)
                        .bind(account)
                        .bind(grant)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }
        }
    };
}

pub(super) use impl_report_store;
