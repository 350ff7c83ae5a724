//! `provost serve`: the HTTP API, scheduled syncs, the executor and webhook delivery, until
//! SIGINT or SIGTERM.

use std::sync::Arc;

use anyhow::Context;

use super::open_store;
use crate::config::Config;
use crate::http::{self, AppState};

/// The work `serve` (and the demo) does beside answering HTTP: scheduled syncs, the executor
/// (woken by `work`), passes over access reviews and webhook delivery, counting into `metrics`. The tasks stop when their
/// handles are aborted.
pub(super) fn start_work(
    config: &Arc<Config>,
    store: &Arc<dyn crate::store::Store>,
    metrics: &Arc<crate::metrics::Metrics>,
    work: &Arc<tokio::sync::Notify>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = crate::sync::schedule::start(config.clone(), store.clone(), metrics.clone());
    if config.provisioning.executor {
        let executor = Arc::new(
            crate::provisioning::executor::Executor::new(
                config.clone(),
                store.clone(),
                crate::sync::holder_name(),
            )
            .with_metrics(metrics.clone()),
        );
        tasks.push(tokio::spawn(executor.run(work.clone())));
    }
    {
        // Access reviews: reminders, overdue notices, remediation left pending, recurring runs.
        let (config, store, work) = (config.clone(), store.clone(), work.clone());
        tasks.push(tokio::spawn(async move {
            let every =
                std::time::Duration::from_secs(u64::from(config.reviews.tick_seconds.max(1)));
            loop {
                let done =
                    crate::reviews::campaigns::tick(&store, &config, chrono::Utc::now()).await;
                for failure in &done.failures {
                    tracing::warn!(failure = %failure, "access-review pass");
                }
                if done.remediated > 0 || !done.started.is_empty() || !done.runs_made.is_empty() {
                    work.notify_one();
                }
                tokio::time::sleep(every).await;
            }
        }));
    }
    if !config.webhooks.is_empty() {
        let deliverer = Arc::new(crate::webhooks::deliverer::Deliverer::new(
            config.clone(),
            store.clone(),
            crate::sync::holder_name(),
        )?);
        tasks.push(tokio::spawn(deliverer.run()));
    }
    Ok(tasks)
}

pub(super) async fn run(config: Config) -> anyhow::Result<()> {
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
    let secrets = crate::org::secrets::SecretBox::load(&config.secrets.key_file)
        .context("loading the secret key that seals stored tokens")?;
    let metrics_listener = match config.server.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| {
                    format!(
                        "listening for metrics on {address} (set server.metrics_listen to a free address)"
                    )
                })?,
        ),
        None => None,
    };
    let config = Arc::new(config);
    let metrics = crate::metrics::Metrics::new();
    let work = Arc::new(tokio::sync::Notify::new());
    let mut tasks = start_work(&config, &store, &metrics, &work)?;
    let state = AppState {
        store: store.clone(),
        config,
        secrets: Arc::new(secrets),
        work,
        metrics,
    };
    if let Some(listener) = metrics_listener {
        let address = listener
            .local_addr()
            .context("reading the metrics address")?;
        tracing::info!(%address, "metrics are served without a token on this address");
        let router = http::metrics_router(state.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                tracing::error!(error = %err, "serving metrics failed");
            }
        }));
    }
    let served = http::serve(listener, state, shutdown).await;
    for task in tasks {
        task.abort();
    }
    served.context("serving HTTP")?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}
