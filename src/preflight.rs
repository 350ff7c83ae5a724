//! `provost preflight --org NAME [--json]`: runs the connector's preflight and reports it.

use std::fmt::Write;

use provost_salesforce::preflight::{self, PreflightOptions, PreflightReport, Status};

use crate::config::OrgConfig;

/// Runs the preflight; returns the report and whether every required check passed.
pub async fn run(org: &OrgConfig) -> anyhow::Result<PreflightReport> {
    let client = crate::orgs::client_for(org)?;
    Ok(preflight::run(
        &client,
        PreflightOptions {
            exclude_portal_users: org.exclude_portal_users,
        },
    )
    .await)
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
