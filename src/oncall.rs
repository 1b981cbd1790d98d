//! On-call delivery wired to the lake (stage 5, binary side): the `[oncall]` configuration
//! read from `--config`, the default outbox, the [`LakeSink`] that records lifecycle steps as
//! `alert_events` rows, and [`deliver_since`], which `ztlake detect` and `ztlake ingest
//! --detect` call after their alerts are written.
//!
//! Without a configuration file (or without an `[oncall]` section) every alert goes to its
//! runbook owner as an `.eml` file in the outbox: `<lake>/outbox/mail/` for a local lake,
//! `./ztlake-outbox/` otherwise. Nothing is sent anywhere unless `[oncall.smtp]` or webhooks
//! are configured.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use ztlake_detections::{Alert, AlertEvent};
use ztlake_runbooks::{
    AlertStatus, Catalog, Clock, Dispatcher, LifecycleSink, LifecycleStep, OncallConfig,
    SystemClock, TickReport,
};
use ztlake_storage::Lake;

use crate::alerts::{AlertFilter, alerts_updated_since, append_events, list_alerts, stored_alerts};

/// The outbox used when `oncall.outbox` is not configured: `<lake>/outbox` for a local lake,
/// `./ztlake-outbox` for a lake on object storage.
pub fn default_outbox(lake: &Lake) -> PathBuf {
    match lake.url().to_file_path() {
        Ok(dir) if lake.url().scheme() == "file" => dir.join("outbox"),
        _ => PathBuf::from("ztlake-outbox"),
    }
}

/// The `[oncall]` section of `config` (defaults when there is no file or no section), with the
/// default outbox of `lake` filled in.
///
/// # Errors
/// The file cannot be read, or the section is invalid (every problem, naming its key).
pub fn load_config(config: Option<&Path>, lake: &Lake) -> Result<OncallConfig> {
    let parsed = match config {
        None => OncallConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the configuration {}", path.display()))?;
            OncallConfig::from_toml(&text, Some(&path.display().to_string()))?
        }
    };
    Ok(parsed.with_default_outbox(default_outbox(lake)))
}

/// The runbook catalog for delivery: `dir`, or an empty catalog (messages then carry no
/// runbook text) when it cannot be loaded — with a warning.
pub fn catalog(dir: &Path) -> Catalog {
    match Catalog::load_dir(dir) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "runbook catalog not loaded; messages carry no runbook");
            Catalog::default()
        }
    }
}

/// A dispatcher over `lake` for the `[oncall]` section of `config`, on the system clock.
///
/// # Errors
/// As [`load_config`] and [`Dispatcher::new`] (a secret that cannot be read, an outbox that
/// cannot be created).
pub fn dispatcher(lake: &Lake, config: Option<&Path>, catalog: Catalog) -> Result<Dispatcher> {
    let oncall = load_config(config, lake)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sink: Arc<dyn LifecycleSink> = Arc::new(LakeSink::new(lake.clone()));
    Ok(Dispatcher::new(oncall, catalog, clock, sink)?)
}

/// A dispatcher over `lake` for an `[oncall]` table already parsed (the service keeps the
/// section as written; `None`: the defaults), on the system clock. `source_name` (the file) is
/// named in errors.
///
/// # Errors
/// As [`OncallConfig::from_table`] and [`Dispatcher::new`].
pub fn dispatcher_from_table(
    lake: &Lake,
    oncall: Option<toml::Table>,
    source_name: Option<&str>,
    catalog: Catalog,
) -> Result<Dispatcher> {
    let config = match oncall {
        Some(t) => OncallConfig::from_table(t, source_name)?,
        None => OncallConfig::default(),
    };
    let config = config.with_default_outbox(default_outbox(lake));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sink: Arc<dyn LifecycleSink> = Arc::new(LakeSink::new(lake.clone()));
    Ok(Dispatcher::new(config, catalog, clock, sink)?)
}

/// Records lifecycle steps as `alert_events` rows (idempotent by `event_id` = the step id)
/// and reads acknowledgement status back from them.
#[derive(Clone)]
pub struct LakeSink {
    lake: Lake,
}

