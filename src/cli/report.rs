//! `provost report entitlements|dormant ...` and `provost report verify FILE`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;

use super::{open_store, Outcome};
use crate::config::Config;
use crate::reports::manifest;
use crate::reports::output::Format;
use crate::reports::{Params, Report};

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The org, by its name in the configuration.
    #[arg(long)]
    pub org: String,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// The file to write (with FILE.manifest.json beside it); standard output when left out,
    /// with the manifest on standard error.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only this entitlement (id or API name).
    #[arg(long)]
    pub entitlement: Option<String>,
    /// Only users of this user type (Standard, PowerPartner, ...).
    #[arg(long)]
    pub user_type: Option<String>,
    /// Only active users.
    #[arg(long)]
    pub active_only: bool,
    /// Reports of who holds what (all but changes and dormant): the state at this past time
    /// (RFC 3339), rebuilt from the change history.
    #[arg(long, value_name = "T")]
    pub as_of: Option<String>,
    /// With --output: print the manifest (and where it was written) as one JSON object on
    /// standard output, instead of a sentence on standard error.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// One row per user and entitlement held: how it is held, since when, until when, and the
    /// Provost request that granted it.
    Entitlements(ReportArgs),
    /// Each sensitive system permission of each user (Modify All Data, View All Data, Manage
    /// Users, ...) with every grant that confers it.
    EffectivePermissions {
        #[command(flatten)]
        args: ReportArgs,
        /// Only this permission: ModifyAllData, "Modify All Data", PermissionsModifyAllData...
        #[arg(long)]
        permission: Option<String>,
    },
    /// Grants added, removed and changed and user lifecycle changes in a window, each with
    /// whether it came through Provost (request, approver, ticket) or straight from Salesforce.
    Changes {
        #[command(flatten)]
        args: ReportArgs,
        /// Start of the window (RFC 3339, e.g. 2026-07-01T00:00:00Z), inclusive.
        #[arg(long)]
        since: String,
        /// End of the window, exclusive; now when left out.
        #[arg(long)]
        until: Option<String>,
    },
    /// Active users holding permission sets, groups or public groups who have not logged in
    /// for --days days, or ever.
    Dormant {
        #[command(flatten)]
        args: ReportArgs,
        #[arg(long)]
        days: u32,
    },
    /// What users can do on objects (read, create, edit, delete, view all, modify all), one
    /// row per user, object and path; Modify All Data and View All Data count.
    ObjectAccess {
        #[command(flatten)]
        args: ReportArgs,
        /// Only this object (API name: Opportunity, Invoice__c).
        #[arg(long)]
        object: Option<String>,
        /// Only paths that allow this: read, create, edit, delete, view_all, modify_all,
        /// view_all_fields.
        #[arg(long)]
        action: Option<String>,
    },
    /// Who can read or edit fields, one row per user, field and path.
    FieldAccess {
        #[command(flatten)]
        args: ReportArgs,
        /// Only this field, as Object.Field (Contact.SSN__c).
        #[arg(long)]
        field: Option<String>,
        /// Only the fields of this object.
        #[arg(long)]
        object: Option<String>,
        /// Only paths that allow this: read or edit.
        #[arg(long)]
        action: Option<String>,
    },
    /// Who can use connected apps, Apex classes and custom permissions, one row per user,
    /// entity and path.
    SetupAccess {
        #[command(flatten)]
        args: ReportArgs,
        /// Only this setup entity, by id or name (DataLoader, Approve_Refunds).
        #[arg(long)]
        setup_entity: Option<String>,
    },
    /// Check a report file against its manifest (size and SHA-256); exit 1 if it changed.
    Verify {
        file: PathBuf,
        /// The manifest, when not FILE.manifest.json.
        #[arg(long)]
        manifest: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

impl ReportCommand {
    /// The org the report is of (`verify` names none).
    pub fn org(&self) -> Option<&str> {
        match self {
            ReportCommand::Entitlements(args)
            | ReportCommand::EffectivePermissions { args, .. }
            | ReportCommand::Changes { args, .. }
            | ReportCommand::Dormant { args, .. }
            | ReportCommand::ObjectAccess { args, .. }
            | ReportCommand::FieldAccess { args, .. }
            | ReportCommand::SetupAccess { args, .. } => Some(&args.org),
            ReportCommand::Verify { .. } => None,
        }
    }
}

pub async fn run(command: ReportCommand, config: &Config) -> anyhow::Result<Outcome> {
    let (report, args, extra) = match command {
        ReportCommand::Verify {
            file,
            manifest,
            json,
        } => return verify(&file, manifest.as_deref(), json),
        ReportCommand::Entitlements(args) => (Report::Entitlements, args, Params::default()),
        ReportCommand::EffectivePermissions { args, permission } => (
            Report::EffectivePermissions,
            args,
            Params {
                permission,
                ..Params::default()
            },
        ),
        ReportCommand::Changes { args, since, until } => (
            Report::Changes,
            args,
            Params {
                since: Some(timestamp("--since", &since)?),
                until: until
                    .as_deref()
                    .map(|t| timestamp("--until", t))
                    .transpose()?,
                ..Params::default()
            },
        ),
        ReportCommand::Dormant { args, days } => (
            Report::Dormant,
            args,
            Params {
                days: Some(days),
                ..Params::default()
            },
        ),
        ReportCommand::ObjectAccess {
            args,
            object,
            action,
        } => (
            Report::ObjectAccess,
            args,
            Params {
                object,
                action,
                ..Params::default()
            },
        ),
        ReportCommand::FieldAccess {
            args,
            field,
            object,
            action,
        } => (
            Report::FieldAccess,
            args,
            Params {
                field,
                object,
                action,
                ..Params::default()
            },
        ),
        ReportCommand::SetupAccess { args, setup_entity } => (
            Report::SetupAccess,
            args,
            Params {
                setup_entity,
                ..Params::default()
            },
        ),
    };
    config.org(&args.org).map_err(anyhow::Error::msg)?;
    let params = Params {
        entitlement: args.entitlement.clone(),
        user_type: args.user_type.clone(),
        active_only: args.active_only,
        as_of: args
            .as_of
            .as_deref()
            .map(|t| timestamp("--as-of", t))
            .transpose()?,
        ..extra
    };
    let store = open_store(config).await?;
    let result = match &args.output {
        Some(path) => to_file(&store, &args, report, &params, path).await,
        None => {
            let stdout = std::io::stdout();
            let out = std::io::BufWriter::new(stdout.lock());
            let manifest =
                crate::reports::generate(&store, &args.org, report, &params, args.format, out)
                    .await?;
            eprintln!("{}", serde_json::to_string(&manifest)?);
            Ok(())
        }
    };
    store.close().await;
    result?;
    Ok(Outcome::Success)
}

/// Writes beside the target and renames at the end, so a failed run leaves no file that
/// looks complete; then writes the manifest.
async fn to_file(
    store: &std::sync::Arc<dyn crate::store::Store>,
    args: &ReportArgs,
    report: Report,
    params: &Params,
    path: &Path,
) -> anyhow::Result<()> {
    write_with_manifest(path, args.json, |mut out| async move {
        let manifest =
            crate::reports::generate(store, &args.org, report, params, args.format, &mut out).await;
        (manifest.map_err(Into::into), out)
    })
    .await
}

/// The file a report is written to while it is made.
pub(super) type Partial = std::io::BufWriter<std::fs::File>;

/// Writes a report to `path` through `generate` (into a partial file renamed at the end, so a
/// failed run leaves no file that looks complete), then its manifest beside it; says where,
/// as JSON when `json`.
pub(super) async fn write_with_manifest<F, Fut>(
    path: &Path,
    json: bool,
    generate: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Partial) -> Fut,
    Fut: std::future::Future<Output = (anyhow::Result<manifest::Manifest>, Partial)>,
{
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let (generated, mut out) = generate(std::io::BufWriter::new(file)).await;
    let mut manifest = match generated.and_then(|m| Ok(out.flush().map(|()| m)?)) {
        Ok(manifest) => manifest,
        Err(err) => {
            let _ = std::fs::remove_file(&partial);
            return Err(err);
        }
    };
    drop(out);
    std::fs::rename(&partial, path)
        .with_context(|| format!("moving {} to {}", partial.display(), path.display()))?;
    manifest.file = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let manifest_path = manifest::path_of(path);
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)? + "\n",
    )
    .with_context(|| format!("writing {}", manifest_path.display()))?;
    if json {
        let mut answer = serde_json::to_value(&manifest)?;
        answer["path"] = serde_json::json!(path.display().to_string());
        answer["manifest_path"] = serde_json::json!(manifest_path.display().to_string());
        println!("{}", serde_json::to_string(&answer)?);
    } else {
        eprintln!(
            "Wrote {} rows to {} (SHA-256 {}), manifest {}.",
            manifest.rows,
            path.display(),
            manifest.sha256,
            manifest_path.display()
        );
    }
    Ok(())
}

fn timestamp(flag: &str, text: &str) -> anyhow::Result<provost_connector::times::Timestamp> {
    provost_connector::times::parse_rfc3339(text).ok_or_else(|| {
        anyhow::anyhow!("{flag} {text} is not an RFC 3339 time such as 2026-07-01T00:00:00Z")
    })
}

fn verify(file: &Path, manifest: Option<&Path>, json: bool) -> anyhow::Result<Outcome> {
    let verification = manifest::verify(file, manifest)?;
    if json {
        println!("{}", serde_json::to_string(&verification)?);
    } else if verification.ok {
        let report = verification.report.as_ref().expect("a verified manifest");
        println!(
            "{} matches its manifest: {} report of org `{}`, {} rows, generated {}.",
            verification.file, report.report, report.org, report.rows, report.generated_at
        );
    } else {
        println!(
            "{} does NOT match its manifest {}:",
            verification.file, verification.manifest
        );
        for problem in &verification.problems {
            println!("  - {problem}");
        }
    }
    Ok(if verification.ok {
        Outcome::Success
    } else {
        Outcome::ChecksFailed
    })
}
