//! A campaign's report for auditors: each item with its reviewers, every stage's decision,
//! the remediation request and its outcome, as CSV, JSON or NDJSON hashed as written, with a
//! manifest that carries the campaign's summary.

use std::io::Write;
use std::sync::Arc;

use serde_json::{json, Value};

use super::model::Campaign;
use super::ReviewError;
use crate::reports::manifest::Manifest;
use crate::reports::output::{Format, RowWriter};
use crate::store::{OrgRecord, Store};

const COLUMNS: [&str; 27] = [
    "campaign_id",
    "campaign",
    "item_id",
    "user_id",
    "username",
    "display_name",
    "entitlement_type",
    "entitlement_id",
    "entitlement",
    "grant_id",
    "granted_since",
    "system_permissions",
    "privileged",
    "suggestion",
    "reasons",
    "reviewers",
    "reviewer",
    "state",
    "decision",
    "comment",
    "decided_by",
    "decided_at",
    "history",
    "drift",
    "remediation",
    "request_id",
    "remediation_outcome",
];

fn time(at: Option<provost_connector::times::Timestamp>) -> Value {
    at.map_or(Value::Null, |at| json!(crate::util::times::rfc3339(at)))
}

/// Writes campaign `campaign`'s report to `out` and returns its manifest.
pub async fn write(
    store: &Arc<dyn Store>,
    org: &OrgRecord,
    campaign: &Campaign,
    format: Format,
    out: impl Write,
) -> Result<Manifest, ReviewError> {
    let now = chrono::Utc::now();
    let summary = store.summary(campaign.id, now).await?;
    let io = |e: std::io::Error| {
        ReviewError::Store(crate::store::StoreError::Corrupt {
            what: "review report output",
            detail: e.to_string(),
        })
    };
    let mut writer = RowWriter::new(out, format, &COLUMNS).map_err(io)?;
    let mut after = 0;
    loop {
        let items = store.campaign_items(campaign.id, after, 2000).await?;
        let Some(last) = items.last() else { break };
        let records = store.decision_records(campaign.id, after, last.id).await?;
        after = last.id;
        for item in &items {
            let history: Vec<String> = records
                .iter()
                .filter(|r| r.item_id == item.id)
                .map(|r| {
                    format!(
                        "stage {}: {} by {} at {}{}",
                        r.stage,
                        r.decision,
                        r.actor,
                        crate::util::times::rfc3339(r.at),
                        r.comment
                            .as_deref()
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let outcome = match (item.remediation.as_deref(), item.request_state.as_deref()) {
                (Some("requested"), Some(state)) => json!(match &item.request_error {
                    Some(error) => format!("{state}: {error}"),
                    None => state.to_owned(),
                }),
                (Some("requested"), None) => json!("request deleted"),
                (Some(_), _) => json!(item.remediation_note),
                (None, _) => Value::Null,
            };
            writer
                .row(&[
                    json!(campaign.id),
                    json!(campaign.name),
                    json!(item.id),
                    json!(item.account_id),
                    json!(item.username),
                    json!(item.display_name),
                    json!(item.kind),
                    json!(item.entitlement_id),
                    json!(item.api_name),
                    json!(item.grant_id),
                    item.context["granted_since"].clone(),
                    json!(item.context["system_permissions"].as_array().map(|p| p
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))),
                    json!(item.privileged),
                    json!(item.suggestion),
                    json!(item.context["reasons"].as_array().map(|p| p
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; "))),
                    json!(item
                        .reviewers
                        .iter()
                        .map(|r| format!("{} ({})", r.reviewer, r.rule))
                        .collect::<Vec<_>>()
                        .join(" then ")),
                    json!(item.reviewer),
                    json!(item.state),
                    json!(item.decision),
                    json!(item.comment),
                    json!(item.decided_by),
                    time(item.decided_at),
                    json!(history.join("; ")),
                    json!(item.drift),
                    json!(item.remediation),
                    json!(item.request_id),
                    outcome,
                ])
                .map_err(io)?;
        }
    }
    let written = writer.finish().map_err(io)?;
    Ok(Manifest {
        report: "access-review".to_owned(),
        format: format.as_str().to_owned(),
        org: org.name.clone(),
        parameters: json!({
            "campaign": campaign.id,
            "name": campaign.name,
            "state": campaign.state,
            "started_at": time(campaign.started_at),
            "due_at": crate::util::times::rfc3339(campaign.due_at),
            "closed_at": time(campaign.closed_at),
            "close_policy": campaign.definition.close_policy.as_str(),
            "summary": summary,
        }),
        sync_run: None,
        data_as_of: campaign.data_as_of.map(crate::util::times::rfc3339),
        generated_at: crate::util::times::rfc3339(now),
        generated_by: concat!("provost ", env!("CARGO_PKG_VERSION")).to_owned(),
        file: None,
        rows: written.rows,
        bytes: written.bytes,
        sha256: written.sha256,
    })
}
