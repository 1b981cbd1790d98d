//! The on-call configuration: the `[oncall]` section of `ztlake.toml` (stage 5, delivery).
//!
//! Targets (who is paged, on which channels, with quiet hours, rate limits and the next target
//! to escalate to), routes (which alerts go to which targets, by severity, provider, account,
//! rule tag, rule id and the runbook's owner), the SMTP server, webhooks, the signed
//! acknowledge/resolve links and the retry policy. Every struct refuses unknown keys, every
//! duration is a human string (`"30s"`, `"1h"`), secrets (SMTP password, webhook URLs, routing
//! keys, the link key) come inline, from `{ env = "VAR" }` or from `{ file = "/run/secrets/x" }`
//! and never show in `Debug`. [`OncallConfig::validate`] reports every problem at once, each
//! naming its key.
//!
//! Other top-level sections of the file belong to other parts of ztlake and are ignored here.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveTime;
use serde::{Deserialize, Deserializer};
use ztlake_detections::Severity;

use crate::error::{Error, Result};

/// serde helpers for human durations.
mod dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?}: {e} (e.g. \"30s\", \"5m\")"
            ))
        })
    }
}

/// A configuration value that may be secret: inline (`"text"`), from an environment variable
/// (`{ env = "VAR" }`) or from a file (`{ file = "/run/secrets/x" }`, trailing newline removed),
/// read when the dispatcher starts. `Debug` never shows an inline value.
#[derive(Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// The value itself.
    Inline(String),
    /// The value of an environment variable.
    Env(String),
    /// The content of a file.
    File(PathBuf),
}

impl ConfigValue {
    /// The value, reading the variable or file now.
    ///
    /// # Errors
    /// A message naming the variable or file when it is unset, not UTF-8 or unreadable.
    pub fn resolve(&self) -> std::result::Result<String, String> {
        match self {
            ConfigValue::Inline(v) => Ok(v.clone()),
            ConfigValue::Env(var) => std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => format!("environment variable {var} is not set"),
                std::env::VarError::NotUnicode(_) => {
                    format!("environment variable {var} is not valid UTF-8")
                }
            }),
            ConfigValue::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|e| format!("cannot read {}: {e}", path.display())),
        }
    }
}

impl std::fmt::Debug for ConfigValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigValue::Inline(_) => f.write_str("<redacted>"),
            ConfigValue::Env(var) => write!(f, "env:{var}"),
            ConfigValue::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FromEnv {
            env: String,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FromFile {
            file: PathBuf,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Env(FromEnv),
            File(FromFile),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a string, { env = \"VAR\" } or { file = \"PATH\" }")
        })? {
            Raw::Text(v) => Ok(ConfigValue::Inline(v)),
            Raw::Env(e) => Ok(ConfigValue::Env(e.env)),
            Raw::File(f) => Ok(ConfigValue::File(f.file)),
        }
    }
}

/// `[oncall]`: routing and delivery of alerts to on-call targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OncallConfig {
    /// Directory of the durable outbox (queued notifications, delivery state, the `.eml` files
    /// when no SMTP server is configured). Default: `outbox/` inside a local lake directory
    /// (or `--outbox DIR`).
    #[serde(default)]
    pub outbox: Option<PathBuf>,
    /// Sender of every email (`Name <address>` or an address).
    #[serde(default = "default_from")]
    pub from: String,
    /// Targets for alerts no route matches. Empty: such alerts are not notified (they stay in
    /// the lake). When no targets are configured at all, each alert goes to its runbook's owner
    /// as `<owner>@localhost` — into the outbox, since nothing is sent without an SMTP server.
    #[serde(default)]
    pub default_targets: Vec<String>,
    /// The on-call targets.
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Routes, tried in order; every matching route adds its targets (until one with `stop`).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// The SMTP server. Absent: email goes to the outbox directory as `.eml` files.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    /// Webhook destinations, named; targets list them by name.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Signed acknowledge/resolve links and the `ztlake serve` endpoint.
    #[serde(default)]
    pub links: LinksConfig,
    /// Retries, backoff and updates.
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

