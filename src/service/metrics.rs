//! The service's metrics, rendered in the Prometheus text exposition format (version 0.0.4) for
//! `/metrics`.
//!
//! Hand-rolled on purpose: a handful of counters, gauges and one histogram, updated with atomics
//! or short-lived locks off the row path (once per batch, flush or alert), need no registry
//! crate. Label values come from configuration or fixed vocabularies (topics, tables, reason
//! codes), never raw from a record, and are escaped anyway.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the flush-latency histogram buckets.
const FLUSH_BUCKETS: [f64; 12] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// A counter or gauge per label set.
#[derive(Debug, Default)]
struct Family {
    values: Mutex<BTreeMap<Vec<(&'static str, String)>, f64>>,
}

impl Family {
    fn add(&self, labels: &[(&'static str, &str)], v: f64) {
        let key = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let mut map = self.values.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(key).or_insert(0.0) += v;
    }

    fn set(&self, labels: &[(&'static str, &str)], v: f64) {
        let key = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let mut map = self.values.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, v);
    }

    fn retain(&self, keep: impl Fn(&[(&'static str, String)]) -> bool) {
        let mut map = self.values.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|k, _| keep(k));
    }

    fn get(&self, labels: &[(&'static str, &str)]) -> f64 {
        let map = self.values.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .find(|(k, _)| {
                k.len() == labels.len()
                    && k.iter().zip(labels).all(|((a, x), (b, y))| a == b && x == y)
            })
            .map_or(0.0, |(_, v)| *v)
    }

    fn render(&self, out: &mut String, name: &str, kind: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let map = self.values.lock().unwrap_or_else(|p| p.into_inner());
        for (labels, v) in map.iter() {
            let _ = writeln!(out, "{name}{} {}", label_text(labels), number(*v));
        }
    }
}

/// A histogram without labels.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; FLUSH_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in FLUSH_BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, bucket) in FLUSH_BUCKETS.iter().zip(&self.buckets) {
            let n = bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {}", number(sum));
        let _ = writeln!(out, "{name}_count {count}");
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 9e15 { format!("{}", v as i64) } else { format!("{v}") }
}

fn label_text(labels: &[(&'static str, String)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// Every metric of the service. Shared (`Arc`) by all its tasks.
#[derive(Debug, Default)]
pub struct Metrics {
    records_in: Family,
    messages_in: Family,
    rows_out: Family,
    quarantined: Family,
    consumer_lag: Family,
    objects_in: Family,
    flushes: Family,
    flush_errors: Family,
    flush_latency: Histogram,
    alerts_raised: Family,
    alerts_delivered: Family,
    alerts_failed: Family,
    siem_sent: Family,
    siem_errors: Family,
    maintenance: Family,
    source_up: Family,
    started: Family,
}

impl Metrics {
    /// Framed records read from a source (lines or JSON values; Kafka messages may hold many).
    pub fn records_in(&self, source: &str, n: u64) {
        self.records_in.add(&[("source", source)], n as f64);
    }

    /// Kafka messages read from a topic.
    pub fn messages_in(&self, topic: &str, n: u64) {
        self.messages_in.add(&[("topic", topic)], n as f64);
    }

    /// Rows committed to a table.
    pub fn rows_out(&self, table: &str, n: u64) {
        self.rows_out.add(&[("table", table)], n as f64);
    }

    /// Records quarantined for a reason (committed).
    pub fn quarantined(&self, reason: &str, n: u64) {
        self.quarantined.add(&[("reason", reason)], n as f64);
    }

    /// The consumer lag of a partition: messages between the end of its durable prefix and the
    /// partition's high watermark.
    pub fn set_lag(&self, group: &str, topic: &str, partition: i32, lag: i64) {
        let p = partition.to_string();
        self.consumer_lag
            .set(&[("group", group), ("topic", topic), ("partition", &p)], lag.max(0) as f64);
    }

    /// Forget the lag of partitions this instance no longer owns.
    pub fn retain_lag(&self, group: &str, owned: &[(String, i32)]) {
        self.consumer_lag.retain(|labels| {
            let get = |name: &str| labels.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
            get("group") != Some(group)
                || owned.iter().any(|(t, p)| {
                    get("topic") == Some(t.as_str()) && get("partition") == Some(&p.to_string())
                })
        });
    }

    /// Objects ingested from an object-store source.
    pub fn objects_in(&self, source: &str, n: u64) {
        self.objects_in.add(&[("source", source)], n as f64);
    }

    /// A flush (lake commit of one generation) finished after `took`.
    pub fn flushed(&self, source: &str, took: Duration) {
        self.flushes.add(&[("source", source)], 1.0);
        self.flush_latency.observe(took);
    }

    /// A flush attempt failed (it is retried).
    pub fn flush_failed(&self, source: &str) {
        self.flush_errors.add(&[("source", source)], 1.0);
    }

    /// Alerts raised or updated by a rule (streaming or scheduled).
    pub fn alerts_raised(&self, rule: &str, n: u64) {
        self.alerts_raised.add(&[("rule", rule)], n as f64);
    }

    /// On-call messages delivered (email accepted or written to the outbox, webhook answered).
    pub fn alerts_delivered(&self, channel: &str, n: u64) {
        self.alerts_delivered.add(&[("channel", channel)], n as f64);
    }

    /// On-call messages given up after their retries.
    pub fn alerts_delivery_failed(&self, channel: &str, n: u64) {
        self.alerts_failed.add(&[("channel", channel)], n as f64);
    }

    /// Messages acknowledged by the SIEM feed's brokers, per topic.
    pub fn siem_sent(&self, topic: &str, n: u64) {
        self.siem_sent.add(&[("topic", topic)], n as f64);
    }

    /// Messages the SIEM feed failed to deliver, per topic.
    pub fn siem_error(&self, topic: &str) {
        self.siem_errors.add(&[("topic", topic)], 1.0);
    }

    /// A maintenance run (`compact` or `retain`) of a table ended (`ok` or `error`).
    pub fn maintenance(&self, operation: &str, table: &str, outcome: &str) {
        self.maintenance
            .add(&[("operation", operation), ("table", table), ("outcome", outcome)], 1.0);
    }

    /// Whether a source loop is running (1) or stopped (0).
    pub fn source_up(&self, source: &str, up: bool) {
        self.source_up.set(&[("source", source)], if up { 1.0 } else { 0.0 });
    }

    /// Records the start time (for `ztlake_start_time_seconds`).
    pub fn started(&self, unix_seconds: f64) {
        self.started.set(&[], unix_seconds);
    }

    /// Sum of a labelled counter, for tests and health: `rows_out` of `table`.
    pub fn rows_out_of(&self, table: &str) -> f64 {
        self.rows_out.get(&[("table", table)])
    }

    /// Whether every source loop that reported is up.
    pub fn all_sources_up(&self) -> bool {
        let map = self.source_up.values.lock().unwrap_or_else(|p| p.into_inner());
        map.values().all(|v| *v > 0.0)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&Family, &str, &str); 14] = [
            (&self.records_in, "ztlake_records_in_total", "Records read, per source"),
            (&self.messages_in, "ztlake_kafka_messages_total", "Kafka messages read, per topic"),
            (&self.rows_out, "ztlake_rows_out_total", "Rows committed to the lake, per table"),
            (&self.quarantined, "ztlake_quarantined_total", "Records quarantined, per reason"),
            (&self.objects_in, "ztlake_objects_total", "Objects ingested, per source"),
            (&self.flushes, "ztlake_flushes_total", "Lake commits of buffered rows, per source"),
            (&self.flush_errors, "ztlake_flush_errors_total", "Failed flush attempts, per source"),
            (
                &self.alerts_raised,
                "ztlake_alerts_raised_total",
                "Alerts raised or updated, per rule",
            ),
            (
                &self.alerts_delivered,
                "ztlake_alerts_delivered_total",
                "On-call messages delivered (email, webhook, outbox)",
            ),
            (
                &self.alerts_failed,
                "ztlake_alerts_delivery_failed_total",
                "On-call messages given up after their retries",
            ),
            (
                &self.siem_sent,
                "ztlake_siem_messages_total",
                "SIEM feed messages delivered, per topic",
            ),
            (
                &self.siem_errors,
                "ztlake_siem_errors_total",
                "SIEM feed delivery failures, per topic",
            ),
            (
                &self.maintenance,
                "ztlake_maintenance_runs_total",
                "Compaction and retention runs, per table and outcome",
            ),
            (&self.source_up, "ztlake_source_up", "Whether a source loop is running"),
        ];
        for (family, name, help) in counters {
            let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
            family.render(&mut out, name, kind, help);
        }
        self.consumer_lag.render(
            &mut out,
            "ztlake_consumer_lag",
            "gauge",
            "Kafka messages not yet durable in the lake, per partition",
        );
        self.flush_latency.render(
            &mut out,
            "ztlake_flush_duration_seconds",
            "Time from the flush decision to the lake commit and acknowledgement",
        );
        self.started.render(&mut out, "ztlake_start_time_seconds", "gauge", "Service start time");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_has_types_labels_and_histogram() {
        let m = Metrics::default();
        m.rows_out("flows", 10);
        m.rows_out("flows", 5);
        m.quarantined("bad_\"field", 2);
        m.set_lag("g", "t", 3, 42);
        m.flushed("kafka", Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains("# TYPE ztlake_rows_out_total counter"), "{text}");
        assert!(text.contains("ztlake_rows_out_total{table=\"flows\"} 15"), "{text}");
        assert!(text.contains("ztlake_quarantined_total{reason=\"bad_\\\"field\"} 2"), "{text}");
        assert!(
            text.contains("ztlake_consumer_lag{group=\"g\",topic=\"t\",partition=\"3\"} 42"),
            "{text}"
        );
        assert!(text.contains("ztlake_flush_duration_seconds_bucket{le=\"0.025\"} 0"), "{text}");
        assert!(text.contains("ztlake_flush_duration_seconds_bucket{le=\"0.05\"} 1"), "{text}");
        assert!(text.contains("ztlake_flush_duration_seconds_count 1"), "{text}");
        assert_eq!(m.rows_out_of("flows"), 15.0);
        m.retain_lag("g", &[]);
        assert!(!m.render().contains("partition=\"3\""));
    }
}
