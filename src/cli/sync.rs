//! `provost sync [--org NAME] [--full] [--json]` and `provost sync status`.

use clap::Subcommand;

use super::{open_store, Outcome};
use crate::config::{Config, OrgConfig};
use crate::org::sync::{request_for, sync_org, OrgSyncError};
use crate::store::sync::{RunStatus, SyncMode};
use crate::sync::progress::{self, Bars, LogObserver, Observer, Summary};
use crate::sync::status;

pub async fn run(args: SyncArgs, config: Config) -> anyhow::Result<Outcome> {
    let store = open_store(&config).await?;
    let outcome = match args.command {
        Some(SyncCommand::Status { org, limit, json }) => {
            let mut lines = Vec::new();
            for org in selected(&config, org.as_deref()) {
                let (runs, health) = match store.find_org(&org.name).await? {
                    Some(record) => (
                        store.list_sync_runs(record.id, limit).await?,
                        status::org_health(store.as_ref(), record.id).await?,
                    ),
                    None => (Vec::new(), status::health(&[])),
                };
                if json {
                    lines.push(serde_json::to_string(&serde_json::json!({
                        "org": org.name, "runs": runs, "health": health,
                    }))?);
                } else {
                    lines.push(status::render(&org.name, &runs, &health));
                }
            }
            for line in lines {
                if json {
                    println!("{line}");
                } else {
                    print!("{line}");
                }
            }
            Outcome::Success
        }
        None => {
            let mode = if args.full {
                SyncMode::Full
            } else {
                SyncMode::Incremental
            };
            let mut all_ok = true;
            for org in selected(&config, args.org.as_deref()) {
                all_ok &= sync_one(&config, org, &store, mode, &args).await?;
            }
            if all_ok {
                Outcome::Success
            } else {
                Outcome::ChecksFailed
            }
        }
    };
    store.close().await;
    Ok(outcome)
}

fn selected<'a>(config: &'a Config, name: Option<&str>) -> Vec<&'a OrgConfig> {
    config
        .orgs
        .iter()
        .filter(|org| name.is_none_or(|n| n == org.name))
        .collect()
}

/// Syncs one org and prints its summary; `false` when it did not complete.
async fn sync_one(
    config: &Config,
    org: &OrgConfig,
    store: &std::sync::Arc<dyn crate::store::Store>,
    mode: SyncMode,
    args: &SyncArgs,
) -> anyhow::Result<bool> {
    let request = request_for(org, mode, "cli");
    let bars = (!args.json).then(Bars::new);
    let observer: &dyn Observer = match &bars {
        Some(bars) => bars,
        None => &LogObserver,
    };
    let result = sync_org(config, org, store, &request, args.skip_preflight, observer).await;
    drop(bars);
    match result {
        Ok(finished) => {
            if args.json {
                let summary = Summary {
                    org: &org.name,
                    run: &finished.run,
                    duration_seconds: finished.elapsed.as_secs_f64(),
                };
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                print!(
                    "{}",
                    progress::render(&org.name, &finished.run, finished.elapsed)
                );
            }
            Ok(finished.run.status == RunStatus::Succeeded)
        }
        Err(OrgSyncError::Preflight { org: name, report }) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"org": name, "status": "not_started", "error": "preflight failed", "preflight": report})
                );
            } else {
                print!("{}", crate::cli::preflight::render(org, &report));
                println!("The sync of org `{name}` did not start: fix the failed checks above and run it again.");
            }
            Ok(false)
        }
        Err(err) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"org": org.name, "status": "not_started", "error": err.to_string()})
                );
            } else {
                eprintln!("provost: syncing org `{}`: {err:#}", org.name);
            }
            tracing::error!(org = %org.name, error = %err, "sync did not run");
            Ok(false)
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SyncArgs {
    #[command(subcommand)]
    pub command: Option<SyncCommand>,
    /// The org to sync; every configured org when left out.
    #[arg(long)]
    pub org: Option<String>,
    /// Read everything and compare, instead of reading only what changed.
    #[arg(long)]
    pub full: bool,
    /// Print the summary as one JSON object (one line per org).
    #[arg(long)]
    pub json: bool,
    /// Sync without running the preflight first.
    #[arg(long)]
    pub skip_preflight: bool,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Recent sync runs of each org, with their success rate, duration and API usage.
    Status {
        #[arg(long)]
        org: Option<String>,
        /// How many recent runs to show and compute health over.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}
