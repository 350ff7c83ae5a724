//! `provost webhook status|dead-letters|replay`.

use clap::Subcommand;
use serde_json::json;

use super::{open_store, Outcome};
use crate::config::{Config, WebhookConfig};

#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Each configured webhook: how far it was told, how far behind it is, its failure.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Notifications given up on, newest first.
    DeadLetters {
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Send a webhook every notification again from audit entry SEQ on (a dead letter's
    /// `seq`, or where a receiver lost data); receivers drop repeats by the event id.
    Replay {
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "SEQ")]
        from: i64,
        #[arg(long)]
        json: bool,
    },
}

impl WebhookCommand {
    /// The webhook the command names (`status` names none).
    pub fn webhook(&self) -> Option<&str> {
        match self {
            WebhookCommand::DeadLetters { name, .. } | WebhookCommand::Replay { name, .. } => {
                Some(name)
            }
            _ => None,
        }
    }
}

pub async fn run(command: WebhookCommand, config: &Config) -> anyhow::Result<Outcome> {
    let store = open_store(config).await?;
    let hook = |name: &str| -> anyhow::Result<&WebhookConfig> {
        config.webhook(name).map_err(anyhow::Error::msg)
    };
    match command {
        WebhookCommand::Status { json } => {
            let (head, _) = store.audit_head().await?;
            let cursors = store.webhook_cursors().await?;
            if config.webhooks.is_empty() && !json {
                println!("No webhooks are configured (add a [[webhooks]] entry).");
            }
            for hook in &config.webhooks {
                let cursor = cursors.iter().find(|c| c.name == hook.name);
                // Dead letters still waiting for a replay.
                let dead = store.waiting_dead_letters(&hook.name).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string(&json!({
                            "name": hook.name,
                            "url": redacted(&hook.url),
                            "audit_head": head,
                            "behind": cursor.map(|c| head - c.after_seq),
                            "cursor": cursor,
                            "dead_letters": dead,
                        }))?
                    );
                    continue;
                }
                println!("{} -> {}", hook.name, redacted(&hook.url));
                match cursor {
                    None => println!(
                        "  not started yet (`provost serve` starts it at the audit log's head)"
                    ),
                    Some(c) => {
                        println!(
                            "  told up to audit entry {} of {} ({} behind), {} delivered, last at {}",
                            c.after_seq,
                            head,
                            head - c.after_seq,
                            c.delivered,
                            crate::util::times::rfc3339_or_dash(c.last_delivered_at)
                        );
                        if let Some(error) = &c.last_error {
                            println!(
                                "  failing since {} after {} attempts, next at {}: {error}",
                                crate::util::times::rfc3339_or_dash(c.failing_since),
                                c.attempts,
                                crate::util::times::rfc3339_or_dash(c.next_attempt_at)
                            );
                        }
                    }
                }
                if dead > 0 {
                    println!(
                        "  {dead} dead letters: provost webhook dead-letters --name {}",
                        hook.name
                    );
                }
            }
        }
        WebhookCommand::DeadLetters { name, limit, json } => {
            hook(&name)?;
            let letters = store.webhook_dead_letters(&name, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&letters)?);
            } else if letters.is_empty() {
                println!("No dead letters for `{name}`.");
            } else {
                println!(
                    "{:<8} {:<32} {:<9} {:<31} {:<31} LAST ERROR",
                    "SEQ", "EVENT", "ATTEMPTS", "GIVEN UP AT", "REPLAYED AT"
                );
                for letter in letters {
                    println!(
                        "{:<8} {:<32} {:<9} {:<31} {:<31} {}",
                        letter.seq,
                        letter.event,
                        letter.attempts,
                        crate::util::times::rfc3339_or_dash(Some(letter.failed_at)),
                        crate::util::times::rfc3339_or_dash(letter.replayed_at),
                        letter.last_error
                    );
                }
                println!("Send them again with: provost webhook replay --name {name} --from SEQ");
            }
        }
        WebhookCommand::Replay { name, from, json } => {
            hook(&name)?;
            let (head, _) = store.audit_head().await?;
            if from < 1 || from > head {
                anyhow::bail!(
                    "--from {from} is not an audit entry: the log holds entries 1 to {head}"
                );
            }
            store.ensure_webhook(&name, from - 1).await?;
            let replayed = store.rewind_webhook(&name, from - 1).await?.unwrap_or(0);
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&json!({
                        "name": name,
                        "from": from,
                        "to": head,
                        "dead_letters_replayed": replayed,
                    }))?
                );
            } else {
                println!(
                    "`{name}` will be sent the notifications of entries {from} to {head} again by `provost serve`; {replayed} dead letter(s) among them are marked replayed."
                );
            }
        }
    }
    store.close().await;
    Ok(Outcome::Success)
}

/// The URL without its query and credentials, which may carry the receiver's token.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => "[unparseable URL]".to_owned(),
    }
}
