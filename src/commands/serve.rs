//! `ztlake serve`: the endpoint behind the signed acknowledge/resolve links of on-call messages
//! (`GET` shows a confirmation page, `POST` records the step in `alert_events`), plus — unless
//! `--links-only` — the dispatcher's loop: due retries, escalations of unacknowledged alerts,
//! lifecycle steps recorded. Runs until SIGINT/SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use ztlake_runbooks::server::{ServerState, serve};
use ztlake_runbooks::{Clock, LifecycleSink, SystemClock};
use ztlake_storage::Lake;

use crate::cli::ServeArgs;
use crate::oncall::{LakeSink, catalog, dispatcher};

/// Serve until a signal arrives.
pub async fn run(lake: &Lake, args: ServeArgs, config: Option<&Path>) -> Result<ExitCode> {
    let d = dispatcher(lake, config, catalog(&args.runbooks))?;
    let listen = match args.listen {
        Some(a) => a,
        None => d.config().links.listen.parse().context("oncall.links.listen")?,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let local = listener.local_addr().context("listening address")?;
    println!("listening on http://{local} (links under {})", d.signer().base_url());
    let sink: Arc<dyn LifecycleSink> = Arc::new(LakeSink::new(lake.clone()));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state =
        ServerState { signer: d.signer().clone(), sink, clock, dispatcher: Some(d.clone()) };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(listener, state, wait(stop_rx.clone())));
    let delivery = (!args.links_only).then(|| {
        let d = d.clone();
        tokio::spawn(async move { d.run(wait(stop_rx)).await })
    });
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    server.await.context("link server task")??;
    if let Some(task) = delivery {
        task.await.context("delivery task")??;
    }
    Ok(ExitCode::SUCCESS)
}

/// Completes when the watch turns true (or its sender is gone).
async fn wait(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
