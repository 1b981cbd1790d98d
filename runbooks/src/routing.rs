//! Routing (stage 5, delivery): which on-call targets an alert goes to, and when a target may
//! receive a message (quiet hours, rate limits).
//!
//! Routes are tried in order; every route whose conditions all hold adds its targets, until a
//! matching route with `stop = true`. An alert no route matches goes to `default_targets`.
//! Without any configured target, each runbook owner becomes a target of its own
//! (`<owner>@localhost`, delivered to the outbox), so the default setup still shows every
//! message. Quiet hours and rate limits never drop a message: they say how long it waits.

use std::collections::BTreeSet;

use chrono::{Duration as ChronoDuration, NaiveDateTime, TimeZone as _};
use ztlake_detections::Alert;

use crate::catalog::Catalog;
use crate::clock::micros;
use crate::config::{OncallConfig, QuietHours, RateLimit, RouteConfig, TargetConfig};

/// The effective configuration: the owner targets filled in when none are configured.
pub(crate) fn effective(config: &OncallConfig, catalog: &Catalog) -> OncallConfig {
    if !config.targets.is_empty() {
        return config.clone();
    }
    let mut c = config.clone();
    let owners: BTreeSet<&str> = catalog.list().iter().map(|r| r.owner.as_str()).collect();
    for owner in owners {
        let name = owner_target(owner);
        if c.target(&name).is_some() {
            continue;
        }
        c.targets.push(TargetConfig {
            name: name.clone(),
            email: vec![format!("{name}@localhost")],
            webhooks: Vec::new(),
            escalate_to: None,
            quiet_hours: None,
            rate_limit: None,
        });
        c.routes.push(RouteConfig {
            name: Some(format!("owner {owner}")),
            min_severity: None,
            providers: Vec::new(),
            accounts: Vec::new(),
            tags: Vec::new(),
            rules: Vec::new(),
            owners: vec![owner.to_owned()],
            targets: vec![name],
            stop: false,
        });
    }
    c
}

/// The target name of a runbook owner (characters outside `[A-Za-z0-9._-]` become `-`).
pub(crate) fn owner_target(owner: &str) -> String {
    let name: String = owner
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' })
        .collect();
    if name.is_empty() { "oncall".to_owned() } else { name }
}

fn route_matches(r: &RouteConfig, alert: &Alert, owner: Option<&str>) -> bool {
    let any = |list: &[String], value: Option<&str>| {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
    };
    r.min_severity.is_none_or(|s| alert.severity >= s)
        && any(&r.providers, Some(&alert.provider))
        && any(&r.accounts, alert.entity.get("account").and_then(|v| v.as_deref()))
        && any(&r.rules, Some(&alert.rule_id))
        && any(&r.owners, owner)
        && (r.tags.is_empty() || alert.tags.iter().any(|t| r.tags.contains(t)))
}

/// The targets of `alert`, whose runbook is owned by `owner`, in route order, deduplicated.
pub fn route(config: &OncallConfig, alert: &Alert, owner: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut matched = false;
    for r in &config.routes {
        if !route_matches(r, alert, owner) {
            continue;
        }
        matched = true;
        for t in &r.targets {
            if !out.contains(t) {
                out.push(t.clone());
            }
        }
        if r.stop {
            break;
        }
    }
    if !matched {
        out = config.default_targets.clone();
    }
    out
}

/// When quiet hours let a message of `alert` through to a target, if they hold it now: the
/// end of the current quiet period (µs). `None`: deliver now.
pub(crate) fn quiet_until(q: &QuietHours, alert: &Alert, now: i64) -> Option<i64> {
    if alert.severity >= q.except {
        return None;
    }
    let utc = chrono::DateTime::from_timestamp_micros(now)?;
    let local = utc.with_timezone(&q.timezone).naive_local();
    let t = local.time();
    let date = local.date();
    let (quiet, end_date) = if q.start < q.end {
        (t >= q.start && t < q.end, date)
    } else if t >= q.start {
        (true, date.succ_opt()?)
    } else {
        (t < q.end, date)
    };
    if !quiet {
        return None;
    }
    let end_local = NaiveDateTime::new(end_date, q.end);
    let end = q.timezone.from_local_datetime(&end_local).earliest().or_else(|| {
        // The end falls into a DST gap: an hour later exists.
        q.timezone.from_local_datetime(&(end_local + ChronoDuration::hours(1))).earliest()
    })?;
    Some(end.timestamp_micros().max(now + 1))
}

