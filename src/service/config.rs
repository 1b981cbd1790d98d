//! The service configuration (`ztlake run --config ztlake.toml`): one TOML file with the
//! sections `[lake]`, `[pipeline]`, `[[kafka]]`, `[[objects]]`, `[siem]`, `[detections]`,
//! `[maintenance]`, `[http]` and `[oncall]`.
//!
//! [`load`] reports every problem it finds, not only the first: the file is parsed as TOML, then
//! each section is read on its own (unknown keys are errors in every section), then every
//! section is validated ([`ServiceConfig::validate`]), each message naming its config key
//! (`kafka[1].topics`, `siem.brokers`). Secrets (SASL passwords, storage keys) can be written
//! inline, as `{ env = "VAR" }` or `{ file = "/run/secrets/x" }`, and `Debug` never prints them.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use ztlake_detections::EngineOptions;
use ztlake_ingest::kafka::KafkaConfig;
use ztlake_ingest::objects::ObjectSourceConfig;
use ztlake_ingest::settings::Properties;
use ztlake_normalize::Table;
use ztlake_storage::{CompactOptions, WriterOptions};

/// The whole service configuration.
#[derive(Debug, Clone, Default)]
pub struct ServiceConfig {
    /// `[lake]`: where the lake lives and how data files are written.
    pub lake: LakeSection,
    /// `[pipeline]`: flush triggers, queue sizes and record limits.
    pub pipeline: PipelineSection,
    /// `[[kafka]]`: Kafka / Event Hubs / MSK / Confluent sources.
    pub kafka: Vec<KafkaConfig>,
    /// `[[objects]]`: object-store prefixes to poll.
    pub objects: Vec<ObjectSourceConfig>,
    /// `[siem]`: the OCSF feed of normalized events and alerts (absent: no feed).
    pub siem: Option<SiemSection>,
    /// `[detections]`: streaming and scheduled rules.
    pub detections: DetectionsSection,
    /// `[maintenance]`: compaction and retention on a schedule.
    pub maintenance: MaintenanceSection,
    /// `[http]`: `/healthz` and `/metrics`.
    pub http: HttpSection,
    /// `[oncall]`: on-call routing and delivery, kept as written for the delivery engine.
    pub oncall: Option<toml::Table>,
}

/// `[lake]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeSection {
    /// The lake: a directory or a URL (`file://`, `s3://bucket/prefix`, `gs://…`, `az://…`).
    #[serde(default = "default_location")]
    pub location: String,
    /// Object-store options of the lake on top of the environment (`aws_endpoint`,
    /// `allow_http`, `azure_storage_account_key`, …); values may be `{ env = … }` or
    /// `{ file = … }`.
    #[serde(default)]
    pub options: Properties,
    /// Parquet writer settings (`[lake.writer]`: `encoder_threads`, `target_file_rows`,
    /// `zstd_level`, …).
    #[serde(default = "default_writer")]
    pub writer: WriterOptions,
}

/// Default lake: `./lake`.
pub fn default_location() -> String {
    "./lake".to_owned()
}

/// Default writer of the service: two encoders per table (four tables write at once).
pub fn default_writer() -> WriterOptions {
    WriterOptions { encoder_threads: 2, ..WriterOptions::default() }
}

impl Default for LakeSection {
    fn default() -> Self {
        Self {
            location: default_location(),
            options: Properties::default(),
            writer: default_writer(),
        }
    }
}

/// `[pipeline]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Commit buffered rows at least this often (default `"5s"`).
    #[serde(default = "default_flush_interval", with = "duration")]
    pub flush_interval: Duration,
    /// … or as soon as this many rows are buffered by one source (default 1 000 000).
    #[serde(default = "default_flush_rows")]
    pub flush_rows: u64,
    /// … or as soon as one source has read this many bytes since its last flush (default
    /// `"256MiB"`).
    #[serde(default = "default_flush_bytes", with = "size")]
    pub flush_bytes: u64,
    /// Batches waiting for the streaming rules before the sources pause (default 8).
    #[serde(default = "default_detect_queue")]
    pub detect_queue: usize,
    /// Longest accepted line (default `"1MiB"`); longer records are quarantined.
    #[serde(default = "default_max_line_len", with = "size")]
    pub max_line_len: u64,
    /// Largest accepted JSON record (default `"64MiB"`).
    #[serde(default = "default_max_json_len", with = "size")]
    pub max_json_len: u64,
    /// Cap on the decompressed size of one message or object (default `"4GiB"`).
    #[serde(default = "default_max_decompressed", with = "size")]
    pub max_decompressed: u64,
    /// How long shutdown may take to flush and acknowledge before giving up (default `"2m"`).
    #[serde(default = "default_shutdown_timeout", with = "duration")]
    pub shutdown_timeout: Duration,
}

