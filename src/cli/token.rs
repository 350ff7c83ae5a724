//! `provost token create|list|revoke`: the bearer tokens of the HTTP API.

use clap::Subcommand;

use super::open_store;
use crate::config::Config;
use crate::store;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: only its hash is stored).
    Create {
        /// A unique name; it is the actor in the audit log of what the token does.
        #[arg(long)]
        name: String,
        /// Comma-separated: scim:read, scim:write, requests:write, requests:approve,
        /// reports:read, reviews:admin, reviews:decide, metrics:read, admin.
        #[arg(long)]
        scopes: String,
        /// The person the token acts for: a Salesforce username or user id. Access-review
        /// items assigned to that person are decided with it (default: the token's name).
        #[arg(long)]
        subject: Option<String>,
        /// Print `{"name","scopes","token"}` as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (names, scopes, last use; never the tokens themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by name; it stops working at once.
    Revoke {
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(command: TokenCommand, config: &Config) -> anyhow::Result<()> {
    use crate::tokens;
    let store = open_store(config).await?;
    match command {
        TokenCommand::Create {
            name,
            scopes,
            subject,
            json,
        } => {
            let subject = subject.map(|s| s.trim().to_owned());
            if subject
                .as_deref()
                .is_some_and(|s| s.is_empty() || s.len() > 255)
            {
                anyhow::bail!(
                    "--subject must be 1 to 255 characters (a Salesforce username or user id)"
                );
            }
            let name = name.trim().to_owned();
            if name.is_empty() || name.len() > 100 {
                anyhow::bail!("--name must be 1 to 100 characters");
            }
            let parsed = tokens::parse_scopes(&scopes).map_err(anyhow::Error::msg)?;
            let scopes: Vec<String> = parsed.iter().map(|s| s.as_str().to_owned()).collect();
            let token = tokens::generate();
            match store
                .create_token_for(&name, &tokens::hash(&token), &scopes, subject.as_deref())
                .await
            {
                Ok(_) => {}
                Err(store::StoreError::Duplicate(message)) => anyhow::bail!(message),
                Err(err) => return Err(err.into()),
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "name": name, "scopes": scopes, "subject": subject, "token": token })
                );
            } else {
                eprintln!(
                    "Token `{name}` ({}). It is shown only this once:",
                    scopes.join(", ")
                );
                println!("{token}");
            }
        }
        TokenCommand::List { json } => {
            let listed = store.list_tokens().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else if listed.is_empty() {
                println!("No tokens. Create one with: provost token create --name NAME --scopes reports:read");
            } else {
                println!(
                    "{:<24} {:<44} {:<26} REVOKED",
                    "NAME", "SCOPES", "LAST USED"
                );
                for token in listed {
                    println!(
                        "{:<24} {:<44} {:<26} {}",
                        token.name,
                        token.scopes.join(","),
                        crate::util::times::rfc3339_or_dash(token.last_used_at),
                        crate::util::times::rfc3339_or_dash(token.revoked_at)
                    );
                }
            }
        }
        TokenCommand::Revoke { name, json } => {
            if !store.revoke_token(&name).await? {
                anyhow::bail!("no active token is named `{name}` (provost token list shows them)");
            }
            if json {
                println!("{}", serde_json::json!({ "name": name, "revoked": true }));
            } else {
                println!("Token `{name}` revoked.");
            }
        }
    }
    store.close().await;
    Ok(())
}