fn default_from() -> String {
    "ztlake <ztlake@localhost>".to_owned()
}

impl Default for OncallConfig {
    fn default() -> Self {
        OncallConfig {
            outbox: None,
            from: default_from(),
            default_targets: Vec::new(),
            targets: Vec::new(),
            routes: Vec::new(),
            smtp: None,
            webhooks: Vec::new(),
            links: LinksConfig::default(),
            delivery: DeliveryConfig::default(),
        }
    }
}

/// One on-call target: a person, rotation or team, with its channels.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Unique name; routes, `default_targets` and `escalate_to` refer to it. It is also the
    /// actor recorded when someone acknowledges through this target's links.
    pub name: String,
    /// Email recipients (one message per alert to all of them).
    #[serde(default)]
    pub email: Vec<String>,
    /// Names of `[[oncall.webhooks]]` to post to.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// The target paged when an alert sent here is not acknowledged within its runbook's
    /// escalation time for the alert's severity.
    #[serde(default)]
    pub escalate_to: Option<String>,
    /// Hours in which only urgent alerts are delivered; the rest wait until the hours end.
    #[serde(default)]
    pub quiet_hours: Option<QuietHours>,
    /// At most this many messages per period; further messages wait for a free slot.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// Quiet hours of a target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start, local time `HH:MM`.
    #[serde(deserialize_with = "de_time")]
    pub start: NaiveTime,
    /// End, local time `HH:MM` (may be earlier than `start`: the hours span midnight).
    #[serde(deserialize_with = "de_time")]
    pub end: NaiveTime,
    /// IANA time zone of `start` and `end` (e.g. `Europe/Berlin`).
    #[serde(default = "default_timezone", deserialize_with = "de_tz")]
    pub timezone: chrono_tz::Tz,
    /// Alerts at or above this severity are delivered during quiet hours too.
    #[serde(default = "default_quiet_except")]
    pub except: Severity,
}

fn default_timezone() -> chrono_tz::Tz {
    chrono_tz::UTC
}

fn default_quiet_except() -> Severity {
    Severity::Critical
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<NaiveTime, D::Error> {
    let text = String::deserialize(d)?;
    NaiveTime::parse_from_str(text.trim(), "%H:%M")
        .map_err(|_| serde::de::Error::custom(format!("invalid time {text:?} (write HH:MM)")))
}

fn de_tz<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<chrono_tz::Tz, D::Error> {
    let text = String::deserialize(d)?;
    text.trim().parse::<chrono_tz::Tz>().map_err(|_| {
        serde::de::Error::custom(format!("unknown time zone {text:?} (e.g. \"Europe/Berlin\")"))
    })
}

/// A per-target rate limit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Messages allowed per period (all channels of the target together).
    pub max: u32,
    /// The period.
    #[serde(with = "dur")]
    pub per: Duration,
}

/// A route: which alerts go to which targets. Every condition given must hold; a list holds
/// when any of its values matches. A route without conditions matches every alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Optional name, shown in diagnostics.
    #[serde(default)]
    pub name: Option<String>,
    /// Only alerts of at least this severity.
    #[serde(default)]
    pub min_severity: Option<Severity>,
    /// Only alerts of these providers (`aws`, `azure`, `gcp`, `okta`, `kubernetes`, `multi`).
    #[serde(default)]
    pub providers: Vec<String>,
    /// Only alerts whose `account` entity value is one of these.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Only alerts carrying one of these rule tags (ATT&CK ids such as `T1133`, or
    /// `zero_trust:<control>`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only alerts of these rules.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only alerts whose runbook is owned by one of these teams (the runbook's `owner`).
    #[serde(default)]
    pub owners: Vec<String>,
    /// Targets the matching alerts go to.
    pub targets: Vec<String>,
    /// Stop at this route when it matches (later routes are not tried).
    #[serde(default)]
    pub stop: bool,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Implicit TLS from the first byte (SMTPS, port 465).
    Tls,
    /// STARTTLS required: a server that does not offer it is refused (port 587).
    Starttls,
    /// No encryption: only to a loopback server, and only with `allow_plaintext = true`.
    None,
}

