//! `provost preflight --org NAME [--json]`: what the connecting user may do, and what is
//! missing; and the report as a terminal shows it (also after `provost connect`).

use std::fmt::Write;

use provost_connector::preflight::{PreflightReport, Status};

use super::{open_store, Outcome};
use crate::config::{Config, OrgConfig};

pub(super) async fn run(config: &Config, org: &str, json: bool) -> anyhow::Result<Outcome> {
    let org = config.org(org).map_err(anyhow::Error::msg)?;
    let store = open_store(config).await?;
    let secrets = crate::org::preflight::secrets_for(config, org)?;
    let report = crate::org::preflight::run(org, &store, secrets.as_ref()).await?;
    store.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(org, &report));
    }
    if !report.ok {
        return Ok(Outcome::ChecksFailed);
    }

    Ok(Outcome::Success)
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
