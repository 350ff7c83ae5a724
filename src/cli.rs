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
    Sync(SyncArgs),
    /// Try Provost with nothing but the checkout: an emulated org, a full sync, the API.
    Demo(crate::demo::DemoArgs),
    /// Run the built-in Salesforce emulator (for tests, scripts and trying Provost out).
    Emulator(crate::emulator::EmulatorArgs),
    /// Create, list and revoke the bearer tokens of the HTTP API.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Check or export the hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Reports for auditors, as CSV, JSON or JSON lines with a manifest; and their check.
    Report {
        #[command(subcommand)]
        command: crate::reports::cli::ReportCommand,
    },
    /// Webhook delivery: status, dead letters, replay.
    Webhook {
        #[command(subcommand)]
        command: crate::webhooks::cli::WebhookCommand,
    },
    /// Print the OpenAPI 3.1 description of the HTTP API (also served at /openapi.json).
    Openapi,
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
pub enum TokenCommand {
    /// Create a token and print it (once: only its hash is stored).
    Create {
        /// A unique name; it is the actor in the audit log of what the token does.
        #[arg(long)]
        name: String,
        /// Comma-separated: scim:read, scim:write, requests:write, requests:approve,
        /// reports:read, admin.
        #[arg(long)]
        scopes: String,
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
    },
}

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
        // The reader of standard output went away (`provost report ... | head`): what it read
        // was written whole; nothing failed that it cares about.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "command failed");
            eprintln!("provost: {err:#}");
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
            command: ConfigCommand::Check,
        } => {
            print!("{}", config.to_redacted_toml());
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
        Command::Serve => serve(config).await?,
        Command::Token { command } => token(command, &config).await?,
        Command::Audit { command } => return audit(command, &config).await,
        Command::Report { command } => return crate::reports::cli::run(command, &config).await,
        Command::Webhook { command } => return crate::webhooks::cli::run(command, &config).await,
        Command::Sync(args) => return crate::sync::cli::run(args, config).await,
        Command::Demo(args) => return crate::demo::run(args).await,
        Command::Emulator(args) => crate::emulator::run(args).await?,
        Command::Connect { org, port, replace } => {
            let org = config.org(&org).map_err(anyhow::Error::msg)?;
            let store = open_store(&config).await?;
            let secrets = crate::secrets::SecretBox::load(&config.secrets.key_file)?;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("listening for the callback on 127.0.0.1:{port} (choose another with --port)"))?;
            let redirect_uri = format!("http://{}/OauthRedirect", listener.local_addr()?);
            let start = crate::connect::Start {
                started_by: "cli".to_owned(),
                replace,
            };
            let url = crate::connect::begin(&store, &secrets, org, &redirect_uri, &start).await?;
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

async fn token(command: TokenCommand, config: &Config) -> anyhow::Result<()> {
    use crate::tokens;
    let store = open_store(config).await?;
    match command {
        TokenCommand::Create { name, scopes } => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.len() > 100 {
                anyhow::bail!("--name must be 1 to 100 characters");
            }
            let parsed = tokens::parse_scopes(&scopes).map_err(anyhow::Error::msg)?;
            let scopes: Vec<String> = parsed.iter().map(|s| s.as_str().to_owned()).collect();
            let token = tokens::generate();
            match store
                .create_token(&name, &tokens::hash(&token), &scopes)
                .await
            {
                Ok(_) => {}
                Err(store::StoreError::Duplicate(message)) => anyhow::bail!(message),
                Err(err) => return Err(err.into()),
            }
            eprintln!(
                "Token `{name}` ({}). It is shown only this once:",
                scopes.join(", ")
            );
            println!("{token}");
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
                        crate::times::rfc3339_or_dash(token.last_used_at),
                        crate::times::rfc3339_or_dash(token.revoked_at)
                    );
                }
            }
        }
        TokenCommand::Revoke { name } => {
            if !store.revoke_token(&name).await? {
                anyhow::bail!("no active token is named `{name}` (provost token list shows them)");
            }
            println!("Token `{name}` revoked.");
        }
    }
    store.close().await;
    Ok(())
}

async fn audit(command: AuditCommand, config: &Config) -> anyhow::Result<Outcome> {
    let store = open_store(config).await?;
    let outcome = match command {
        AuditCommand::Verify { json } => {
            let verification = crate::audit::verify(&store).await?;
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
                    let n = crate::audit::export(&store, &mut writer).await?;
                    std::io::Write::flush(&mut writer)
                        .with_context(|| format!("writing {}", path.display()))?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    crate::audit::export(&store, &mut lock).await?
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
    // Before the address is announced: whoever learns it may send SIGTERM at once.
    let shutdown = http::shutdown_signal();
    tracing::info!(%address, backend = store.backend().name(), "provost is listening");
    if config.server.public_url.is_none() && !config.server.listen.ip().is_loopback() {
        tracing::warn!(
            public_url = %config.server.public_url(),
            "server.public_url is not set: SCIM locations, $ref URLs and the OAuth callback use the listen address, which clients may not reach; set it to the URL they use"
        );
    }
    let secrets = crate::secrets::SecretBox::load(&config.secrets.key_file)
        .context("loading the secret key that seals stored tokens")?;
    let config = Arc::new(config);
    let mut tasks = crate::sync::schedule::start(config.clone(), store.clone());
    let work = Arc::new(tokio::sync::Notify::new());
    if config.provisioning.executor {
        let executor = Arc::new(crate::provisioning::executor::Executor::new(
            config.clone(),
            store.clone(),
            crate::sync::holder_name(),
        ));
        tasks.push(tokio::spawn(executor.run(work.clone())));
    }
    if !config.webhooks.is_empty() {
        let deliverer = Arc::new(crate::webhooks::deliverer::Deliverer::new(
            config.clone(),
            store.clone(),
            crate::sync::holder_name(),
        )?);
        tasks.push(tokio::spawn(deliverer.run()));
    }
    let state = AppState {
        store: store.clone(),
        config,
        secrets: Arc::new(secrets),
        work,
    };
    let served = http::serve(listener, state, shutdown).await;
    for task in tasks {
        task.abort();
    }
    served.context("serving HTTP")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