/// `[oncall.smtp]`: the SMTP server email goes through.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name (checked against the server's certificate) or address.
    pub host: String,
    /// Port. Default: 465 for `tls`, 587 for `starttls`, 25 for `none`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls` (implicit), `starttls` (required) or `none` (loopback only).
    #[serde(default = "default_security")]
    pub security: SmtpSecurity,
    /// Must be true for `security = "none"`, which is only allowed to a loopback host.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// User name for SMTP AUTH.
    #[serde(default)]
    pub username: Option<ConfigValue>,
    /// Password for SMTP AUTH: `{ env = "VAR" }` or `{ file = "/run/secrets/smtp" }`.
    #[serde(default)]
    pub password: Option<ConfigValue>,
    /// Extra trusted root certificate(s), PEM (a private CA); the system roots stay trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Connection and command timeout.
    #[serde(default = "default_smtp_timeout", with = "dur")]
    pub timeout: Duration,
    /// Name sent in EHLO. Default: this host's name.
    #[serde(default)]
    pub hello_name: Option<String>,
}

fn default_security() -> SmtpSecurity {
    SmtpSecurity::Starttls
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(30)
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port())
            .field("security", &self.security)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

impl SmtpConfig {
    /// The port, with the default of the security mode.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Tls => 465,
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::None => 25,
        })
    }
}

/// Payload shapes of webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// ztlake's JSON document (alert, runbook, links, idempotency key).
    Json,
    /// A Slack incoming-webhook message (also Mattermost, Rocket.Chat).
    Slack,
    /// A PagerDuty Events API v2 event (`trigger`, deduplicated per alert).
    Pagerduty,
}

/// `[[oncall.webhooks]]`: a webhook destination.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique name; targets list it in `webhooks`; recorded as channel `webhook:<name>`.
    pub name: String,
    /// `json`, `slack` or `pagerduty`.
    pub format: WebhookFormat,
    /// The URL (https). Slack URLs carry a secret: `{ env = "SLACK_WEBHOOK_URL" }`. Default
    /// for `pagerduty`: `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default)]
    pub url: Option<ConfigValue>,
    /// PagerDuty integration (routing) key; required for `pagerduty`.
    #[serde(default)]
    pub routing_key: Option<ConfigValue>,
    /// Key for the `X-Ztlake-Signature: sha256=<hex HMAC of the body>` header (`json`), so the
    /// receiver can check the sender.
    #[serde(default)]
    pub signing_key: Option<ConfigValue>,
    /// Addresses (CIDRs) this webhook may reach although they are private, loopback,
    /// link-local or cloud metadata addresses — all refused otherwise. Plain `http://` is
    /// accepted only for a loopback host.
    #[serde(default)]
    pub allow_addresses: Vec<String>,
    /// Request timeout.
    #[serde(default = "default_webhook_timeout", with = "dur")]
    pub timeout: Duration,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("url", &self.url)
            .field("routing_key", &self.routing_key)
            .field("signing_key", &self.signing_key)
            .field("allow_addresses", &self.allow_addresses)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `[oncall.links]`: signed acknowledge/resolve links and the endpoint serving them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinksConfig {
    /// Where `ztlake serve` is reachable by the people who get the messages.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// HMAC key of the links (at least 32 characters): `{ env = "ZTLAKE_LINK_KEY" }` or
    /// `{ file = "…" }`. Default: a random key created once in the outbox (`link.key`), which
    /// `ztlake serve` reads when it uses the same outbox.
    #[serde(default)]
    pub key: Option<ConfigValue>,
    /// How long a link stays valid.
    #[serde(default = "default_expiry", with = "dur")]
    pub expiry: Duration,
    /// Address `ztlake serve` listens on.
    #[serde(default = "default_listen")]
    pub listen: String,
}

fn default_base_url() -> String {
    "http://127.0.0.1:8425".to_owned()
}

fn default_expiry() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_listen() -> String {
    "127.0.0.1:8425".to_owned()
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            base_url: default_base_url(),
            key: None,
            expiry: default_expiry(),
            listen: default_listen(),
        }
    }
}

