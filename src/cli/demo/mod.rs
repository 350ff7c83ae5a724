//! `provost demo`: everything on one machine with nothing but the checkout. Starts the
//! emulator in-process with a generated org, configures an org pointing at it (JWT bearer with
//! the emulator's connected-app key), runs the preflight and a full sync with its progress
//! bars, walks an access request through plan, approval, execution and the audit log
//! ([`provisioning`]), then serves Provost's API on localhost (with a sync every minute, so changes made
//! through the emulator's admin path show up) and prints how to query it.

mod provisioning;
mod reviews;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use provost_salesforce_emulator::schema::ObjectType;
use provost_salesforce_emulator::{server, Emulator, EmulatorConfig, Preset};

use super::{open_store, Outcome};
use crate::config::{AuthConfig, Config, DatabaseUrl, OrgConfig};
use crate::http::{self, AppState};
use crate::org::sync::{request_for, sync_org};
use crate::store::sync::{RunStatus, SyncMode};
use crate::sync::progress::{self, Bars};

/// The demo org's name in URLs and commands.
const ORG: &str = "demo";

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Size of the emulated org: small (~50 users), medium (~10,000) or large (~100,000).
    #[arg(long, default_value = "medium", value_parser = ["small", "medium", "large"])]
    pub preset: String,
    /// Where Provost's API listens once the sync is done.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the demo's database and keys, kept afterwards; a new temporary one,
    /// removed when the demo ends, when left out.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Stop after the sync instead of serving (for scripts and tests).
    #[arg(long)]
    pub no_serve: bool,
}

/// A directory the demo made for itself, removed when the demo ends (however it ends, short
/// of the process being killed).
struct Temporary(PathBuf);

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            if err.kind() != std::io::ErrorKind::NotFound {
                eprintln!(
                    "provost: could not remove the demo's temporary directory {}: {err}",
                    self.0.display()
                );
            }
        }
    }
}