/// Default flush interval: 5 s.
pub fn default_flush_interval() -> Duration {
    Duration::from_secs(5)
}

/// Default flush size in rows: 1 M.
pub fn default_flush_rows() -> u64 {
    1_000_000
}

/// Default flush size in bytes read: 256 MiB.
pub fn default_flush_bytes() -> u64 {
    256 << 20
}

/// Default detection queue: 8 batches.
pub fn default_detect_queue() -> usize {
    8
}

/// Default longest line: 1 MiB.
pub fn default_max_line_len() -> u64 {
    1 << 20
}

/// Default largest JSON record: 64 MiB.
pub fn default_max_json_len() -> u64 {
    64 << 20
}

/// Default decompression cap per message or object: 4 GiB.
pub fn default_max_decompressed() -> u64 {
    4 << 30
}

/// Default shutdown budget: 2 minutes.
pub fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(120)
}

impl Default for PipelineSection {
    fn default() -> Self {
        Self {
            flush_interval: default_flush_interval(),
            flush_rows: default_flush_rows(),
            flush_bytes: default_flush_bytes(),
            detect_queue: default_detect_queue(),
            max_line_len: default_max_line_len(),
            max_json_len: default_max_json_len(),
            max_decompressed: default_max_decompressed(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

/// librdkafka producer properties the SIEM feed sets itself.
pub const SIEM_RESERVED: [&str; 4] =
    ["bootstrap.servers", "enable.idempotence", "acks", "max.in.flight.requests.per.connection"];

/// `[siem]`: the OCSF feed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiemSection {
    /// Bootstrap servers of the cluster the feed writes to.
    pub brokers: String,
    /// Topic of normalized events (OCSF Network Activity, Authentication, …); empty: none.
    #[serde(default = "default_events_topic")]
    pub events_topic: String,
    /// Topic of alerts (OCSF Detection Finding); empty: none.
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    /// Tables whose rows go to `events_topic` (default flows, signins, cert_events).
    #[serde(default = "default_siem_tables")]
    pub tables: Vec<String>,
    /// librdkafka producer properties (`security.protocol`, `sasl.*`, `compression.type`,
    /// `linger.ms`, …); values may be `{ env = … }` or `{ file = … }`. The idempotence settings
    /// are ztlake's.
    #[serde(default)]
    pub properties: Properties,
}

/// Default events topic.
pub fn default_events_topic() -> String {
    "ztlake-events".to_owned()
}

/// Default alerts topic.
pub fn default_alerts_topic() -> String {
    "ztlake-alerts".to_owned()
}

/// Default feed tables.
pub fn default_siem_tables() -> Vec<String> {
    vec!["flows".into(), "signins".into(), "cert_events".into()]
}

/// `[detections]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionsSection {
    /// Run the rules at all (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Rule files (default `detections/rules`).
    #[serde(default = "default_rules")]
    pub rules: PathBuf,
    /// Runbooks (default `runbooks`).
    #[serde(default = "default_runbooks")]
    pub runbooks: PathBuf,
    /// Reference tables (default `detections/reference`).
    #[serde(default = "default_reference")]
    pub reference: PathBuf,
    /// How often scheduled rules are checked for a due run (default `"30s"`); each rule runs
    /// at every multiple of its own `interval`.
    #[serde(default = "default_scheduled_check", with = "duration")]
    pub scheduled_check: Duration,
    /// How often new or changed alerts of the streaming rules are collected (default
    /// `"250ms"`).
    #[serde(default = "default_alert_check", with = "duration")]
    pub alert_check: Duration,
    /// Streaming engine tuning (`[detections.engine]`: `max_rows_per_rule`,
    /// `eval_every_rows`, `eval_every`; the service evaluates open windows every second).
    #[serde(default = "default_engine")]
    pub engine: EngineOptions,
}

fn default_true() -> bool {
    true
}

/// Default rule directory.
pub fn default_rules() -> PathBuf {
    "detections/rules".into()
}

/// Default runbook directory.
pub fn default_runbooks() -> PathBuf {
    "runbooks".into()
}

/// Default reference directory.
pub fn default_reference() -> PathBuf {
    "detections/reference".into()
}

/// Default scheduled-rule check: 30 s.
pub fn default_scheduled_check() -> Duration {
    Duration::from_secs(30)
}

/// Default alert collection: 250 ms.
pub fn default_alert_check() -> Duration {
    Duration::from_millis(250)
}

/// Default engine of the service: open windows evaluated every second.
pub fn default_engine() -> EngineOptions {
    EngineOptions { eval_every: Duration::from_secs(1), ..EngineOptions::default() }
}

impl Default for DetectionsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            rules: default_rules(),
            runbooks: default_runbooks(),
            reference: default_reference(),
            scheduled_check: default_scheduled_check(),
            alert_check: default_alert_check(),
            engine: default_engine(),
        }
    }
}

