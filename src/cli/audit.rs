//! `provost audit verify|export`: the hash-chained audit log.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{open_store, Outcome};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit status 1 and where, if any entry was edited, removed
    /// or reordered.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Write the audit log as JSON lines (to a file, or standard output).
    Export {
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

pub(super) async fn run(command: AuditCommand, config: &Config) -> anyhow::Result<Outcome> {
    let store = open_store(config).await?;
    let outcome = match command {
        AuditCommand::Verify { json } => {
            let verification = crate::audit::log::verify(&store).await?;
            if json {
                println!("{}", serde_json::to_string(&verification)?);
            } else {
                match &verification.problem {
                    None => println!(
                        "The audit log is intact: {} entries, chained up to entry {}.",
                        verification.entries, verification.head_seq
                    ),
                    Some(problem) => println!("The audit log was tampered with: {problem}"),
                }
            }
            if verification.problem.is_some() {
                Outcome::ChecksFailed
            } else {
                Outcome::Success
            }
        }
        AuditCommand::Export { output } => {
            let written = match &output {
                Some(path) => {
                    let file = std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    let mut writer = std::io::BufWriter::new(file);
                    let n = crate::audit::log::export(&store, &mut writer).await?;
                    std::io::Write::flush(&mut writer)
                        .with_context(|| format!("writing {}", path.display()))?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    crate::audit::log::export(&store, &mut lock).await?
                }
            };
            if let Some(path) = output {
                eprintln!("Wrote {written} audit entries to {}.", path.display());
            }
            Outcome::Success
        }
    };
    store.close().await;
    Ok(outcome)
}