impl std::fmt::Debug for LakeSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LakeSink").field("lake", &self.lake.url().as_str()).finish()
    }
}

impl LakeSink {
    /// A sink writing to `lake`.
    pub fn new(lake: Lake) -> LakeSink {
        LakeSink { lake }
    }
}

/// The `alert_events` row of `step`; `known` holds the stored alerts for steps that do not
/// carry their alert's provider, rule and severity.
pub fn event_of(step: &LifecycleStep, known: &HashMap<String, Alert>) -> AlertEvent {
    let alert = known.get(&step.alert_id);
    AlertEvent {
        time: step.time,
        provider: step
            .provider
            .clone()
            .or_else(|| alert.map(|a| a.provider.clone()))
            .unwrap_or_else(|| "multi".to_owned()),
        alert_id: step.alert_id.clone(),
        event: step.kind.as_str().to_owned(),
        rule_id: step.rule_id.clone().or_else(|| alert.map(|a| a.rule_id.clone())),
        severity: step.severity.clone().or_else(|| alert.map(|a| a.severity.to_string())),
        channel: step.channel.clone(),
        target: step.target.clone(),
        actor: step.actor.clone(),
        detail: step.detail.clone(),
        event_id: step.step_id.clone(),
    }
}

#[async_trait::async_trait]
impl LifecycleSink for LakeSink {
    async fn record(&self, steps: &[LifecycleStep]) -> ztlake_runbooks::Result<()> {
        let missing: Vec<String> = steps
            .iter()
            .filter(|s| s.provider.is_none() || s.rule_id.is_none())
            .map(|s| s.alert_id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let known = if missing.is_empty() {
            HashMap::new()
        } else {
            stored_alerts(&self.lake, &missing)
                .await
                .map_err(|e| ztlake_runbooks::Error::Sink(format!("{e:#}")))?
        };
        let events: Vec<AlertEvent> = steps.iter().map(|s| event_of(s, &known)).collect();
        append_events(&self.lake, events)
            .await
            .map(|_| ())
            .map_err(|e| ztlake_runbooks::Error::Sink(format!("{e:#}")))
    }

    async fn statuses(
        &self,
        alert_ids: &[String],
    ) -> ztlake_runbooks::Result<HashMap<String, AlertStatus>> {
        let listed = list_alerts(&self.lake, &AlertFilter::default())
            .await
            .map_err(|e| ztlake_runbooks::Error::Sink(format!("{e:#}")))?;
        let wanted: HashSet<&str> = alert_ids.iter().map(String::as_str).collect();
        Ok(listed
            .into_iter()
            .filter(|l| wanted.contains(l.alert.alert_id.as_str()))
            .map(|l| {
                let status = match l.status.as_str() {
                    "acknowledged" => AlertStatus::Acknowledged,
                    "resolved" => AlertStatus::Resolved,
                    _ => AlertStatus::Open,
                };
                (l.alert.alert_id, status)
            })
            .collect())
    }
}

/// What [`deliver_since`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Delivery {
    /// Alerts new or changed in this run, handed to the dispatcher.
    pub alerts: usize,
    /// Messages queued (new, updates, escalations).
    pub queued: usize,
    /// The delivery round: delivered, retrying, failed, deferred, escalated.
    pub report: TickReport,
    /// The outbox directory (queued messages, the `.eml` files without SMTP).
    pub outbox: PathBuf,
}

/// Hand the alerts written to `lake` at or after `since` (µs; their `updated` time) to the
/// on-call dispatcher, then deliver what is due — including retries and escalations left by
/// earlier runs. Failed attempts stay queued in the outbox for the next run.
///
/// # Errors
/// The configuration is invalid, the lake cannot be read or the outbox cannot be written.
/// Delivery failures are not errors: they are recorded as `delivery_failed` steps.
pub async fn deliver_since(
    lake: &Lake,
    config: Option<&Path>,
    runbooks: &Path,
    since: i64,
) -> Result<Delivery> {
    let d = dispatcher(lake, config, catalog(runbooks))?;
    let changed = alerts_updated_since(lake, since).await?;
    deliver(&d, &changed).await
}

