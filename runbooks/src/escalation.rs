//! Escalation (stage 5, lifecycle): an alert not acknowledged within its runbook's escalation
//! time for its severity is sent to the next target (`escalate_to` of each target of the
//! current level), and again after the same time at the next level, until someone
//! acknowledges or resolves it or no further target exists.
//!
//! The clock starts when the alert is routed (and again at each escalation), whether or not a
//! channel delivered: a channel being down is exactly when escalation matters. Severities the
//! runbook gives no time for never escalate.

use std::time::Duration;

use ztlake_detections::Severity;

use crate::config::OncallConfig;
use crate::runbook::Runbook;

/// How long an alert of `severity` may stay unacknowledged under `runbook`.
pub fn escalation_after(runbook: Option<&Runbook>, severity: Severity) -> Option<Duration> {
    runbook?.escalation.get(severity.as_str()).copied().filter(|d| !d.is_zero())
}

/// The targets the alert escalates to from `level` (in order, without those in `notified`).
pub fn next_targets(config: &OncallConfig, level: &[String], notified: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in level {
        if let Some(next) = config.target(name).and_then(|t| t.escalate_to.as_ref())
            && !notified.contains(next)
            && !out.contains(next)
        {
            out.push(next.clone());
        }
    }
    out
}

/// Whether any target of `level` has somewhere to escalate to.
pub(crate) fn can_escalate(config: &OncallConfig, level: &[String], notified: &[String]) -> bool {
    !next_targets(config, level, notified).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::catalog;

    #[test]
    fn times_come_from_the_runbook_and_chains_stop_at_known_targets() {
        let c = catalog();
        let rb = c.get("exposed-admin-port").ok();
        assert_eq!(escalation_after(rb, Severity::Critical), Some(Duration::from_secs(900)));
        assert_eq!(escalation_after(rb, Severity::High), Some(Duration::from_secs(3600)));
        assert_eq!(escalation_after(rb, Severity::Low), None);
        assert_eq!(escalation_after(None, Severity::Critical), None);
        let config = OncallConfig::from_toml(
            r#"
[[oncall.targets]]
name = "a"
email = ["a@example.com"]
escalate_to = "b"
[[oncall.targets]]
name = "b"
email = ["b@example.com"]
escalate_to = "a"
"#,
            None,
        )
        .expect("config");
        let a = vec!["a".to_owned()];
        assert_eq!(next_targets(&config, &a, &a), ["b"]);
        let both = vec!["a".to_owned(), "b".to_owned()];
        assert!(next_targets(&config, &["b".to_owned()], &both).is_empty(), "no cycles");
        assert!(!can_escalate(&config, &["b".to_owned()], &both));
    }
}