/// When a target under `limit`, having sent at `sent` (µs, any order), may send again; `None`:
/// now.
pub(crate) fn rate_limited_until(limit: &RateLimit, sent: &[i64], now: i64) -> Option<i64> {
    let window = micros(limit.per);
    let mut recent: Vec<i64> = sent.iter().copied().filter(|&t| t > now - window).collect();
    let max = usize::try_from(limit.max).unwrap_or(usize::MAX);
    if recent.len() < max {
        return None;
    }
    recent.sort_unstable();
    // The slot frees when the oldest of the last `max` sends leaves the window.
    let oldest = recent.get(recent.len() - max).copied()?;
    Some(oldest + window)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::NaiveTime;
    use ztlake_detections::Severity;
    use ztlake_detections::alert::{Aggregate, Evidence};

    use super::*;

    pub(crate) fn alert(severity: Severity, provider: &str, tags: &[&str]) -> Alert {
        Alert {
            alert_id: "00000000000000aa".into(),
            rule_id: "zt-net-admin-port-exposed".into(),
            title: "Admin port reachable from the internet".into(),
            severity,
            provider: provider.into(),
            entity: BTreeMap::from([
                ("dst_ip".to_owned(), Some("10.0.0.5".to_owned())),
                ("account".to_owned(), Some("123456789012".to_owned())),
            ]),
            dedupe_key: vec![Some("10.0.0.5".into())],
            first_seen: 1_700_000_000_000_000,
            last_seen: 1_700_000_060_000_000,
            count: 3,
            runbook: "exposed-admin-port".into(),
            evidence_uids: vec![],
            evidence: Evidence { aggregate: Aggregate::Sum, windows: vec![] },
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            updated: 0,
        }
    }

    fn config(text: &str) -> OncallConfig {
        OncallConfig::from_toml(text, None).expect("config")
    }

    const ROUTES: &str = r#"
[oncall]
default_targets = ["soc"]
[[oncall.targets]]
name = "soc"
email = ["soc@example.com"]
[[oncall.targets]]
name = "netsec"
email = ["netsec@example.com"]
[[oncall.targets]]
name = "aws-team"
email = ["aws@example.com"]
[[oncall.targets]]
name = "prod-account"
email = ["prod@example.com"]
[[oncall.routes]]
min_severity = "high"
owners = ["network-security"]
tags = ["T1133"]
targets = ["netsec"]
[[oncall.routes]]
providers = ["aws"]
targets = ["aws-team", "netsec"]
[[oncall.routes]]
accounts = ["123456789012"]
targets = ["prod-account"]
stop = true
[[oncall.routes]]
targets = ["soc"]
"#;

    #[test]
    fn routes_match_by_severity_provider_account_tag_and_owner() {
        let c = config(ROUTES);
        let high = alert(Severity::High, "aws", &["T1133"]);
        assert_eq!(
            route(&c, &high, Some("network-security")),
            ["netsec", "aws-team", "prod-account"],
            "every matching route adds targets, deduplicated, until stop"
        );
        assert_eq!(route(&c, &high, Some("someone-else")), ["aws-team", "netsec", "prod-account"]);
        let low = alert(Severity::Low, "gcp", &["T1133"]);
        assert_eq!(route(&c, &low, Some("network-security")), ["prod-account"]);
        let mut other_account = low.clone();
        other_account.entity.insert("account".into(), Some("999".into()));
        assert_eq!(route(&c, &other_account, None), ["soc"]);
        // Nothing matches: the default targets.
        let mut c2 = c.clone();
        c2.routes.truncate(1);
        assert_eq!(route(&c2, &low, None), ["soc"]);
    }

    #[test]
    fn without_targets_each_owner_is_a_target_in_the_outbox() {
        let c = effective(&OncallConfig::default(), &crate::catalog::tests::catalog());
        let t = c.target("netsec").expect("owner target");
        assert_eq!(t.email, ["netsec@localhost"]);
        assert_eq!(route(&c, &alert(Severity::Info, "aws", &[]), Some("netsec")), ["netsec"]);
        assert!(route(&c, &alert(Severity::Info, "aws", &[]), Some("nobody")).is_empty());
        assert_eq!(owner_target("Network Security/EU"), "Network-Security-EU");
    }

    fn at(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text).expect("time").timestamp_micros()
    }

    #[test]
    fn quiet_hours_hold_non_urgent_alerts_until_they_end() {
        let q = QuietHours {
            start: NaiveTime::from_hms_opt(22, 0, 0).expect("t"),
            end: NaiveTime::from_hms_opt(7, 0, 0).expect("t"),
            timezone: chrono_tz::Europe::Berlin,
            except: Severity::Critical,
        };
        let high = alert(Severity::High, "aws", &[]);
        // 23:30 Berlin (CET, UTC+1) on a January night → until 07:00 Berlin next morning.
        assert_eq!(
            quiet_until(&q, &high, at("2024-01-10T22:30:00Z")),
            Some(at("2024-01-11T06:00:00Z"))
        );
        // 05:00 Berlin → 07:00 Berlin the same morning.
        assert_eq!(
            quiet_until(&q, &high, at("2024-01-11T04:00:00Z")),
            Some(at("2024-01-11T06:00:00Z"))
        );
        // Daytime, and critical alerts at night: now.
        assert_eq!(quiet_until(&q, &high, at("2024-01-11T12:00:00Z")), None);
        let critical = alert(Severity::Critical, "aws", &[]);
        assert_eq!(quiet_until(&q, &critical, at("2024-01-10T22:30:00Z")), None);
        // Same-day hours (13:00–14:00 UTC).
        let lunch = QuietHours {
            start: NaiveTime::from_hms_opt(13, 0, 0).expect("t"),
            end: NaiveTime::from_hms_opt(14, 0, 0).expect("t"),
            timezone: chrono_tz::UTC,
            except: Severity::Critical,
        };
        assert_eq!(
            quiet_until(&lunch, &high, at("2024-01-11T13:15:00Z")),
            Some(at("2024-01-11T14:00:00Z"))
        );
        assert_eq!(quiet_until(&lunch, &high, at("2024-01-11T14:00:00Z")), None);
    }

    #[test]
    fn rate_limits_delay_until_a_slot_frees() {
        let limit = RateLimit { max: 2, per: Duration::from_secs(60) };
        let s = 1_000_000;
        assert_eq!(rate_limited_until(&limit, &[], 100 * s), None);
        assert_eq!(rate_limited_until(&limit, &[90 * s], 100 * s), None);
        assert_eq!(rate_limited_until(&limit, &[95 * s, 90 * s], 100 * s), Some(150 * s));
        assert_eq!(
            rate_limited_until(&limit, &[30 * s, 95 * s], 100 * s),
            None,
            "old sends expire"
        );
    }
}
