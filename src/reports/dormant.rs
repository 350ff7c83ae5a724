//! `dormant`: active users who hold entitlements beyond their profile and have not logged in
//! for `--days` days, or ever: access nobody uses is access to take away.

use std::io::Write;
use std::sync::Arc;

use provost_connector::times::Timestamp;
use serde_json::{json, Value};

use super::output::{Format, RowWriter, Written};
use super::{user_values, Context, Params, ReportError};
use crate::store::reports::HeldEntitlement;
use crate::store::Store;

/// The longest dormancy asked about: beyond it the cutoff would precede any Salesforce org
/// (and, far beyond, the dates a time can hold).
pub const MAX_DAYS: u32 = 36_500;

const COLUMNS: [&str; 3] = ["days_since_login", "entitlements", "entitlement_names"];

/// Kinds that say what a user can do (a profile alone, a role or a license do not make
/// access worth reviewing on their own).
const REVIEWED: [&str; 3] = ["permission_set", "permission_set_group", "public_group"];

pub(super) async fn write(
    store: &Arc<dyn Store>,
    context: &Context,
    params: &Params,
    format: Format,
    out: impl Write,
) -> Result<Written, ReportError> {
    let days = params.days.ok_or_else(|| {
        ReportError::BadParameter("dormant needs --days N (days without a login)".to_owned())
    })?;
    if days > MAX_DAYS {
        return Err(ReportError::BadParameter(format!(
            "days={days} is more than {MAX_DAYS} (100 years): give the days without a login, 0 to {MAX_DAYS}"
        )));
    }
    let cutoff = context.now - chrono::TimeDelta::days(i64::from(days));
    let mut writer = super::user_rows(out, format, &COLUMNS)?;
    let mut users = super::Users::new(params);
    while let Some(grants) = users.next(store, context.org.id).await? {
        judge(context, params, cutoff, &grants, &mut writer)?;
    }
    Ok(writer.finish()?)
}

fn judge<W: Write>(
    context: &Context,
    params: &Params,
    cutoff: Timestamp,
    grants: &[HeldEntitlement],
    writer: &mut RowWriter<W>,
) -> Result<(), ReportError> {
    let Some(first) = grants.first() else {
        return Ok(());
    };
    let account = &first.account;
    if !account.active || !params.admits(account) {
        return Ok(());
    }
    let last_login = account
        .attributes
        .get("LastLoginDate")
        .and_then(Value::as_str)
        .and_then(provost_connector::times::parse_datetime);
    if last_login.is_some_and(|at| at >= cutoff) {
        return Ok(());
    }
    let held: Vec<(&str, (&str, &str))> = grants
        .iter()
        .map(|g| {
            (
                g.entitlement_id.as_str(),
                context.kind_and_name(&g.entitlement_id),
            )
        })
        .collect();
    let mut names: Vec<&str> = held
        .iter()
        .filter(|(_, (kind, _))| REVIEWED.contains(kind))
        .map(|(_, (_, name))| *name)
        .collect();
    if let Some(key) = &params.entitlement {
        if !held.iter().any(|(id, (_, name))| id == key || name == key) {
            return Ok(());
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    names.sort_unstable();
    let mut values = user_values(context, account);
    values.extend([
        last_login.map_or(Value::Null, |at| json!((context.now - at).num_days())),
        json!(names.len()),
        json!(names.join(";")),
    ]);
    writer.row(&values)?;
    Ok(())
}
