//! The `provost` command line: parses arguments, loads the configuration, dispatches to one
//! module per command. Commands print for people (or JSON with `--json`); the work itself is
//! done by the domain modules they call.
//!
//! Exit status: 0 on success, 1 when the command failed, 2 when the command line or the
//! configuration is wrong (nothing was touched).

mod audit;
mod connect;
mod console;
pub mod demo;
pub mod emulator;
pub mod preflight;
mod report;
mod review;
mod serve;
pub mod sync;
mod token;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::http;
use crate::store;

#[derive(Debug, Parser)]
#[command(
    name = "provost",
    version,
    about = "Identity governance for Salesforce orgs"
)]
pub struct Cli {
    /// Configuration file (TOML). Without it, ./provost.toml is read if it exists.
    #[arg(long, global = true, env = "PROVOST_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Log line format; overrides `log.format`.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations that have not been applied yet.
    Migrate,
    /// Serve the HTTP API until SIGINT or SIGTERM.
    Serve,
    /// Connect an org through the OAuth web server flow, from a terminal: prints the URL to
    /// open, receives Salesforce's answer on a local port, stores the refresh token sealed.
    Connect {
        /// The org's name in the configuration (auth.method = "web_server").
        #[arg(long)]
        org: String,
        /// Local port for the callback; the connected app's callback URL must be
        /// http://127.0.0.1:PORT/OauthRedirect. 0 picks a free port.
        #[arg(long, default_value_t = 1717)]
        port: u16,
        /// Let the new connection replace a working one, or one to another Salesforce org
        /// (without it, such a connection is refused and the stored one kept).
        #[arg(long)]
        replace: bool,
    },
    /// Check that Provost can work with an org as its connecting user, and what is missing.
    Preflight {
        /// The org's name in the configuration.
        #[arg(long)]
        org: String,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Sync orgs into the store (incremental unless --full), or show their sync history.
    Sync(sync::SyncArgs),
    /// Try Provost with nothing but the checkout: an emulated org, a full sync, the API.
    Demo(demo::DemoArgs),
    /// Run the built-in Salesforce emulator (for tests, scripts and trying Provost out).
    Emulator(emulator::EmulatorArgs),
    /// Create, list and revoke the bearer tokens of the HTTP API.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// The web console: one-time sign-in links for admins.
    Console {
        #[command(subcommand)]
        command: console::ConsoleCommand,
    },
    /// Check or export the hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Reports for auditors, as CSV, JSON or JSON lines with a manifest; and their check.
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// Access reviews: define, start, list, show, close, cancel and export campaigns.
    Review {
        #[command(subcommand)]
        command: review::ReviewCommand,
    },
    /// Webhook delivery: status, dead letters, replay.
    Webhook {
        #[command(subcommand)]
        command: webhook::WebhookCommand,
    },
    /// Print the OpenAPI 3.1 description of the HTTP API (also served at /openapi.json).
    Openapi,
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values, secrets redacted.
    Check {
        /// Print the effective configuration as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// The process entry point: `main` only calls this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("provost: {err}");
            return ExitCode::from(2);
        }
    };
    if let Some(format) = cli.log_format {
        config.log.format = format;
    }
    // Kept to the end: dropping it sends the traces not yet exported.
    let _telemetry = match crate::telemetry::init(&config.log, &config.traces) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("provost: {}", crate::util::error_line(err.as_ref()));
            return ExitCode::from(2);
        }
    };
    let log_format = config.log.format;

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("provost: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // An org the configuration does not name is a wrong command line: exit 2, whatever the
    // command.
    let named_org = match &cli.command {
        Command::Preflight { org, .. } | Command::Connect { org, .. } => Some(org.as_str()),
        Command::Report { command } => command.org(),
        Command::Review { command } => Some(command.org()),
        _ => None,
    };
    if let Some(Err(message)) = named_org.map(|name| config.org(name)) {
        eprintln!("provost: {message}");
        return ExitCode::from(2);
    }
    if let Command::Webhook { command } = &cli.command {
        if let Some(Err(message)) = command.webhook().map(|name| config.webhook(name)) {
            eprintln!("provost: {message}");
            return ExitCode::from(2);
        }
    }
    if let Command::Sync(sync::SyncArgs { org, command, .. }) = &cli.command {
        let named = match command {
            Some(sync::SyncCommand::Status { org, .. }) => org,
            None => org,
        };
        if let Some(Err(message)) = named.as_deref().map(|name| config.org(name)) {
            eprintln!("provost: {message}");
            return ExitCode::from(2);
        }
        if named.is_none() && config.orgs.is_empty() {
            eprintln!("provost: no org is configured: add an [[orgs]] entry to the configuration (see the README)");
            return ExitCode::from(2);
        }
    }
    match runtime.block_on(run(cli.command, config)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::ChecksFailed) => ExitCode::FAILURE,
        // The reader of standard output went away (`provost report ... | head`): what it read
        // was written whole; nothing failed that it cares about.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            // Once: as a JSON log line for collectors, or as one line for a person.
            let message = crate::util::error_line(err.as_ref());
            match log_format {
                LogFormat::Json => tracing::error!(error = %message, "command failed"),
                LogFormat::Pretty => eprintln!("provost: {message}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Whether `err` comes from writing to a closed pipe.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// How a command that ran ended.
pub enum Outcome {
    Success,
    /// It ran, and what it checked failed (exit status 1).
    ChecksFailed,
}

async fn run(command: Command, config: Config) -> anyhow::Result<Outcome> {
    match command {
        Command::Config {
            command: ConfigCommand::Check { json },
        } => {
            let text = config.to_redacted_toml();
            if json {
                let value: toml::Value =
                    toml::from_str(&text).context("reading back the effective configuration")?;
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{text}");
            }
        }
        Command::Openapi => {
            let document = http::openapi_document(&config);
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &document)?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close().await;
            tracing::info!(database = %config.database.url, "migrations applied");
        }
        Command::Serve => serve::run(config).await?,
        Command::Token { command } => token::run(command, &config).await?,
        Command::Console { command } => console::run(command, &config).await?,
        Command::Audit { command } => return audit::run(command, &config).await,
        Command::Report { command } => return report::run(command, &config).await,
        Command::Review { command } => return review::run(command, &config).await,
        Command::Webhook { command } => return webhook::run(command, &config).await,
        Command::Sync(args) => return sync::run(args, config).await,
        Command::Demo(args) => return demo::run(args).await,
        Command::Emulator(args) => emulator::run(args).await?,
        Command::Connect { org, port, replace } => {
            return connect::run(&config, &org, port, replace).await
        }
        Command::Preflight { org, json } => return preflight::run(&config, &org, json).await,
    }
    Ok(Outcome::Success)
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn store::Store>> {
    let store = store::open(&config.database)
        .await
        .with_context(|| format!("opening the database {}", config.database.url))?;
    store
        .migrate()
        .await
        .with_context(|| format!("migrating the database {}", config.database.url))?;
    Ok(store)
}
