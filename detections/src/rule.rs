//! The rule model: what a rule YAML file may contain (docs/rules.md is the contract).
//!
//! [`RuleFile`] is the file as written — typed serde structs with `deny_unknown_fields`, enums
//! for severity and mode, durations as human strings (`"10m"`). [`Rule`] is a rule after
//! validation: defaults applied, the trigger table resolved, durations checked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ztlake_normalize::schema::Table;

/// Default streaming window when a streaming rule names none.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Default dedupe period: one alert per key per day.
pub const DEFAULT_DEDUPE_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

/// How bad an alert of a rule is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, no action expected.
    #[default]
    Info,
    /// Look at it when convenient.
    Low,
    /// Look at it today.
    Medium,
    /// Look at it now.
    High,
    /// Wake someone up.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    /// The name used in rules, alerts and runbooks.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parse a severity name.
    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// On every normalized batch, over event-time windows (and in backfill over the same
    /// windows).
    Streaming,
    /// Over the lake at every multiple of `interval`, seeing `lookback` of data.
    Scheduled,
}

impl Mode {
    /// The name used in rule files.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Streaming => "streaming",
            Mode::Scheduled => "scheduled",
        }
    }
}

/// A duration written as a human string (`"90s"`, `"10m"`, `"24h"`, `"1h 30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: {e} (write e.g. \"90s\", \"10m\", \"24h\")"
            ))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// A scalar written in YAML (text, number or boolean), kept as its text; `null` is `None`.
///
/// Expected entity values in tests are compared as text, so `dst_port: 3389` and
/// `dst_port: "3389"` mean the same.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Scalar(pub Option<String>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a text, number, boolean or null value")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_owned())))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Scalar {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(v) => s.serialize_str(v),
            None => s.serialize_none(),
        }
    }
}

/// One text or a list of texts (`zero_trust: segmentation` or `zero_trust: [a, b]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// Nothing given.
    #[default]
    None,
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values.
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// A rule file, as written. See docs/rules.md for the meaning of every key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Unique id, `[a-z0-9-]+`; the file name should be `<id>.yaml`.
    pub id: String,
    /// One-line title, carried by every alert.
    pub title: String,
    /// What the rule detects and why it matters.
    #[serde(default)]
    pub description: Option<String>,
    /// Severity of its alerts.
    pub severity: Severity,
    /// The table whose new rows trigger the rule (its event time drives the windows).
    pub table: String,
    /// Streaming or scheduled.
    pub mode: Mode,
    /// Streaming: the event-time window the SQL sees (tumbling, epoch-aligned; default 5m).
    #[serde(default)]
    pub window: Option<Dur>,
    /// Streaming: how long after its end a window still accepts late rows (default: one
    /// window).
    #[serde(default)]
    pub lateness: Option<Dur>,
    /// Scheduled: how often it runs (epoch-aligned).
    #[serde(default)]
    pub interval: Option<Dur>,
    /// Scheduled: how much data each run sees (default: `interval`).
    #[serde(default)]
    pub lookback: Option<Dur>,
    /// The query (DataFusion SQL over the canonical and reference tables).
    pub sql: String,
    /// Output column(s) naming what the alert is about.
    pub entity: Vec<String>,
    /// Deduplication: key columns and period.
    #[serde(default)]
    pub dedupe: Option<DedupeSpec>,
    /// Id of the runbook in `runbooks/`.
    pub runbook: String,
    /// MITRE ATT&CK techniques and the Zero Trust control.
    #[serde(default)]
    pub tags: Tags,
    /// Inline tests: raw provider input and the expected alerts.
    #[serde(default)]
    pub tests: Vec<RuleTest>,
}

/// The top-level keys of a rule file, in the order of [`RuleFile`].
pub const RULE_KEYS: [&str; 16] = [
    "id",
    "title",
    "description",
    "severity",
    "table",
    "mode",
    "window",
    "lateness",
    "interval",
    "lookback",
    "sql",
    "entity",
    "dedupe",
    "runbook",
    "tags",
    "tests",
];

/// The keys a rule file must have.
pub const REQUIRED_KEYS: [&str; 8] =
    ["id", "title", "severity", "table", "mode", "sql", "entity", "runbook"];

/// `dedupe:` of a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeSpec {
    /// Key columns (default: the entity columns).
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// One alert per key per period (default 24h); later matches update it.
    #[serde(default)]
    pub period: Option<Dur>,
}

/// `tags:` of a rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    /// MITRE ATT&CK technique ids (`T1133`, `T1021.001`).
    #[serde(default)]
    pub attack: Vec<String>,
    /// The Zero Trust control(s) the rule checks.
    #[serde(default)]
    pub zero_trust: OneOrMany,
}