/// `[maintenance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSection {
    /// Compact small files (default true).
    #[serde(default = "default_true")]
    pub compact: bool,
    /// How often (default `"1h"`; the first run one interval after start).
    #[serde(default = "default_compact_every", with = "duration")]
    pub compact_every: Duration,
    /// Compaction settings (`[maintenance.compaction]`: `target_file_bytes`, `zstd_level`,
    /// `max_concurrent_tasks`).
    #[serde(default)]
    pub compaction: CompactOptions,
    /// Keep this many days of data; absent: keep everything.
    #[serde(default)]
    pub retain_days: Option<u32>,
    /// How often retention runs (default `"6h"`).
    #[serde(default = "default_retain_every", with = "duration")]
    pub retain_every: Duration,
    /// Dropped and compacted-away files are deleted once out of the table this long (default
    /// `"1h"`), so queries running on an older snapshot keep working.
    #[serde(default = "default_vacuum_grace", with = "duration")]
    pub vacuum_grace: Duration,
}

/// Default compaction interval: 1 hour.
pub fn default_compact_every() -> Duration {
    Duration::from_secs(3600)
}

/// Default retention interval: 6 hours.
pub fn default_retain_every() -> Duration {
    Duration::from_secs(6 * 3600)
}

/// Default vacuum grace: 1 hour.
pub fn default_vacuum_grace() -> Duration {
    Duration::from_secs(3600)
}

impl Default for MaintenanceSection {
    fn default() -> Self {
        Self {
            compact: true,
            compact_every: default_compact_every(),
            compaction: CompactOptions::default(),
            retain_days: None,
            retain_every: default_retain_every(),
            vacuum_grace: default_vacuum_grace(),
        }
    }
}

/// `[http]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Serve `/healthz` and `/metrics` (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address to listen on (default `127.0.0.1:9464`, loopback only).
    #[serde(default = "default_listen")]
    pub listen: String,
}

/// Default listen address: loopback, port 9464.
pub fn default_listen() -> String {
    "127.0.0.1:9464".to_owned()
}

impl Default for HttpSection {
    fn default() -> Self {
        Self { enabled: true, listen: default_listen() }
    }
}

/// Every problem found in a configuration, each naming its config key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file.
    pub file: String,
    /// The problems.
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} problem(s) in {}:", self.problems.len(), self.file)?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Read and check the configuration file at `path`.
///
/// # Errors
/// [`ConfigErrors`] with every problem found (an unreadable file is one problem).
pub fn load(path: &Path) -> Result<ServiceConfig, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        problems: vec![format!("cannot read: {e}")],
    })?;
    parse(&text).map_err(|problems| ConfigErrors { file, problems })
}