/// `[oncall.delivery]`: retries and updates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Wait before the first retry; doubled after every failed attempt.
    #[serde(default = "default_retry_initial", with = "dur")]
    pub retry_initial: Duration,
    /// Longest wait between attempts.
    #[serde(default = "default_retry_max", with = "dur")]
    pub retry_max: Duration,
    /// A notification still failing this long after its first attempt is given up
    /// (recorded as `delivery_failed` with the last reason).
    #[serde(default = "default_give_up", with = "dur")]
    pub give_up_after: Duration,
    /// Shortest time between two updates of the same alert on the same channel (the newest
    /// count is sent when it passes).
    #[serde(default = "default_update_interval", with = "dur")]
    pub update_interval: Duration,
    /// How often the service looks for due notifications and escalations.
    #[serde(default = "default_poll", with = "dur")]
    pub poll_interval: Duration,
}

fn default_retry_initial() -> Duration {
    Duration::from_secs(30)
}

fn default_retry_max() -> Duration {
    Duration::from_secs(30 * 60)
}

fn default_give_up() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_update_interval() -> Duration {
    Duration::from_secs(10 * 60)
}

fn default_poll() -> Duration {
    Duration::from_secs(5)
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_initial: default_retry_initial(),
            retry_max: default_retry_max(),
            give_up_after: default_give_up(),
            update_interval: default_update_interval(),
            poll_interval: default_poll(),
        }
    }
}

/// The file as far as this crate reads it: `[oncall]`, other sections ignored.
#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    oncall: Option<OncallConfig>,
}

/// An address or CIDR block (`10.0.0.0/8`, `::1/128`, `127.0.0.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parse `addr/prefix` or a bare address.
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    /// Whether `ip` lies in the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = crate::notify::canonical_ip(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Whether `host` names this machine's loopback (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| crate::notify::canonical_ip(ip).is_loopback())
}