/// One inline test of a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTest {
    /// What the test shows.
    pub name: String,
    /// Raw input records, each in a named provider format.
    pub input: Vec<TestInput>,
    /// Reference tables for this test, as CSV text per table (else the loaded ones).
    #[serde(default)]
    pub reference: BTreeMap<String, String>,
    /// The alerts expected.
    pub expect: Expect,
}

/// Raw input of a test.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// A `ztlake formats` name (or `auto`).
    pub format: String,
    /// The bytes ingest reads (one record per line, or JSON values).
    pub data: String,
}

/// Expected alerts of a test.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Number of alerts.
    pub count: usize,
    /// Entity values of the alerts (any order); each map names every entity column.
    #[serde(default)]
    pub entities: Option<Vec<BTreeMap<String, Scalar>>>,
}

/// A validated rule: the file as written plus resolved settings.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// The rule as written.
    pub spec: RuleFile,
    /// The trigger table.
    pub table: Table,
    /// Streaming window (streaming rules).
    pub window: Duration,
    /// Allowed lateness after a window's end (streaming rules).
    pub lateness: Duration,
    /// Interval (scheduled rules).
    pub interval: Duration,
    /// Lookback (scheduled rules).
    pub lookback: Duration,
    /// Dedupe key columns.
    pub dedupe_key: Vec<String>,
    /// Dedupe period.
    pub dedupe_period: Duration,
    /// What the rule keeps of each table it reads (from its optimized plan).
    pub retains: Vec<crate::compile::Retain>,
    /// Lines of keys in the file, for diagnostics found after parsing.
    pub(crate) lines: crate::locate::KeyLines,
}

impl Rule {
    /// The rule id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// Streaming or scheduled.
    pub fn mode(&self) -> Mode {
        self.spec.mode
    }

    /// The tags as stored on alerts: ATT&CK ids, then `zero_trust:<control>`.
    pub fn alert_tags(&self) -> Vec<String> {
        let mut tags = self.spec.tags.attack.clone();
        tags.extend(
            self.spec.tags.zero_trust.values().into_iter().map(|c| format!("zero_trust:{c}")),
        );
        tags
    }

    /// The line of a top-level key in the rule's file (1 when absent).
    pub fn line_of(&self, key: &str) -> usize {
        self.lines.line(key)
    }

    /// The line of test `index` in the rule's file.
    pub fn test_line(&self, index: usize) -> usize {
        self.lines.test_line(index)
    }
}

/// Whether `id` is a valid rule or runbook id: `[a-z0-9-]+`, not starting or ending with `-`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_and_parse() {
        assert!(Severity::Critical > Severity::High);
        assert_eq!(Severity::from_name("medium"), Some(Severity::Medium));
        assert_eq!(Severity::from_name("urgent"), None);
        let s: Severity = serde_yaml_ng::from_str("high").expect("yaml");
        assert_eq!(s, Severity::High);
        assert!(serde_yaml_ng::from_str::<Severity>("hihg").is_err());
    }

    #[test]
    fn durations_and_scalars_parse() {
        let d: Dur = serde_yaml_ng::from_str("10m").expect("yaml");
        assert_eq!(d.0, Duration::from_secs(600));
        let e = serde_yaml_ng::from_str::<Dur>("ten minutes").expect_err("bad");
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let m: BTreeMap<String, Scalar> =
            serde_yaml_ng::from_str("{a: 3389, b: \"x\", c: true, d: null, e: 10.0.0.5}")
                .expect("yaml");
        assert_eq!(m["a"].0.as_deref(), Some("3389"));
        assert_eq!(m["c"].0.as_deref(), Some("true"));
        assert_eq!(m["d"].0, None);
        assert_eq!(m["e"].0.as_deref(), Some("10.0.0.5"));
    }

    #[test]
    fn rule_keys_cover_every_field() {
        // Every key a full RuleFile serializes to must be in RULE_KEYS (the diagnosis pass
        // relies on the list).
        let rule = RuleFile {
            id: "a".into(),
            title: "t".into(),
            description: Some("d".into()),
            severity: Severity::Low,
            table: "flows".into(),
            mode: Mode::Streaming,
            window: Some(Dur(DEFAULT_WINDOW)),
            lateness: Some(Dur(DEFAULT_WINDOW)),
            interval: Some(Dur(DEFAULT_WINDOW)),
            lookback: Some(Dur(DEFAULT_WINDOW)),
            sql: "SELECT 1".into(),
            entity: vec!["x".into()],
            dedupe: None,
            runbook: "r".into(),
            tags: Tags::default(),
            tests: Vec::new(),
        };
        let value = serde_json::to_value(&rule).expect("json");
        for key in value.as_object().expect("object").keys() {
            assert!(RULE_KEYS.contains(&key.as_str()), "{key} missing from RULE_KEYS");
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(valid_id("zt-net-admin-port-exposed"));
        assert!(!valid_id("Zt"));
        assert!(!valid_id("a b"));
        assert!(!valid_id("-a"));
        assert!(!valid_id(""));
    }
}