/// Alerts submitted to the outbox in one exclusive section.
const SUBMIT_CHUNK: usize = 2_000;

/// Submit `alerts` to `d` and deliver what is due.
///
/// # Errors
/// The outbox cannot be written.
pub async fn deliver(d: &Dispatcher, alerts: &[Alert]) -> Result<Delivery> {
    let mut out = Delivery { outbox: d.outbox_dir().to_path_buf(), ..Delivery::default() };
    // In chunks: each is one exclusive section of the outbox, its files synced together.
    for chunk in alerts.chunks(SUBMIT_CHUNK) {
        for s in d.submit_all(chunk)? {
            out.alerts += 1;
            out.queued += s.queued;
        }
    }
    out.report = d.drain().await?;
    Ok(out)
}

/// One line for command summaries.
pub fn render(d: &Delivery) -> String {
    let r = &d.report;
    format!(
        "on-call: {} alert(s) routed, {} message(s) queued; {} delivered, {} retrying, {} failed, {} deferred, {} escalated (outbox {})\n",
        d.alerts,
        d.queued,
        r.delivered,
        r.retrying,
        r.failed,
        r.deferred,
        r.escalated,
        d.outbox.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ztlake_runbooks::StepKind;

    fn alert() -> Alert {
        Alert {
            alert_id: "00000000000000aa".into(),
            rule_id: "zt-x".into(),
            title: "X".into(),
            severity: ztlake_detections::Severity::High,
            provider: "aws".into(),
            entity: Default::default(),
            dedupe_key: vec![],
            first_seen: 1,
            last_seen: 2,
            count: 1,
            runbook: "rb".into(),
            evidence_uids: vec![],
            evidence: Default::default(),
            tags: vec![],
            updated: 3,
        }
    }

    #[test]
    fn steps_become_alert_events_with_the_step_id_and_the_alert_fields() {
        let step = LifecycleStep::by_actor(
            "00000000000000aa",
            StepKind::Acknowledged,
            "alice",
            Some("n".into()),
            7,
        );
        let known = HashMap::from([("00000000000000aa".to_owned(), alert())]);
        let e = event_of(&step, &known);
        assert_eq!((e.event.as_str(), e.provider.as_str(), e.time), ("acknowledged", "aws", 7));
        assert_eq!(e.event_id, step.step_id);
        assert_eq!(e.rule_id.as_deref(), Some("zt-x"));
        assert_eq!(e.severity.as_deref(), Some("high"));
        assert_eq!((e.actor.as_deref(), e.detail.as_deref()), (Some("alice"), Some("n")));
        // An alert the lake does not know (yet): recorded anyway, under `multi`.
        let e = event_of(&step, &HashMap::new());
        assert_eq!((e.provider.as_str(), e.rule_id.as_deref()), ("multi", None));
        // Steps that carry their alert's fields keep them.
        let notified = LifecycleStep::new("00000000000000aa", StepKind::Notified, 9, &["email"])
            .of_alert(&alert());
        assert_eq!(event_of(&notified, &HashMap::new()).provider, "aws");
    }

    #[tokio::test]
    async fn the_default_outbox_lives_beside_the_tables_of_a_local_lake() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::open(dir.path().to_str().expect("utf8")).await.expect("lake");
        let outbox = default_outbox(&lake);
        assert_eq!(outbox.file_name().and_then(|n| n.to_str()), Some("outbox"));
        let parent = outbox.parent().expect("parent").canonicalize().expect("canonical");
        assert_eq!(parent, dir.path().canonicalize().expect("canonical"));
        let config = load_config(None, &lake).expect("defaults");
        assert_eq!(config.outbox.as_deref(), Some(outbox.as_path()));
        assert!(config.smtp.is_none() && config.targets.is_empty());
        let file = dir.path().join("ztlake.toml");
        std::fs::write(&file, "[oncall]\nbogus = 1\n").expect("write");
        let e = load_config(Some(&file), &lake).expect_err("unknown key");
        assert!(format!("{e:#}").contains("unknown field `bogus`"), "{e:#}");
    }
}