impl OncallConfig {
    /// The `[oncall]` section of a TOML document (the defaults when it has none), validated.
    /// `source_name` (the file) is named in errors.
    ///
    /// # Errors
    /// [`Error::Config`] with the TOML error (line and column) or every validation problem.
    pub fn from_toml(text: &str, source_name: Option<&str>) -> Result<OncallConfig> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| Error::Config {
            source_name: source_name.map(str::to_owned),
            problems: vec![e.to_string().trim_end().to_owned()],
        })?;
        let config = file.oncall.unwrap_or_default();
        config.validate().map_err(|e| match e {
            Error::Config { problems, .. } => {
                Error::Config { source_name: source_name.map(str::to_owned), problems }
            }
            other => other,
        })?;
        Ok(config)
    }

    /// The configuration from the contents of an `[oncall]` table already parsed (the service
    /// keeps the section as written), validated. `source_name` (the file) is named in errors.
    ///
    /// # Errors
    /// [`Error::Config`] with the deserialization error or every validation problem.
    pub fn from_table(table: toml::Table, source_name: Option<&str>) -> Result<OncallConfig> {
        let named = |problems: Vec<String>| Error::Config {
            source_name: source_name.map(str::to_owned),
            problems,
        };
        let config: OncallConfig =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| {
                named(vec![format!("oncall: {}", e.to_string().trim_end())])
            })?;
        config.validate().map_err(|e| match e {
            Error::Config { problems, .. } => named(problems),
            other => other,
        })?;
        Ok(config)
    }

    /// The same configuration with `dir` as the outbox when none is configured.
    pub fn with_default_outbox(mut self, dir: impl Into<PathBuf>) -> OncallConfig {
        if self.outbox.is_none() {
            self.outbox = Some(dir.into());
        }
        self
    }

    /// The target named `name`.
    pub fn target(&self, name: &str) -> Option<&TargetConfig> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The webhook named `name`.
    pub fn webhook(&self, name: &str) -> Option<&WebhookConfig> {
        self.webhooks.iter().find(|w| w.name == name)
    }

    /// Check every cross-reference and value; all problems are reported together.
    ///
    /// # Errors
    /// [`Error::Config`] listing each problem as `key: message`.
    pub fn validate(&self) -> Result<()> {
        let mut p: Vec<String> = Vec::new();
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            p.push(format!("oncall.from: {:?} is not an email address", self.from));
        }
        let mut names = BTreeSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let key = format!("oncall.targets[{i}]");
            if !valid_name(&t.name) {
                p.push(format!("{key}.name: {:?} must be 1-64 of [A-Za-z0-9._-]", t.name));
            }
            if !names.insert(t.name.as_str()) {
                p.push(format!("{key}.name: duplicate target {:?}", t.name));
            }
            if t.email.is_empty() && t.webhooks.is_empty() {
                p.push(format!("{key} ({}): no channel (give email or webhooks)", t.name));
            }
            for (j, a) in t.email.iter().enumerate() {
                if a.parse::<lettre::Address>().is_err() {
                    p.push(format!("{key}.email[{j}]: {a:?} is not an email address"));
                }
            }
            for w in &t.webhooks {
                if self.webhook(w).is_none() {
                    p.push(format!("{key}.webhooks: no [[oncall.webhooks]] named {w:?}"));
                }
            }
            if let Some(next) = &t.escalate_to
                && self.target(next).is_none()
            {
                p.push(format!("{key}.escalate_to: no target named {next:?}"));
            }
            if let Some(r) = &t.rate_limit
                && (r.max == 0 || r.per.is_zero())
            {
                p.push(format!("{key}.rate_limit: max and per must be above zero"));
            }
            if let Some(q) = &t.quiet_hours
                && q.start == q.end
            {
                p.push(format!("{key}.quiet_hours: start and end are equal"));
            }
        }
        for (i, name) in self.default_targets.iter().enumerate() {
            if self.target(name).is_none() {
                p.push(format!("oncall.default_targets[{i}]: no target named {name:?}"));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("oncall.routes[{i}]");
            if r.targets.is_empty() {
                p.push(format!("{key}.targets: a route needs at least one target"));
            }
            for name in &r.targets {
                if self.target(name).is_none() {
                    p.push(format!("{key}.targets: no target named {name:?}"));
                }
            }
        }
        if let Some(s) = &self.smtp {
            if s.host.trim().is_empty() {
                p.push("oncall.smtp.host: empty".to_owned());
            }
            if s.security == SmtpSecurity::None {
                if !is_loopback_host(&s.host) {
                    p.push(format!(
                        "oncall.smtp.security: plaintext SMTP is only allowed to a loopback server, not {:?} (use \"tls\" or \"starttls\")",
                        s.host
                    ));
                } else if !s.allow_plaintext {
                    p.push("oncall.smtp.security: \"none\" needs allow_plaintext = true (loopback servers only)".to_owned());
                }
            }
            if s.username.is_some() != s.password.is_some() {
                p.push("oncall.smtp: give both username and password, or neither".to_owned());
            }
        }
        let mut hooks = BTreeSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            let key = format!("oncall.webhooks[{i}]");
            if !valid_name(&w.name) {
                p.push(format!("{key}.name: {:?} must be 1-64 of [A-Za-z0-9._-]", w.name));
            }
            if !hooks.insert(w.name.as_str()) {
                p.push(format!("{key}.name: duplicate webhook {:?}", w.name));
            }
            if w.url.is_none() && w.format != WebhookFormat::Pagerduty {
                p.push(format!("{key}.url: required for {:?} webhooks", w.format));
            }
            if let Some(ConfigValue::Inline(url)) = &w.url
                && let Err(e) = crate::notify::webhook::check_url(url, &w.allow_cidrs())
            {
                p.push(format!("{key}.url: {e}"));
            }
            if w.format == WebhookFormat::Pagerduty && w.routing_key.is_none() {
                p.push(format!("{key}.routing_key: required for pagerduty webhooks"));
            }
            for a in &w.allow_addresses {
                if Cidr::parse(a).is_none() {
                    p.push(format!("{key}.allow_addresses: {a:?} is not an address or CIDR"));
                }
            }
        }
        match url::Url::parse(&self.links.base_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => p.push(format!(
                "oncall.links.base_url: {:?} is not an http(s) URL",
                self.links.base_url
            )),
        }
        if self.links.expiry.is_zero() {
            p.push("oncall.links.expiry: must be above zero".to_owned());
        }
        if self.links.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!("oncall.links.listen: {:?} is not an address:port", self.links.listen));
        }
        let d = &self.delivery;
        if d.retry_initial.is_zero() || d.retry_max < d.retry_initial {
            p.push(
                "oncall.delivery: retry_initial must be above zero and at most retry_max"
                    .to_owned(),
            );
        }
        if d.poll_interval.is_zero() {
            p.push("oncall.delivery.poll_interval: must be above zero".to_owned());
        }
        if p.is_empty() { Ok(()) } else { Err(Error::Config { source_name: None, problems: p }) }
    }
}

