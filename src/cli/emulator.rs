//! `provost emulator`: the Salesforce emulator as a standalone server for scripts and other
//! clients. Once it listens it prints one JSON line with everything needed to connect.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use provost_salesforce_emulator::{Emulator, EmulatorConfig, Faults, Preset};

#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Size of the generated org: small (~50 users), medium (~10,000), large (~100,000) or
    /// xlarge (~200,000).
    #[arg(long, default_value = "small", value_parser = ["small", "medium", "large", "xlarge"])]
    pub preset: String,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Seed of the generated org: the same seed gives the same org.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Name of the generated org (also its users' email domain).
    #[arg(long, default_value = "Acme")]
    pub org_name: String,
    /// Daily API request allocation.
    #[arg(long, default_value_t = 100_000)]
    pub daily_limit: u64,
    /// Seconds an access token lives.
    #[arg(long, default_value_t = 7200)]
    pub session_seconds: u64,
    /// Issue a new refresh token on each refresh and revoke the old one.
    #[arg(long)]
    pub rotate_refresh_tokens: bool,
    /// Behave as login.salesforce.com rather than a My Domain (client credentials refused).
    #[arg(long)]
    pub login_host: bool,
    /// The connected app's private key (PEM) for the JWT bearer flow: kept and reused when the
    /// file exists, written when it does not. Default: provost-emulator-key.pem in the
    /// temporary directory, so a restarted emulator keeps its key and configurations stay
    /// valid.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Faults to start with, as JSON (the same document the admin path's /faults takes).
    #[arg(long)]
    pub faults: Option<String>,
    /// Load the org from this fixture file (JSON) instead of generating one.
    #[arg(long, conflicts_with_all = ["preset", "seed"])]
    pub fixture: Option<PathBuf>,
}

pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let faults: Faults = match &args.faults {
        Some(text) => {
            serde_json::from_str(text).context("--faults is not a valid faults document")?
        }
        None => Faults::default(),
    };
    faults.validate().map_err(anyhow::Error::msg)?;
    let key_file = args
        .key_file
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("provost-emulator-key.pem"));
    let kept_key = match std::fs::read_to_string(&key_file) {
        Ok(pem) => Some(
            provost_salesforce_emulator::server::key_pair_from_pem(&pem)
                .map_err(anyhow::Error::msg)
                .with_context(|| {
                    format!(
                        "the key file {} holds no usable key: delete it (a new key is made) or name another with --key-file",
                        key_file.display()
                    )
                })?,
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            return Err(err)
                .with_context(|| format!("reading the key file {}", key_file.display()))
        }
    };
    let write_key = kept_key.is_none();
    let config = EmulatorConfig {
        app_key: kept_key,
        org_name: args.org_name.clone(),
        preset: Preset::by_name(&args.preset).expect("clap checked the preset"),
        seed: args.seed,
        daily_limit: args.daily_limit,
        session_lifetime: std::time::Duration::from_secs(args.session_seconds),
        rotate_refresh_tokens: args.rotate_refresh_tokens,
        my_domain: !args.login_host,
        faults,
        fixture: match &args.fixture {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the fixture {}", path.display()))?
                    .into(),
            ),
            None => None,
        },
        ..EmulatorConfig::default()
    };
    let started = std::time::Instant::now();
    let emulator = Emulator::from_config(config).context("loading the fixture")?;
    tracing::info!(preset = %args.preset, elapsed_ms = started.elapsed().as_millis() as u64, "org generated");
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    *emulator.base_url.write() = format!("http://{}", listener.local_addr()?);

    if write_key {
        write_private_key(&key_file, &emulator.app.private_key_pem)?;
    }
    let info = emulator.connection_info(Some(key_file.display().to_string()));
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &info)?;
    writeln!(stdout)?;
    stdout.flush()?;
    drop(stdout);

    let server = provost_salesforce_emulator::server::serve(emulator, listener);
    tokio::select! {
        result = server => result.context("serving the emulator")?,
        () = crate::http::shutdown_signal() => tracing::info!("emulator stopped"),
    }
    Ok(())
}

/// Writes the key readable by its owner only.
pub fn write_private_key(path: &Path, pem: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing the emulator's private key to {}", path.display()))?;
    file.write_all(pem.as_bytes())?;
    Ok(())
}
