//! `provost console link`: a one-time sign-in link to the web console for an admin, so the
//! first admin gets in before any org is connected or any role is configured.

use clap::Subcommand;

use super::open_store;
use crate::config::Config;
use crate::console::sign_in::{make_link, LINK_MINUTES};

#[derive(Debug, Subcommand)]
pub enum ConsoleCommand {
    /// Print a one-time link that signs its opener in to the console as an admin.
    Link {
        /// Who the link is for: the actor (`link:NAME`) in the audit log.
        #[arg(long)]
        name: String,
        /// How long the link works, in minutes (1 to 1440).
        #[arg(long, default_value_t = LINK_MINUTES)]
        minutes: u32,
    },
}

pub(super) async fn run(command: ConsoleCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        ConsoleCommand::Link { name, minutes } => {
            let name = name.trim().to_owned();
            if name.is_empty()
                || name.len() > 100
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
            {
                anyhow::bail!(
                    "--name must be 1 to 100 letters, digits, '.', '-', '_' or '@' (it names the admin in the audit log)"
                );
            }
            if !(1..=1440).contains(&minutes) {
                anyhow::bail!("--minutes must be 1 to 1440");
            }
            let store = open_store(config).await?;
            let path = make_link(store.as_ref(), &name, minutes).await;
            store.close().await;
            let path = path?;
            println!("{}{path}", config.server.public_url());
            eprintln!(
                "Open it within {minutes} minutes; it signs in once, as admin `{name}`. Set server.public_url if the console is reached at another address."
            );
            Ok(())
        }
    }
}
