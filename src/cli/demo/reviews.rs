//! The demo's access-review walk-through: a campaign over every path to Modify All Data,
//! reviewed by managers, started from the synced org; one manager revokes a grant, the executor
//! carries it out, and the campaign's progress is shown.

use std::sync::Arc;

use crate::config::{Config, OrgConfig};
use crate::provisioning::executor::Executor;
use crate::reviews::campaigns::{self, CampaignInput};
use crate::reviews::decide::{self, Verdict};
use crate::reviews::Actor;
use crate::store::reviews::ItemFilter;
use crate::store::Store;

/// Runs the walk-through; returns the campaign's id (1 in a new data directory).
pub async fn walk_through(
    config: &Arc<Config>,
    org: &OrgConfig,
    store: &Arc<dyn Store>,
) -> anyhow::Result<i64> {
    let record = store.ensure_org(&org.name).await?;
    let input: CampaignInput = serde_json::from_value(serde_json::json!({
        "name": "Demo: who holds Modify All Data",
        "scope": {"permissions": ["ModifyAllData"], "active_only": true},
        "reviewers": {"stages": ["manager"], "fallback": ["secops"]},
        "duration_days": 14,
        "close_policy": "leave_open",
    }))?;
    let draft = campaigns::create(store, &record, "demo", &input).await?;
    let campaign =
        match campaigns::start(store, config, org, &record, draft.id, "demo", false).await {
            Ok(campaign) => campaign,
            Err(err) => {
                println!("(the access-review walk-through is skipped: {err})");
                return Ok(draft.id);
            }
        };
    let reviewers = store.open_by_reviewer(campaign.id).await?;
    println!(
        "\nAccess review {} `{}`: {} grants bring Modify All Data, for {} reviewers (managers, else the team secops).",
        campaign.id,
        campaign.name,
        campaign.items,
        reviewers.len()
    );
    // A manager's revocable item: a permission set or group, not a profile.
    let mut chosen = None;
    for (reviewer, _) in reviewers.iter().filter(|(r, _)| r != "secops") {
        let items = store
            .list_items(
                record.id,
                &ItemFilter {
                    campaign: Some(campaign.id),
                    reviewer: Some(reviewer.clone()),
                    state: Some("open".into()),
                    limit: 50,
                    ..ItemFilter::default()
                },
            )
            .await?;
        if let Some(item) = items
            .into_iter()
            .find(|i| i.kind == "permission_set" || i.kind == "permission_set_group")
        {
            chosen = Some((reviewer.clone(), item));
            break;
        }
    }
    let Some((reviewer, item)) = chosen else {
        println!("(no manager reviews a permission set here: the decision is skipped)");
        return Ok(campaign.id);
    };
    println!(
        "  {reviewer} reviews {} holding {} `{}` ({}); suggestion: {}",
        item.username,
        item.kind,
        item.api_name,
        item.context["system_permissions"],
        item.suggestion.as_deref().unwrap_or("none")
    );
    let actor = Actor {
        identity: reviewer.clone(),
        admin: false,
    };
    let outcome = decide::decide(
        store,
        org,
        &record,
        &actor,
        &[item.id],
        Verdict::Revoke,
        Some("Demo: no longer needs Modify All Data"),
    )
    .await?;
    let request = outcome
        .first()
        .and_then(|o| o.state.as_ref())
        .and_then(|s| s["request_id"].as_i64());
    Executor::new(config.clone(), store.clone(), "demo-executor".into())
        .run_once()
        .await?;
    let summary = store.summary(campaign.id, chrono::Utc::now()).await?;
    println!(
        "  revoked with a comment: access request {} approved by the decision and carried out by the executor;\n  \
         campaign: {} items, {} decided, {} remediated, {} open. Evidence: provost review export --org {} --id {}",
        request.map_or("-".to_owned(), |r| r.to_string()),
        summary.items,
        summary.decided,
        summary.remediated,
        summary.open,
        org.name,
        campaign.id
    );
    Ok(campaign.id)
}