impl WebhookConfig {
    /// The parsed `allow_addresses` (invalid entries are reported by validation).
    pub fn allow_cidrs(&self) -> Vec<Cidr> {
        self.allow_addresses.iter().filter_map(|a| Cidr::parse(a)).collect()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Resolve a secret, naming the key in the error.
pub(crate) fn resolve(value: &ConfigValue, key: &str) -> Result<String> {
    value.resolve().map_err(|e| Error::config(format!("{key}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[service]
something = "for another part of ztlake"

[oncall]
from = "ztlake <alerts@example.com>"
default_targets = ["netsec"]

[[oncall.targets]]
name = "netsec"
email = ["netsec-oncall@example.com"]
webhooks = ["slack", "pd"]
escalate_to = "netsec-lead"
quiet_hours = { start = "22:00", end = "07:00", timezone = "Europe/Berlin", except = "high" }
rate_limit = { max = 20, per = "1h" }

[[oncall.targets]]
name = "netsec-lead"
email = ["lead@example.com"]

[[oncall.routes]]
min_severity = "high"
providers = ["aws"]
owners = ["network-security"]
targets = ["netsec"]
stop = true

[oncall.smtp]
host = "smtp.example.com"
security = "tls"
username = "ztlake"
password = { env = "ZTLAKE_TEST_SMTP_PASSWORD" }

[[oncall.webhooks]]
name = "slack"
format = "slack"
url = { env = "SLACK_URL" }

[[oncall.webhooks]]
name = "pd"
format = "pagerduty"
routing_key = "R0UTINGKEYinline"

[oncall.links]
base_url = "https://ztlake.example.com"
key = { file = "/run/secrets/ztlake-link-key" }
expiry = "3d"

[oncall.delivery]
retry_initial = "10s"
"#;

    #[test]
    fn a_full_section_parses_and_other_sections_are_ignored() {
        let c = OncallConfig::from_toml(FULL, Some("ztlake.toml")).expect("valid");
        assert_eq!(c.targets.len(), 2);
        let q = c.targets[0].quiet_hours.as_ref().expect("quiet");
        assert_eq!(q.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(q.except, Severity::High);
        assert_eq!(
            c.targets[0].rate_limit.as_ref().map(|r| r.per),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(c.smtp.as_ref().map(SmtpConfig::port), Some(465));
        assert_eq!(c.links.expiry, Duration::from_secs(3 * 86400));
        assert_eq!(c.delivery.retry_initial, Duration::from_secs(10));
        assert_eq!(c.delivery.retry_max, Duration::from_secs(1800));
        let debug = format!("{c:?}");
        assert!(!debug.contains("R0UTINGKEYinline"), "secrets never print: {debug}");
        assert!(debug.contains("env:ZTLAKE_TEST_SMTP_PASSWORD"), "{debug}");
        // No [oncall] at all: the defaults.
        let d = OncallConfig::from_toml("[other]\nx = 1\n", None).expect("defaults");
        assert!(d.targets.is_empty() && d.smtp.is_none());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_key() {
        let e = OncallConfig::from_toml("[oncall]\npager = 1\n", Some("z.toml")).expect_err("bad");
        let text = e.to_string();
        assert!(text.contains("unknown field `pager`") && text.contains("z.toml"), "{text}");
        let e = OncallConfig::from_toml("[oncall.delivery]\nretry_initial = \"soon\"\n", None)
            .expect_err("bad duration");
        assert!(e.to_string().contains("invalid duration \"soon\""), "{e}");
        let bad = r#"
[oncall]
from = "not an address"
default_targets = ["ghost"]
[[oncall.targets]]
name = "a"
email = ["x\r\nBcc: evil@example.com"]
escalate_to = "nobody"
webhooks = ["missing"]
[[oncall.routes]]
targets = ["nope"]
[oncall.smtp]
host = "smtp.example.com"
security = "none"
allow_plaintext = true
[[oncall.webhooks]]
name = "h"
format = "json"
url = "http://hooks.example.com/x"
[[oncall.webhooks]]
name = "p"
format = "pagerduty"
"#;
        let e = OncallConfig::from_toml(bad, None).expect_err("bad");
        let text = e.to_string();
        for needle in [
            "oncall.from: \"not an address\"",
            "oncall.default_targets[0]: no target named \"ghost\"",
            "oncall.targets[0].email[0]",
            "oncall.targets[0].escalate_to: no target named \"nobody\"",
            "oncall.targets[0].webhooks: no [[oncall.webhooks]] named \"missing\"",
            "oncall.routes[0].targets: no target named \"nope\"",
            "plaintext SMTP is only allowed to a loopback server",
            "oncall.webhooks[0].url",
            "oncall.webhooks[1].routing_key: required",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        // Plaintext to loopback needs the explicit flag.
        let e = OncallConfig::from_toml(
            "[oncall.smtp]\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n",
            None,
        )
        .expect_err("flag");
        assert!(e.to_string().contains("allow_plaintext = true"), "{e}");
        OncallConfig::from_toml(
            "[oncall.smtp]\nhost = \"127.0.0.1\"\nport = 2525\nsecurity = \"none\"\nallow_plaintext = true\n",
            None,
        )
        .expect("loopback plaintext with the flag");
    }

    #[test]
    fn a_section_kept_as_a_table_parses_the_same() {
        let doc: toml::Table = toml::from_str(FULL).expect("toml");
        let table = doc.get("oncall").and_then(|v| v.as_table()).cloned().expect("[oncall]");
        let c = OncallConfig::from_table(table, Some("ztlake.toml")).expect("valid");
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.links.expiry, Duration::from_secs(3 * 86400));
        assert!(c.outbox.is_none());
        let c = c.with_default_outbox("/lake/outbox");
        assert_eq!(c.outbox.as_deref(), Some(std::path::Path::new("/lake/outbox")));
        let c = c.with_default_outbox("/elsewhere");
        assert_eq!(
            c.outbox.as_deref(),
            Some(std::path::Path::new("/lake/outbox")),
            "a configured outbox stays"
        );
        let bad: toml::Table = toml::from_str("pager = 1\n").expect("toml");
        let e = OncallConfig::from_table(bad, Some("z.toml")).expect_err("unknown key");
        assert!(
            e.to_string().contains("unknown field `pager`") && e.to_string().contains("z.toml"),
            "{e}"
        );
        let bad: toml::Table = toml::from_str("default_targets = [\"ghost\"]\n").expect("toml");
        let e = OncallConfig::from_table(bad, None).expect_err("invalid");
        assert!(e.to_string().contains("no target named \"ghost\""), "{e}");
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c = Cidr::parse("10.0.0.0/8").expect("cidr");
        assert!(c.contains("10.1.2.3".parse().expect("ip")));
        assert!(c.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!c.contains("11.0.0.1".parse().expect("ip")));
        assert!(Cidr::parse("::1").expect("v6").contains("::1".parse().expect("ip")));
        assert!(Cidr::parse("0.0.0.0/0").expect("all").contains("8.8.8.8".parse().expect("ip")));
        assert!(Cidr::parse("10.0.0.0/33").is_none() && Cidr::parse("x").is_none());
        assert!(is_loopback_host("localhost") && is_loopback_host("127.0.0.2"));
        assert!(is_loopback_host("[::1]") && !is_loopback_host("smtp.example.com"));
    }
}
