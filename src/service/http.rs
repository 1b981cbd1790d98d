//! `/healthz` and `/metrics` over HTTP/1.1 on a loopback port by default.
//!
//! A deliberately tiny server (tokio only): it reads at most one request head of 8 KiB with a
//! timeout, answers `GET /healthz` (200 `ok` while every source loop runs, 503 otherwise) and
//! `GET /metrics` (Prometheus text format 0.0.4), and closes the connection.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::metrics::Metrics;

/// Bind `listen` and serve until `shutdown` turns true. Returns the bound address.
pub(crate) async fn serve(
    listen: &str,
    metrics: Arc<Metrics>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("http.listen: binding {listen}"))?;
    let addr = listener.local_addr().context("http: local address")?;
    tracing::info!(%addr, "serving /healthz and /metrics");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let metrics = metrics.clone();
                        tokio::spawn(async move {
                            if let Err(e) = answer(stream, &metrics).await {
                                tracing::debug!(error = %e, "http request failed");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "http accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    });
    Ok(addr)
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) -> Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        std::io::Result::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.context("request timeout")??;
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split('?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render())
        }
        ("GET", "/healthz") if metrics.all_sources_up() => {
            ("200 OK", "text/plain; charset=utf-8", "ok\n".to_owned())
        }
        ("GET", "/healthz") => (
            "503 Service Unavailable",
            "text/plain; charset=utf-8",
            "a source loop stopped\n".to_owned(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain; charset=utf-8", "not found\n".to_owned()),
        _ => ("405 Method Not Allowed", "text/plain; charset=utf-8", "GET only\n".to_owned()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}