/// Parse and check a configuration text; every problem is returned.
///
/// # Errors
/// The problems, each naming its config key.
pub fn parse(text: &str) -> Result<ServiceConfig, Vec<String>> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| vec![syntax(&e, text)])?;
    let mut problems = Vec::new();
    let mut config = ServiceConfig::default();
    for (key, value) in table {
        match key.as_str() {
            "lake" => section(&key, value, &mut problems, |v| config.lake = v),
            "pipeline" => section(&key, value, &mut problems, |v| config.pipeline = v),
            "siem" => section(&key, value, &mut problems, |v| config.siem = Some(v)),
            "detections" => section(&key, value, &mut problems, |v| config.detections = v),
            "maintenance" => section(&key, value, &mut problems, |v| config.maintenance = v),
            "http" => section(&key, value, &mut problems, |v| config.http = v),
            "kafka" => array(&key, value, &mut problems, &mut config.kafka),
            "objects" => array(&key, value, &mut problems, &mut config.objects),
            "oncall" => match value {
                toml::Value::Table(t) => {
                    problems.extend(oncall_problems(&t));
                    config.oncall = Some(t);
                }
                _ => problems.push("oncall: expected a table ([oncall])".to_owned()),
            },
            other => problems.push(format!(
                "{other}: unknown section (known: lake, pipeline, kafka, objects, siem, \
                 detections, maintenance, http, oncall)"
            )),
        }
    }
    problems.extend(config.validate());
    if problems.is_empty() { Ok(config) } else { Err(problems) }
}

/// Every problem of the `[oncall]` section, as the delivery engine (`ztlake-runbooks`) reads it.
fn oncall_problems(table: &toml::Table) -> Vec<String> {
    let config = match toml::Value::Table(table.clone()).try_into::<ztlake_runbooks::OncallConfig>()
    {
        Ok(c) => c,
        Err(e) => return vec![format!("oncall: {}", e.message().trim())],
    };
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(ztlake_runbooks::Error::Config { problems, .. }) => problems
            .into_iter()
            .map(|p| if p.starts_with("oncall") { p } else { format!("oncall.{p}") })
            .collect(),
        Err(e) => vec![format!("oncall: {e}")],
    }
}

fn syntax(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let line = text.get(..span.start).map_or(0, |t| t.matches('\n').count()) + 1;
            format!("line {line}: {message}")
        }
        None => message.to_owned(),
    }
}

fn section<T: for<'de> Deserialize<'de>>(
    key: &str,
    value: toml::Value,
    problems: &mut Vec<String>,
    set: impl FnOnce(T),
) {
    match value.try_into::<T>() {
        Ok(v) => set(v),
        Err(e) => problems.push(format!("{key}: {}", e.message().trim())),
    }
}

fn array<T: for<'de> Deserialize<'de>>(
    key: &str,
    value: toml::Value,
    problems: &mut Vec<String>,
    out: &mut Vec<T>,
) {
    let toml::Value::Array(items) = value else {
        problems.push(format!("{key}: expected an array of tables ([[{key}]])"));
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        match item.try_into::<T>() {
            Ok(v) => out.push(v),
            Err(e) => problems.push(format!("{key}[{i}]: {}", e.message().trim())),
        }
    }
}

fn check_format(name: &str) -> Result<(), String> {
    if name == "auto" {
        return Ok(());
    }
    ztlake_normalize::format::format_by_name(name)
        .map(|_| ())
        .map_err(|_| format!("unknown format {name:?} (see `ztlake formats`)"))
}

fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl ServiceConfig {
    /// Every semantic problem of the configuration (empty: valid). Files and directories named
    /// by the configuration are checked for existence; secrets are resolved (variables and files
    /// read) without being printed.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.lake.location.trim().is_empty() {
            p.push("lake.location: empty".to_owned());
        }
        if let Err(e) = self.lake.options.resolve() {
            p.push(format!("lake.options: {e}"));
        }
        if let Err(e) = self.lake.writer.validate() {
            p.push(format!("lake.writer: {e}"));
        }
        let pl = &self.pipeline;
        if pl.flush_interval.is_zero() {
            p.push("pipeline.flush_interval: must be positive".to_owned());
        }
        for (name, v) in [
            ("flush_rows", pl.flush_rows),
            ("flush_bytes", pl.flush_bytes),
            ("max_line_len", pl.max_line_len),
            ("max_json_len", pl.max_json_len),
            ("max_decompressed", pl.max_decompressed),
        ] {
            if v == 0 {
                p.push(format!("pipeline.{name}: must be positive"));
            }
        }
        if usize::try_from(pl.max_json_len).is_err() || usize::try_from(pl.max_line_len).is_err() {
            p.push("pipeline: record limits too large for this machine".to_owned());
        }
        if pl.detect_queue == 0 {
            p.push("pipeline.detect_queue: must be at least 1".to_owned());
        }
        if self.kafka.is_empty() && self.objects.is_empty() {
            p.push("no source: configure at least one [[kafka]] or [[objects]] section".to_owned());
        }
        let mut group_topics = BTreeSet::new();
        for (i, k) in self.kafka.iter().enumerate() {
            if let Err(e) = k.validate() {
                p.push(format!("kafka[{i}]: {e}"));
            }
            for t in &k.topics {
                if let Err(e) = check_format(&t.format) {
                    p.push(format!("kafka[{i}].topics ({}): {e}", t.name));
                }
                if !group_topics.insert((k.group_id.clone(), t.name.clone())) {
                    p.push(format!(
                        "kafka[{i}]: topic {} of group {} is read by another [[kafka]] section too",
                        t.name, k.group_id
                    ));
                }
            }
        }
        let mut urls = BTreeSet::new();
        for (i, o) in self.objects.iter().enumerate() {
            if let Err(e) = o.validate() {
                p.push(format!("objects[{i}]: {e}"));
            }
            if let Err(e) = check_format(&o.format) {
                p.push(format!("objects[{i}].format: {e}"));
            }
            if !urls.insert(o.url.trim_end_matches('/').to_owned()) {
                p.push(format!("objects[{i}].url: {} is polled by another [[objects]] too", o.url));
            }
        }
        if let Some(s) = &self.siem {
            if s.brokers.trim().is_empty() {
                p.push("siem.brokers: empty".to_owned());
            }
            if s.events_topic.is_empty() && s.alerts_topic.is_empty() {
                p.push("siem: events_topic and alerts_topic are both empty".to_owned());
            }
            for (key, topic) in
                [("events_topic", &s.events_topic), ("alerts_topic", &s.alerts_topic)]
            {
                if !topic.is_empty() && !valid_topic(topic) {
                    p.push(format!(
                        "siem.{key}: {topic:?} is not a topic name ([a-zA-Z0-9._-], 1-249)"
                    ));
                }
            }
            for t in &s.tables {
                match Table::from_name(t) {
                    Some(Table::Flows | Table::Signins | Table::CertEvents) => {}
                    _ => p.push(format!(
                        "siem.tables: {t:?} is not a feed table (flows, signins, cert_events)"
                    )),
                }
            }
            if let Some(r) = SIEM_RESERVED.iter().find(|r| s.properties.contains(r)) {
                p.push(format!(
                    "siem.properties: {r} is set by ztlake (brokers; idempotent delivery)"
                ));
            }
            if let Err(e) = s.properties.resolve() {
                p.push(format!("siem.properties: {e}"));
            }
        }
        let d = &self.detections;
        if d.enabled {
            for (key, dir) in [("rules", &d.rules), ("runbooks", &d.runbooks)] {
                if !dir.is_dir() {
                    p.push(format!("detections.{key}: {} is not a directory", dir.display()));
                }
            }
            if d.scheduled_check.is_zero() || d.alert_check.is_zero() {
                p.push("detections: scheduled_check and alert_check must be positive".to_owned());
            }
            if d.engine.max_rows_per_rule == 0 || d.engine.eval_every_rows == 0 {
                p.push(
                    "detections.engine: max_rows_per_rule and eval_every_rows must be positive"
                        .to_owned(),
                );
            }
        }
        let m = &self.maintenance;
        if m.compact && m.compact_every.is_zero() {
            p.push("maintenance.compact_every: must be positive".to_owned());
        }
        if m.compaction.target_file_bytes == 0 || m.compaction.max_concurrent_tasks == 0 {
            p.push("maintenance.compaction: target_file_bytes and max_concurrent_tasks must be positive".to_owned());
        }
        if !(1..=22).contains(&m.compaction.zstd_level) {
            p.push("maintenance.compaction.zstd_level: must be within 1..=22".to_owned());
        }
        if m.retain_days == Some(0) {
            p.push(
                "maintenance.retain_days: must be at least 1 (omit it to keep everything)"
                    .to_owned(),
            );
        }
        if m.retain_days.is_some() && m.retain_every.is_zero() {
            p.push("maintenance.retain_every: must be positive".to_owned());
        }
        if self.http.enabled && self.http.listen.parse::<SocketAddr>().is_err() {
            p.push(format!(
                "http.listen: {:?} is not an address (e.g. 127.0.0.1:9464)",
                self.http.listen
            ));
        }
        p
    }

    /// The read limits of the sources.
    pub fn read_options(&self) -> ztlake_ingest::ReadOptions {
        let to_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        ztlake_ingest::ReadOptions {
            max_line_len: to_usize(self.pipeline.max_line_len),
            max_json_len: to_usize(self.pipeline.max_json_len),
            max_decompressed_bytes: self.pipeline.max_decompressed,
            ..ztlake_ingest::ReadOptions::default()
        }
    }
}