pub async fn run(args: DemoArgs) -> anyhow::Result<Outcome> {
    let (data_dir, _removed_at_end) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("provost-demo-{}", std::process::id()));
            (dir.clone(), Some(Temporary(dir)))
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the demo directory {}", data_dir.display()))?;

    println!(
        "Generating a {} Salesforce org in the built-in emulator...",
        args.preset
    );
    let emulator = Emulator::new(EmulatorConfig {
        preset: Preset::by_name(&args.preset).expect("clap checked the preset"),
        ..EmulatorConfig::default()
    });
    let emulator_url = server::spawn(emulator.clone(), "127.0.0.1:0".parse()?)
        .await
        .context("starting the emulator on loopback")?;
    let key_file = data_dir.join("connected-app.pem");
    crate::cli::emulator::write_private_key(&key_file, &emulator.app.private_key_pem)?;

    let mut config = Config::default();
    config.server.listen = args.listen;
    config.database.url = DatabaseUrl::new(format!(
        "sqlite://{}",
        data_dir.join("provost.db").display()
    ));
    config.secrets.key_file = data_dir.join("provost.key");
    config.orgs = vec![OrgConfig {
        name: ORG.to_owned(),
        login_url: emulator_url.clone(),
        api_version: "62.0".to_owned(),
        exclude_portal_users: true,
        include_inactive_users: true,
        sync_access_permissions: true,
        batch_size: 2000,
        sync_interval_minutes: Some(1),
        api_budget_percent: 80,
        sync_concurrency: crate::sync::DEFAULT_CONCURRENCY as u8,
        auto_approve: Vec::new(),
        user_defaults: Default::default(),
        scim_max_changes: crate::config::default_scim_max_changes(),
        entitlement_owners: Default::default(),
        auth: AuthConfig::JwtBearer {
            client_id: emulator.app.client_id.clone(),
            username: emulator.integration_username(),
            private_key_file: key_file,
        },
    }];
    let org = config.orgs[0].clone();
    let store = open_store(&config).await?;

    let secrets = crate::org::preflight::secrets_for(&config, &org)?;
    let report = crate::org::preflight::run(&org, &store, secrets.as_ref()).await?;
    print!("{}", crate::cli::preflight::render(&org, &report));
    if !report.ok {
        store.close().await;
        return Ok(Outcome::ChecksFailed);
    }

    let request = request_for(&org, SyncMode::Full, "demo");
    let bars = Bars::new();
    let finished = sync_org(&config, &org, &store, &request, true, &bars).await?;
    drop(bars);
    print!("{}", progress::render(ORG, &finished.run, finished.elapsed));
    if finished.run.status != RunStatus::Succeeded {
        store.close().await;
        return Ok(Outcome::ChecksFailed);
    }
    let people = console_people(&store, &mut config, &emulator).await?;
    let config = Arc::new(config);
    provisioning::walk_through(&config, &org, &store).await?;
    let campaign = reviews::walk_through(&config, &org, &store).await?;
    if args.no_serve {
        store.close().await;
        match &args.data_dir {
            Some(dir) => println!("Data directory: {}", dir.display()),
            None => {
                println!("Done; the temporary data directory is removed (keep it with --data-dir).")
            }
        }
        return Ok(Outcome::Success);
    }

    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (pick a free address with --listen, e.g. 127.0.0.1:0)",
                config.server.listen
            )
        })?;
    let base = format!("http://{}", listener.local_addr()?);
    let secrets = crate::org::secrets::SecretBox::load(&config.secrets.key_file)?;
    let metrics = crate::metrics::Metrics::new();
    let work = Arc::new(tokio::sync::Notify::new());
    let tasks = super::serve::start_work(&config, &store, &metrics, &work)?;
    let token = provisioning::demo_token(&store).await?;
    let link = crate::console::sign_in::make_link(store.as_ref(), "demo-admin", 60).await?;
    let (approver, requester) = &people;
    let password = emulator.config.read().password.clone();
    let some_user = emulator
        .org
        .read()
        .table(ObjectType::User)
        .live
        .keys()
        .nth(7)
        .map(|id| id.as_str().to_owned())
        .unwrap_or_default();
    println!(
        "\nThe web console is at {base}/console. Sign in with Salesforce (the emulator's login page,\n\
         password `{password}`) as an approver, {approver}, or as an employee, {requester};\n\
         or open this one-time admin link (valid an hour): {base}{link}\n\
         \nProvost is serving the synced org on {base} (Ctrl-C stops it). Every API call needs a\n\
         token; this one (scope admin) is shown once:\n\
         \x20 export TOKEN={token}\n\
         Try:\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/orgs/{ORG}/sync-runs\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/orgs/{ORG}/changes?entity=account&limit=3'\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/orgs/{ORG}/access-requests?limit=5'\n\
         \x20 curl -s {base}/readyz\n\
         Reports for auditors (csv, json or ndjson; the manifest is in the headers):\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/orgs/{ORG}/reports/effective-permissions?permission=ModifyAllData' | head -3\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/orgs/{ORG}/reports/dormant?days=90&format=ndjson' | head -3\n\
         SCIM 2.0 (filters run in the database; writes go through the executor):\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/scim/v2/Users?filter=active%20eq%20false&count=2&attributes=userName'\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/scim/v2/Groups?count=1&excludedAttributes=members'\n\
         Request a change (a token cannot approve what it asked for: make a second one with\n\
         `provost token create --name approver --scopes requests:approve` against this data directory):\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"action\":\"freeze_user\",\"user\":\"{some_user}\",\"justification\":\"demo\"}}' {base}/api/v1/orgs/{ORG}/access-requests\n\
         Access reviews (the campaign above, its items and its evidence):\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" {base}/api/v1/orgs/{ORG}/reviews/campaigns\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/orgs/{ORG}/reviews/campaigns/{campaign}/report?format=csv' | head -3\n\
         Change something behind Provost's back; the next scheduled sync (every minute) records it:\n\
         \x20 curl -s -X PATCH -H 'content-type: application/json' -d '{{\"Title\":\"Chief Demo Officer\"}}' {emulator_url}/__emulator/records/User/{some_user}\n\
         \x20 curl -s -H \"Authorization: Bearer $TOKEN\" '{base}/api/v1/orgs/{ORG}/changes?object_id={some_user}'\n\
         Data directory: {}{}",
        data_dir.display(),
        if args.data_dir.is_none() {
            " (temporary: removed when the demo stops; keep it with --data-dir)"
        } else {
            ""
        }
    );
    let state = AppState {
        store: store.clone(),
        config,
        secrets: Arc::new(secrets),
        work,
        metrics,
    };
    let served = http::serve(listener, state, http::shutdown_signal()).await;
    for task in tasks {
        task.abort();
    }
    served.context("serving HTTP")?;
    store.close().await;
    Ok(Outcome::Success)
}

/// Two people of the demo org for the console: an approver (named in `[console] approvers`)
/// and an employee who asks for access, both active standard users who may log in. The
/// integration user is the console's admin.
async fn console_people(
    store: &Arc<dyn crate::store::Store>,
    config: &mut Config,
    emulator: &Emulator,
) -> anyhow::Result<(String, String)> {
    let record = store.ensure_org(ORG).await?;
    let integration = emulator.integration_username();
    let mut people = Vec::new();
    let mut after: Option<String> = None;
    while people.len() < 2 {
        let page = store
            .list_accounts(
                record.id,
                crate::store::Page {
                    after: after.as_deref(),
                    limit: 500,
                },
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        people.extend(
            page.into_iter()
                .filter(|a| {
                    a.active
                        && a.user_type.as_deref() == Some("Standard")
                        && a.attributes.get("IsFrozen") != Some(&serde_json::Value::Bool(true))
                        && !a.username.eq_ignore_ascii_case(&integration)
                })
                .map(|a| a.username),
        );
    }
    let [approver, requester, ..] = people.as_slice() else {
        anyhow::bail!("the demo org has fewer than two active standard users to sign in as");
    };
    config.console.admins.users = vec![integration];
    config.console.approvers.users = vec![approver.clone()];
    Ok((approver.clone(), requester.clone()))
}
