//! `provost review create|start|list|show|close|cancel|export`: access-review campaigns from a
//! terminal, as the HTTP API runs them (the same services, actor `cli`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{open_store, Outcome};
use crate::config::Config;
use crate::reports::output::Format;
use crate::reviews::campaigns::{self, CampaignInput};
use crate::reviews::model::{Campaign, CampaignState, ClosePolicy};

#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// Define a campaign (a draft) from a JSON file, the body `POST .../reviews/campaigns` takes.
    Create {
        #[arg(long)]
        org: String,
        /// The definition: {"name", "scope", "reviewers", "duration_days" or "due_at", ...}.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Start a draft: its items are frozen from the last successful sync.
    Start {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: i64,
        /// Start even when the scope matches more items than max_items.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// List campaigns with their progress.
    List {
        #[arg(long)]
        org: String,
        /// Only campaigns in this state: draft, active, closed, cancelled.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// A campaign, its progress and its open items per reviewer.
    Show {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Close an active campaign; undecided items follow its close policy (or --policy).
    Close {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: i64,
        /// leave_open, keep or revoke, instead of the campaign's own.
        #[arg(long)]
        policy: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a draft or active campaign.
    Cancel {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: i64,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The campaign's evidence for auditors, with a manifest (`provost report verify` checks it).
    Export {
        #[arg(long)]
        org: String,
        #[arg(long)]
        id: i64,
        #[arg(long, value_enum, default_value = "csv")]
        format: Format,
        /// The file to write (with FILE.manifest.json beside it); standard output when left
        /// out, with the manifest on standard error.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

impl ReviewCommand {
    pub fn org(&self) -> &str {
        match self {
            ReviewCommand::Create { org, .. }
            | ReviewCommand::Start { org, .. }
            | ReviewCommand::List { org, .. }
            | ReviewCommand::Show { org, .. }
            | ReviewCommand::Close { org, .. }
            | ReviewCommand::Cancel { org, .. }
            | ReviewCommand::Export { org, .. } => org,
        }
    }
}

fn print(campaign: &Campaign, summary: &crate::store::reviews::Summary, json: bool) {
    if json {
        let mut body = serde_json::to_value(campaign).expect("campaigns serialise");
        body["summary"] = serde_json::json!(summary);
        println!("{body}");
    } else {
        println!(
            "{:>5}  {:<10} {:<40} items {:>7}  open {:>7}  kept {:>7}  revoked {:>7}  remediated {:>7}  due {}",
            campaign.id,
            campaign.state,
            campaign.name,
            summary.items,
            summary.open,
            summary.kept,
            summary.revoked,
            summary.remediated,
            crate::util::times::rfc3339(campaign.due_at)
        );
    }
}

pub(super) async fn run(command: ReviewCommand, config: &Config) -> anyhow::Result<Outcome> {
    let org_config = config.org(command.org()).map_err(anyhow::Error::msg)?;
    let store = open_store(config).await?;
    let org = store.ensure_org(&org_config.name).await?;
    let now = chrono::Utc::now();
    match command {
        ReviewCommand::Create { file, json, .. } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let input: CampaignInput = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a campaign definition (see docs: Access reviews)",
                    file.display()
                )
            })?;
            let campaign = campaigns::create(&store, &org, "cli", &input).await?;
            print(&campaign, &store.summary(campaign.id, now).await?, json);
            if !json {
                eprintln!(
                    "Draft {} made; start it with: provost review start --org {} --id {}",
                    campaign.id, org.name, campaign.id
                );
            }
        }
        ReviewCommand::Start {
            id, force, json, ..
        } => {
            let campaign =
                campaigns::start(&store, config, org_config, &org, id, "cli", force).await?;
            print(&campaign, &store.summary(campaign.id, now).await?, json);
        }
        ReviewCommand::List { state, json, .. } => {
            let state = state
                .as_deref()
                .map(str::parse::<CampaignState>)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let listed = store.list_campaigns(org.id, state).await?;
            if listed.is_empty() && !json {
                println!("No campaigns. Define one with: provost review create --org {} --file campaign.json", org.name);
            }
            for campaign in &listed {
                print(campaign, &store.summary(campaign.id, now).await?, json);
            }
        }
        ReviewCommand::Show { id, json, .. } => {
            let campaign = campaigns::get(&store, &org, id).await?;
            let summary = store.summary(id, now).await?;
            let open = store.open_by_reviewer(id).await?;
            if json {
                let mut body = serde_json::to_value(&campaign)?;
                body["summary"] = serde_json::json!(summary);
                body["open_by_reviewer"] = serde_json::json!(open
                    .iter()
                    .map(|(r, n)| serde_json::json!({"reviewer": r, "open": n}))
                    .collect::<Vec<_>>());
                println!("{body}");
            } else {
                print(&campaign, &summary, false);
                println!(
                    "  in progress {}, failed {}, overdue {}; data as of {}",
                    summary.remediation_in_progress,
                    summary.remediation_failed,
                    summary.overdue,
                    campaign
                        .data_as_of
                        .map_or("-".to_owned(), crate::util::times::rfc3339)
                );
                for (reviewer, n) in open {
                    println!("  {reviewer:<50} {n:>7} open");
                }
            }
        }
        ReviewCommand::Close {
            id, policy, json, ..
        } => {
            let policy = policy
                .as_deref()
                .map(|p| {
                    serde_json::from_value::<ClosePolicy>(serde_json::json!(p)).map_err(|_| {
                        anyhow::anyhow!("--policy {p} is not one of leave_open, keep, revoke")
                    })
                })
                .transpose()?;
            let campaign = campaigns::close(&store, org_config, &org, id, "cli", policy).await?;
            print(&campaign, &store.summary(campaign.id, now).await?, json);
        }
        ReviewCommand::Cancel {
            id, reason, json, ..
        } => {
            let campaign = campaigns::cancel(&store, &org, id, "cli", reason.as_deref()).await?;
            print(&campaign, &store.summary(campaign.id, now).await?, json);
        }
        ReviewCommand::Export {
            id,
            format,
            output,
            json,
            ..
        } => {
            let campaign = campaigns::get(&store, &org, id).await?;
            match output {
                Some(path) => {
                    super::report::write_with_manifest(&path, json, |mut out| {
                        let (store, org, campaign) = (&store, &org, &campaign);
                        async move {
                            let manifest = crate::reviews::report::write(
                                store, org, campaign, format, &mut out,
                            )
                            .await;
                            (manifest.map_err(Into::into), out)
                        }
                    })
                    .await?
                }
                None => {
                    let stdout = std::io::stdout();
                    let out = std::io::BufWriter::new(stdout.lock());
                    let manifest =
                        crate::reviews::report::write(&store, &org, &campaign, format, out).await?;
                    eprintln!("{}", serde_json::to_string(&manifest)?);
                }
            }
        }
    }
    store.close().await;
    Ok(Outcome::Success)
}
