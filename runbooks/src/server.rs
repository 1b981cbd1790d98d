//! The acknowledge/resolve endpoint behind `ztlake serve` (stage 5, lifecycle), on axum.
//!
//! `GET /ack?t=TOKEN` and `GET /resolve?t=TOKEN` only show a confirmation page with a form;
//! nothing is recorded until the form is submitted (`POST` of the same path), so mail scanners
//! and link prefetchers that open every link cannot acknowledge an alert. The `POST` verifies
//! the token again (signature, expiry, that its action is the path's) and records the step with
//! the token's actor and the current time — through the [`Dispatcher`] when one runs in the
//! same process (escalation stops at once), else straight through the [`LifecycleSink`].
//! Tampered or expired links get `403`. Pages escape every value and forbid framing, scripts
//! and referrers (the token is in the URL).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::clock::{Clock, rfc3339};
use crate::dispatcher::Dispatcher;
use crate::error::{Error, Result};
use crate::lifecycle::{AlertStatus, LifecycleSink, LifecycleStep};
use crate::links::{LinkAction, LinkClaims, LinkSigner};
use crate::notify::message::html_escape;

/// Longest note accepted with a resolution, in characters.
const MAX_NOTE: usize = 2000;

/// What the endpoint needs.
#[derive(Clone)]
pub struct ServerState {
    /// Verifies the links.
    pub signer: LinkSigner,
    /// Records the steps (and answers whether an alert is already acknowledged).
    pub sink: Arc<dyn LifecycleSink>,
    /// The time of the steps and of expiry checks.
    pub clock: Arc<dyn Clock>,
    /// The dispatcher of this process, if any: steps go through it so escalation stops.
    pub dispatcher: Option<Dispatcher>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState").field("signer", &self.signer).finish_non_exhaustive()
    }
}

/// The routes: `/ack`, `/resolve` (GET: confirmation page; POST: record) and `/healthz`.
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/ack", get(confirm_ack).post(act_ack))
        .route("/resolve", get(confirm_resolve).post(act_resolve))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Arc::new(state))
}

/// Serve `state` on `listener` until `shutdown` completes.
///
/// # Errors
/// [`Error::Sink`] when the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ServerState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::Sink(format!("HTTP server: {e}")))
}

fn page(status: StatusCode, title: &str, body_html: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n<body style=\"font-family:sans-serif;max-width:40em;margin:2em auto\">\n<h1>{t}</h1>\n{body_html}\n</body></html>\n",
        t = html_escape(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    r
}

fn rejected(e: &Error) -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Link not valid",
        &format!(
            "<p>This link cannot be used: {}.</p><p>Use the newest message about the alert, or <code>ztlake alerts ack ID</code>.</p>",
            html_escape(&e.to_string())
        ),
    )
}

fn verify(state: &ServerState, action: LinkAction, token: Option<&String>) -> Result<LinkClaims> {
    let token = token.ok_or_else(|| Error::Link("no token".into()))?;
    let claims = state.signer.verify(token, state.clock.now())?;
    if claims.action != action {
        return Err(Error::Link(format!("this link is for /{}", claims.action.path())));
    }
    Ok(claims)
}

fn verb(action: LinkAction) -> (&'static str, &'static str) {
    match action {
        LinkAction::Acknowledge => ("Acknowledge", "acknowledged"),
        LinkAction::Resolve => ("Resolve", "resolved"),
    }
}