/// serde helpers for human durations (`"250ms"`, `"5s"`, `"1h"`).
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e} (e.g. \"5s\", \"1h\")")))
    }
}

/// serde helpers for sizes: a number of bytes or a string such as `"256MiB"`.
mod size {
    use super::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(n),
            Raw::Text(t) => {
                t.trim().parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|e| {
                    serde::de::Error::custom(format!("{t:?}: {e} (e.g. \"256MiB\" or 4096)"))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/ztlake.toml");

    #[test]
    fn the_shipped_example_parses() {
        // The example names the shipped pack directories relative to the repository root.
        let dir = env!("CARGO_MANIFEST_DIR");
        let text = EXAMPLE
            .replace("\"detections/rules\"", &format!("\"{dir}/detections/rules\""))
            .replace("\"runbooks\"", &format!("\"{dir}/runbooks\""))
            .replace("\"detections/reference\"", &format!("\"{dir}/detections/reference\""));
        // SAFETY of the test: the example reads secrets from these variables.
        let config = match parse(&text) {
            Ok(c) => c,
            Err(p) => {
                // Only unset secret variables may fail here.
                assert!(p.iter().all(|m| m.contains("environment variable")), "{p:?}");
                return;
            }
        };
        assert!(!config.kafka.is_empty());
        assert_eq!(config.pipeline.flush_interval, Duration::from_secs(5));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = r#"
            [lake]
            location = "./lake"
            typo = 1

            [pipeline]
            flush_interval = "soon"

            [[kafka]]
            brokers = ""
            group_id = "g"
            topics = [{ name = "flows", format = "no-such-format" }]

            [[kafka]]
            brokers = "b:9092"
            group_id = "g"
            topics = [{ name = "flows" }]
            properties = { "enable.auto.commit" = "true" }

            [siem]
            brokers = "b:9092"
            tables = ["alerts"]
            properties = { "enable.idempotence" = "false" }

            [detections]
            enabled = false

            [http]
            listen = "nowhere"

            [oncall]
            pager = "yes"

            [unknown]
            x = 1
        "#;
        let problems = parse(text).expect_err("invalid");
        let all = problems.join("\n");
        for needle in [
            "lake: unknown field `typo`",
            "pipeline: \"soon\"",
            "kafka[0]: kafka  (group g): invalid configuration: brokers is empty",
            "kafka[0].topics (flows): unknown format \"no-such-format\"",
            "kafka[1]: kafka b:9092 (group g): invalid configuration: property enable.auto.commit",
            "kafka[1]: topic flows of group g is read by another",
            "siem.tables: \"alerts\"",
            "siem.properties: enable.idempotence",
            "http.listen: \"nowhere\"",
            "oncall: unknown field `pager`",
            "unknown: unknown section",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn syntax_errors_name_the_line_and_secrets_stay_hidden() {
        let problems = parse("[lake]\nlocation = \n").expect_err("syntax");
        assert!(problems[0].starts_with("line 2"), "{problems:?}");
        let text = r#"
            [[objects]]
            url = "s3://bucket/prefix/"
            options = { secret_access_key = "hunter2", region = "eu-west-1" }
            [detections]
            enabled = false
        "#;
        let config = parse(text).expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2") && debug.contains("eu-west-1"), "{debug}");
        assert_eq!(config.http.listen, "127.0.0.1:9464");
        assert_eq!(config.pipeline.flush_bytes, 256 << 20);
    }

    #[test]
    fn no_source_is_an_error() {
        let problems = parse("[detections]\nenabled = false\n").expect_err("no source");
        assert!(problems.iter().any(|p| p.starts_with("no source")), "{problems:?}");
    }
}
