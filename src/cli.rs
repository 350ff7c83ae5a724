//! The `provost` command line: parses arguments, loads the configuration, dispatches.
//!
//! Exit status: 0 on success, 1 when the command failed, 2 when the command line or the
//! configuration is wrong (nothing was touched).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, LogFormat};
use crate::http::{self, AppState};
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
    Sync(SyncArgs),
    /// Try Provost with nothing but the checkout: an emulated org, a full sync, the API.
    Demo(crate::demo::DemoArgs),
    /// Run the built-in Salesforce emulator (for tests, scripts and trying Provost out).
    Emulator(crate::emulator::EmulatorArgs),
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
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

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print the effective values, secrets redacted.
    Check,
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
    crate::telemetry::init(config.log.format, &config.log.filter);

    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("provost: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Preflight { org, .. } | Command::Connect { org, .. } = &cli.command {
        if let Err(message) = config.org(org) {
            eprintln!("provost: {message}");
            return ExitCode::from(2);
        }
    }
    if let Command::Sync(SyncArgs { org, command, .. }) = &cli.command {
        let named = match command {
            Some(SyncCommand::Status { org, .. }) => org,
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
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "command failed");
            eprintln!("provost: {err:#}");
            ExitCode::FAILURE
        }
    }
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
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_redacted_toml());
        }
        Command::Migrate => {
            let store = open_store(&config).await?;
            store.close().await;
            tracing::info!(database = %config.database.url, "migrations applied");
        }
        Command::Serve => serve(config).await?,
        Command::Sync(args) => return crate::sync::cli::run(args, config).await,
        Command::Demo(args) => return crate::demo::run(args).await,
        Command::Emulator(args) => crate::emulator::run(args).await?,
        Command::Connect { org, port } => {
            let org = config.org(&org).map_err(anyhow::Error::msg)?;
            let store = open_store(&config).await?;
            let secrets = crate::secrets::SecretBox::load(&config.secrets.key_file)?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("listening for the callback on 127.0.0.1:{port} (choose another with --port)"))?;
            let redirect_uri = format!("http://{}/OauthRedirect", listener.local_addr()?);
            let url = crate::connect::begin(&store, &secrets, org, &redirect_uri).await?;
            println!(
                "Open this URL in a browser to authorise Provost for org `{}`:\n{url}",
                org.name
            );
            println!("(The connected app's callback URL must be {redirect_uri}.)");
            let callback = crate::connect::await_browser_callback(
                listener,
                std::time::Duration::from_secs(600),
            )
            .await?;
            let connected =
                crate::connect::complete(&config, &store, &secrets, callback, &redirect_uri)
                    .await?;
            println!(
                "Connected org `{}` ({}).",
                connected.org, connected.instance_url
            );
            print!("{}", crate::preflight::render(org, &connected.preflight));
            store.close().await;
            if !connected.preflight.ok {
                return Ok(Outcome::ChecksFailed);
            }
        }
        Command::Preflight { org, json } => {
            let org = config.org(&org).map_err(anyhow::Error::msg)?;
            let store = open_store(&config).await?;
            let secrets = crate::preflight::secrets_for(&config, org)?;
            let report = crate::preflight::run(org, &store, secrets.as_ref()).await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", crate::preflight::render(org, &report));
            }
            if !report.ok {
                return Ok(Outcome::ChecksFailed);
            }
        }
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

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (set server.listen to a free address)",
                config.server.listen
            )
        })?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%address, backend = store.backend().name(), "provost is listening");
    let secrets = crate::secrets::SecretBox::load(&config.secrets.key_file)
        .context("loading the secret key that seals stored tokens")?;
    let config = Arc::new(config);
    let schedules = crate::sync::schedule::start(config.clone(), store.clone());
    let state = AppState {
        store: store.clone(),
        config,
        secrets: Arc::new(secrets),
    };
    let served = http::serve(listener, state, http::shutdown_signal()).await;
    for task in schedules {
        task.abort();
    }
    served.context("serving HTTP")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
