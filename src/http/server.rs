//! Serving the router on a listener, and stopping without leaving a request unanswered.
//!
//! On shutdown the listener closes at once (new connections are refused, so a load balancer
//! or client moves on to another replica). Connections already open are not cut: for a short
//! drain window every request that still arrives on one is answered, with `Connection: close`
//! so the client opens its next connection elsewhere. Then idle connections are closed and
//! requests in flight finish, until `server.shutdown_grace_seconds` ends and whatever is left
//! is dropped. (`axum::serve`'s graceful shutdown closes idle keep-alive connections at once,
//! and a request a client sent on one in that instant got no answer at all.)

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::AppState;

/// How long, at most, requests arriving on connections that were open when shutdown began
/// are still answered before idle connections are closed.
const DRAIN: Duration = Duration::from_secs(2);

/// Serves until `shutdown` resolves, then drains (see the module's documentation) for up to
/// `server.shutdown_grace_seconds`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(state.config.server.shutdown_grace_seconds);
    let draining = Arc::new(AtomicBool::new(false));
    let app = super::router(state).layer(axum::middleware::from_fn_with_state(
        draining.clone(),
        close_when_draining,
    ));
    let builder = Builder::new(TokioExecutor::new());
    let (close, closing) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let tcp = match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(err) => {
                        // Out of file descriptors and the like: wait, do not spin.
                        tracing::warn!(error = %err, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Answers go out as soon as they are written, never held back by Nagle's
                // algorithm until the client acknowledges an earlier segment.
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %err, "cannot set TCP_NODELAY on a connection");
                }
                let service = TowerToHyperService::new(app.clone());
                let builder = builder.clone();
                let mut closing = closing.clone();
                connections.spawn(async move {
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(err) = result {
                                tracing::debug!(error = %err, "connection ended with an error");
                            }
                        }
                        () = told_to_close(&mut closing) => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
            () = &mut shutdown => break,
            // Finished connections leave the set as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    draining.store(true, Ordering::SeqCst);
    tracing::info!(
        connections = connections.len(),
        "shutting down: no new connections; requests on open ones are answered with Connection: close"
    );
    let deadline = tokio::time::Instant::now() + grace;
    // Clients whose request was on its way get their answer, and their connection closes.
    if tokio::time::timeout(DRAIN.min(grace), all_closed(&mut connections))
        .await
        .is_ok()
    {
        return Ok(());
    }
    // Then idle connections close, and requests in flight finish within the grace period;
    // what is left when it ends is dropped with the set.
    let _ = close.send(true);
    if tokio::time::timeout_at(deadline, all_closed(&mut connections))
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = grace.as_secs(),
            "grace period over: dropping requests still in flight"
        );
    }
    Ok(())
}

/// Resolves once every connection of the set has ended.
async fn all_closed(connections: &mut JoinSet<()>) {
    while connections.join_next().await.is_some() {}
}

/// Resolves once `closing` says true (or its sender is gone).
async fn told_to_close(closing: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        let close = *closing.borrow_and_update();
        if close || closing.changed().await.is_err() {
            return;
        }
    }
}

/// While draining, answers tell HTTP/1 clients to close the connection (HTTP/2 has no such
/// header; its connections get a GOAWAY when closed).
async fn close_when_draining(
    axum::extract::State(draining): axum::extract::State<Arc<AtomicBool>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && draining.load(Ordering::SeqCst) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
