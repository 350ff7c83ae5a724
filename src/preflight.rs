//! `provost preflight --org NAME [--json]`: runs the connector's preflight and reports it.

use std::fmt::Write;
use std::sync::Arc;

use provost_salesforce::preflight::{self, PreflightOptions, PreflightReport, Status};

use crate::config::{AuthConfig, Config, OrgConfig};
use crate::secrets::SecretBox;
use crate::store::Store;

/// The secret key, when the org's credentials need it (web-server orgs keep a sealed token).
pub fn secrets_for(config: &Config, org: &OrgConfig) -> anyhow::Result<Option<SecretBox>> {
    match org.auth {
        AuthConfig::WebServer { .. } => Ok(Some(SecretBox::load(&config.secrets.key_file)?)),
        _ => Ok(None),
    }
}

/// Runs the preflight of an org.
pub async fn run(
    org: &OrgConfig,
    store: &Arc<dyn Store>,
    secrets: Option<&SecretBox>,
) -> anyhow::Result<PreflightReport> {
    let client = crate::orgs::client_for(org, store, secrets).await?;
    let options = PreflightOptions {
        exclude_portal_users: org.exclude_portal_users,
    };
    let report = preflight::run(&client, options).await;
    crate::orgs::keep_rotated_token(org, &client, store, secrets).await?;
    // Kept for access requests, whose plans check what the connected user may do.
    let record = store.ensure_org(&org.name).await?;
    store
        .save_preflight(record.id, &serde_json::to_value(&report)?)
        .await?;
    Ok(report)
}

/// The report for a terminal.
pub fn render(org: &OrgConfig, report: &PreflightReport) -> String {
    let mut out = format!("Preflight of org `{}` ({})\n", org.name, org.login_url);
    for check in &report.checks {
        let label = match check.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        let _ = writeln!(out, "  {label}  {:<24} {}", check.id, check.detail);
        if check.status != Status::Pass {
            let _ = writeln!(out, "        {:<24} needed for {}", "", check.needed_for);
            if let Some(remedy) = &check.remedy {
                let _ = writeln!(out, "        {:<24} fix: {remedy}", "");
            }
        }
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.required && c.status == Status::Fail)
        .count();
    if report.ok {
        out.push_str("Result: every required check passed.\n");
    } else {
        let _ = writeln!(out, "Result: {failed} required check(s) failed; Provost cannot work with this org until they pass.");
    }
    out
}