fn confirm(state: &ServerState, action: LinkAction, q: &HashMap<String, String>) -> Response {
    let claims = match verify(state, action, q.get("t")) {
        Ok(c) => c,
        Err(e) => return rejected(&e),
    };
    let (imperative, _) = verb(action);
    let token = q.get("t").map(String::as_str).unwrap_or_default();
    let note = match action {
        LinkAction::Resolve => {
            "<p><label>Note (optional)<br><textarea name=\"note\" rows=\"4\" cols=\"60\" maxlength=\"2000\"></textarea></label></p>"
        }
        LinkAction::Acknowledge => "",
    };
    page(
        StatusCode::OK,
        &format!("{imperative} alert {}?", claims.alert_id),
        &format!(
            "<p>Alert <code>{id}</code>, as <b>{actor}</b>. The link is valid until {exp}.</p>\n<form method=\"post\" action=\"/{path}\">\n<input type=\"hidden\" name=\"t\" value=\"{token}\">\n{note}<p><button type=\"submit\">{imperative}</button></p>\n</form>",
            id = html_escape(&claims.alert_id),
            actor = html_escape(&claims.actor),
            exp = rfc3339(claims.expires.saturating_mul(1_000_000)),
            path = action.path(),
            token = html_escape(token),
        ),
    )
}

async fn act(state: &ServerState, action: LinkAction, form: &HashMap<String, String>) -> Response {
    let claims = match verify(state, action, form.get("t")) {
        Ok(c) => c,
        Err(e) => return rejected(&e),
    };
    let (_, done) = verb(action);
    let id = html_escape(&claims.alert_id);
    // A second click (or a second recipient) does not record the step twice.
    let status = state
        .sink
        .statuses(std::slice::from_ref(&claims.alert_id))
        .await
        .ok()
        .and_then(|m| m.get(&claims.alert_id).copied());
    let already = match (action, status) {
        (_, Some(AlertStatus::Resolved)) => Some("resolved"),
        (LinkAction::Acknowledge, Some(AlertStatus::Acknowledged)) => Some("acknowledged"),
        _ => None,
    };
    if let Some(s) = already {
        return page(
            StatusCode::OK,
            &format!("Already {s}"),
            &format!("<p>Alert <code>{id}</code> is already {s}; nothing was changed.</p>"),
        );
    }
    let note = form.get("note").map(|n| n.trim()).filter(|n| !n.is_empty()).map(|n| {
        n.chars().filter(|c| !c.is_control() || *c == '\n').take(MAX_NOTE).collect::<String>()
    });
    let recorded = match &state.dispatcher {
        Some(d) => d.record_action(&claims.alert_id, action, &claims.actor, note).await,
        None => {
            let step = LifecycleStep::by_actor(
                &claims.alert_id,
                action.step(),
                &claims.actor,
                note,
                state.clock.now(),
            );
            state.sink.record(std::slice::from_ref(&step)).await.map(|()| (step, true))
        }
    };
    match recorded {
        Ok((step, true)) => page(
            StatusCode::OK,
            &format!("Alert {done}"),
            &format!(
                "<p>Alert <code>{id}</code> {done} by <b>{}</b> at {}.</p>",
                html_escape(&claims.actor),
                rfc3339(step.time)
            ),
        ),
        Ok((step, false)) => page(
            StatusCode::ACCEPTED,
            &format!("Alert {done}"),
            &format!(
                "<p>Alert <code>{id}</code> {done} by <b>{}</b> at {}; the lake is not reachable right now, the step is kept and recorded as soon as it is.</p>",
                html_escape(&claims.actor),
                rfc3339(step.time)
            ),
        ),
        Err(e) => page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not recorded",
            &format!(
                "<p>The step could not be recorded: {}. Try again.</p>",
                html_escape(&e.to_string())
            ),
        ),
    }
}

async fn confirm_ack(
    State(s): State<Arc<ServerState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    confirm(&s, LinkAction::Acknowledge, &q)
}

async fn confirm_resolve(
    State(s): State<Arc<ServerState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    confirm(&s, LinkAction::Resolve, &q)
}

async fn act_ack(
    State(s): State<Arc<ServerState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    act(&s, LinkAction::Acknowledge, &f).await
}

async fn act_resolve(
    State(s): State<Arc<ServerState>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    act(&s, LinkAction::Resolve, &f).await
}
