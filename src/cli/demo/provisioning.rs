//! The demo's provisioning walk-through: an access request granting a permission set is
//! planned, approved by someone else, executed against the emulator and shown with its audit
//! trail, and an API token is made for trying the rest by hand.

use std::sync::Arc;

use anyhow::Context;
use provost_connector::model::{EntitlementKind, GrantSource};
use serde_json::Value;

use crate::config::{Config, OrgConfig};
use crate::provisioning::executor::Executor;
use crate::provisioning::plan::{EntitlementRef, RequestInput};
use crate::provisioning::requests::{self, Decision};
use crate::provisioning::Action;
use crate::store::{Page, Store};
use crate::tokens;

/// Makes an `admin` token for the demo and returns it (shown once).
pub async fn demo_token(store: &Arc<dyn Store>) -> anyhow::Result<String> {
    let token = tokens::generate();
    let name = format!("demo-{}", std::process::id());
    store
        .create_token(&name, &tokens::hash(&token), &["admin".to_owned()])
        .await
        .context("creating the demo's API token")?;
    Ok(token)
}

/// Grants a permission set to a user through an access request, end to end, and prints it.
pub async fn walk_through(
    config: &Arc<Config>,
    org: &OrgConfig,
    store: &Arc<dyn Store>,
) -> anyhow::Result<()> {
    let record = store.ensure_org(&org.name).await?;
    let Some((user, set)) = pick(store, record.id).await? else {
        println!("(no active user without a grantable permission set: the provisioning walk-through is skipped)");
        return Ok(());
    };
    let input = RequestInput {
        action: Action::Grant,
        user: Some(user.clone()),
        entitlement: Some(EntitlementRef::Named {
            kind: EntitlementKind::PermissionSet,
            name: set.clone(),
        }),
        justification: Some("Demo: quarterly pipeline review".into()),
        requester: Some("alice@requester.demo".into()),
        ticket: Some("DEMO-1".into()),
        expires_at: None,
        new_user: None,
        changes: None,
    };
    let created = requests::create(&**store, org, &record, "demo-flow", input, None).await?;
    let request = created.request;
    let write = &request.plan["write"];
    println!(
        "\nAccess request {} ({}): {}",
        request.id,
        request.state,
        request.plan["summary"].as_str().unwrap_or_default()
    );
    println!(
        "  plan: {} {} {}",
        write["method"].as_str().unwrap_or_default(),
        write["sobject"].as_str().unwrap_or_default(),
        write["fields"]
    );
    let approved = requests::decide(
        &**store,
        &record,
        request.id,
        "bob@approver.demo",
        true,
        Decision::Approve,
        Some("ok for the quarter".into()),
    )
    .await?;
    println!("  approved by {}", approved.approver.unwrap_or_default());
    let executor = Executor::new(config.clone(), store.clone(), "demo".into());
    executor.run_once().await?;
    let done = store
        .get_request(record.id, request.id)
        .await?
        .context("the demo request vanished")?;
    println!(
        "  {}: Salesforce record {}",
        done.state,
        done.result
            .as_ref()
            .and_then(|r| r["record_id"].as_str())
            .unwrap_or("-")
    );
    for entry in store.request_audit(request.id).await? {
        println!(
            "  audit #{:<4} {:<24} by {}",
            entry.seq, entry.event, entry.actor
        );
    }
    let verification = crate::audit::log::verify(store).await?;
    println!(
        "  audit chain: {} entries, {}",
        verification.entries,
        verification
            .problem
            .as_deref()
            .unwrap_or("intact (provost audit verify)")
    );
    Ok(())
}

/// An active standard user (not the connected one) and a grantable, license-free permission
/// set it does not hold.
async fn pick(
    store: &Arc<dyn Store>,
    org: crate::store::OrgId,
) -> anyhow::Result<Option<(String, String)>> {
    let connected = store
        .last_preflight(org)
        .await?
        .and_then(|(report, _)| report["username"].as_str().map(str::to_owned));
    let sets = store
        .list_entitlements(org, Some(EntitlementKind::PermissionSet), Page::first(500))
        .await?;
    let sets: Vec<_> = sets
        .into_iter()
        .filter(|s| s.grantable && s.attributes.get("LicenseId").is_none_or(Value::is_null))
        .collect();
    for account in store.list_accounts(org, Page::first(200)).await? {
        if !account.active
            || account.user_type.as_deref() != Some("Standard")
            || connected.as_deref() == Some(account.username.as_str())
        {
            continue;
        }
        let held = store.grants_of_account(org, &account.id).await?;
        let free = sets.iter().find(|s| {
            !held
                .iter()
                .any(|g| g.entitlement_id == s.id && g.source == GrantSource::Direct)
        });
        if let Some(set) = free {
            return Ok(Some((account.username, set.api_name.clone())));
        }
    }
    Ok(None)
}
