//! What every message says: subject, plain-text body and HTML body of a notification.
//!
//! Alert values are attacker-controlled: [`clean`] removes control characters (CR and LF
//! included, also Unicode line separators and bidirectional overrides) and caps them before
//! they reach any text; the HTML body escapes everything on top. Bodies are returned with CRLF
//! line endings only.

use std::fmt::Write as _;

use ztlake_detections::Alert;

use super::{MessageKind, Notification};
use crate::clock::rfc3339;

/// Longest subject, in characters.
const MAX_SUBJECT: usize = 180;
/// Longest single value in a message, in characters.
const MAX_VALUE: usize = 256;
/// Evidence windows listed in a message.
const MAX_WINDOWS_SHOWN: usize = 10;

/// `value` made safe for one line: control characters, line and paragraph separators and
/// bidirectional overrides become spaces, runs of spaces collapse, at most `cap` characters
/// (then `…`).
pub fn clean(value: &str, cap: usize) -> String {
    let mut out = String::with_capacity(value.len().min(cap * 4));
    let mut count = 0usize;
    let mut last_space = false;
    for c in value.chars() {
        let c = if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        if count == cap {
            out.push('…');
            return out;
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out
}

/// The entity as `name=value` pairs (values cleaned and capped).
pub fn entity_line(alert: &Alert) -> String {
    let parts: Vec<String> = alert
        .entity
        .iter()
        .map(|(k, v)| {
            format!("{}={}", clean(k, 64), v.as_deref().map_or("NULL".to_owned(), |v| clean(v, 64)))
        })
        .collect();
    clean(&parts.join(" "), MAX_VALUE)
}

/// The evidence windows, one line each: start, count, summary (cleaned).
pub fn evidence_line(alert: &Alert) -> Vec<String> {
    let mut lines: Vec<String> = alert
        .evidence
        .windows
        .iter()
        .take(MAX_WINDOWS_SHOWN)
        .map(|w| {
            let mut line = format!("{}  count {}", clean(&w.start, 40), w.count);
            if !w.summary.is_empty() {
                line.push_str("  ");
                line.push_str(&clean(&w.summary, MAX_VALUE));
            }
            line
        })
        .collect();
    let more = alert.evidence.windows.len().saturating_sub(MAX_WINDOWS_SHOWN);
    if more > 0 {
        lines.push(format!("… and {more} more window(s)"));
    }
    lines
}

/// The subject line (one line, cleaned, capped).
pub fn subject(n: &Notification) -> String {
    let a = &n.alert;
    let prefix = match n.kind {
        MessageKind::New => format!("[ztlake] {}", a.severity.as_str().to_ascii_uppercase()),
        MessageKind::Update => {
            format!(
                "[ztlake] Update ({} events) {}",
                a.count,
                a.severity.as_str().to_ascii_uppercase()
            )
        }
        MessageKind::Escalation => {
            format!("[ztlake] ESCALATED {}", a.severity.as_str().to_ascii_uppercase())
        }
    };
    clean(&format!("{prefix} {}: {}", a.title, entity_line(a)), MAX_SUBJECT)
}

fn facts(n: &Notification) -> Vec<(&'static str, String)> {
    let a = &n.alert;
    let count = match n.previous_count {
        Some(p) if n.kind == MessageKind::Update => format!("{} (was {p})", a.count),
        _ => a.count.to_string(),
    };
    let mut v = vec![
        ("Severity", a.severity.as_str().to_ascii_uppercase()),
        ("Rule", clean(&a.rule_id, MAX_VALUE)),
        ("Provider", clean(&a.provider, 64)),
        ("Entity", entity_line(a)),
        ("Count", count),
        ("First seen", rfc3339(a.first_seen)),
        ("Last seen", rfc3339(a.last_seen)),
        ("Alert id", clean(&a.alert_id, 64)),
        ("Runbook", clean(&a.runbook, 128)),
    ];
    if !a.tags.is_empty() {
        let tags: Vec<String> = a.tags.iter().map(|t| clean(t, 64)).collect();
        v.push(("Tags", clean(&tags.join(", "), MAX_VALUE)));
    }
    if n.kind == MessageKind::Escalation && !n.escalated_from.is_empty() {
        v.push(("Escalated", format!("not acknowledged by {}", n.escalated_from.join(", "))));
    }
    v
}

/// CRLF line endings only: lone CR, lone LF and CRLF all become CRLF.
pub(crate) fn crlf(text: &str) -> String {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    unified.replace('\n', "\r\n")
}

/// The plain-text body (CRLF line endings).
pub fn text_body(n: &Notification) -> String {
    let a = &n.alert;
    let mut out = String::new();
    let _ = writeln!(out, "{}", clean(&a.title, MAX_VALUE));
    let _ = writeln!(out);
    for (k, v) in facts(n) {
        let _ = writeln!(out, "{:<11} {v}", format!("{k}:"));
    }
    let evidence = evidence_line(a);
    if !evidence.is_empty() {
        let _ = writeln!(out, "\nEvidence:");
        for line in evidence {
            let _ = writeln!(out, "  {line}");
        }
    }
    let _ = writeln!(out, "\nAcknowledge: {}", n.ack_url);
    let _ = writeln!(out, "Resolve:     {}", n.resolve_url);
    let _ =
        writeln!(out, "(each link opens a confirmation page; nothing changes until you confirm)");
    match &n.runbook {
        Some(rb) => {
            let _ = writeln!(
                out,
                "\nRunbook: {} ({}), owner {}",
                clean(&rb.title, MAX_VALUE),
                clean(&rb.id, 128),
                clean(&rb.owner, 128)
            );
            let _ = writeln!(out, "{}", "-".repeat(72));
            out.push_str(&rb.text);
            if !rb.text.ends_with('\n') {
                out.push('\n');
            }
        }
        None => {
            let _ = writeln!(out, "\nRunbook {} is not in the catalog.", clean(&a.runbook, 128));
        }
    }
    crlf(&out)
}

/// `text` escaped for HTML text and attribute values.
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The HTML alternative (every value escaped; CRLF line endings).
pub fn html_body(n: &Notification) -> String {
    let a = &n.alert;
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n");
    let _ = writeln!(out, "<h2>{}</h2>", html_escape(&clean(&a.title, MAX_VALUE)));
    out.push_str("<table>\n");
    for (k, v) in facts(n) {
        let _ = writeln!(out, "<tr><th align=\"left\">{k}</th><td>{}</td></tr>", html_escape(&v));
    }
    out.push_str("</table>\n");
    let evidence = evidence_line(a);
    if !evidence.is_empty() {
        out.push_str("<h3>Evidence</h3>\n<ul>\n");
        for line in evidence {
            let _ = writeln!(out, "<li>{}</li>", html_escape(&line));
        }
        out.push_str("</ul>\n");
    }
    let _ = writeln!(
        out,
        "<p><a href=\"{}\">Acknowledge</a> &middot; <a href=\"{}\">Resolve</a> (a confirmation page opens; nothing changes until you confirm)</p>",
        html_escape(&n.ack_url),
        html_escape(&n.resolve_url)
    );
    match &n.runbook {
        Some(rb) => {
            let _ = writeln!(
                out,
                "<h3>Runbook: {} ({}), owner {}</h3>",
                html_escape(&clean(&rb.title, MAX_VALUE)),
                html_escape(&clean(&rb.id, 128)),
                html_escape(&clean(&rb.owner, 128))
            );
            let _ = writeln!(out, "<pre>{}</pre>", html_escape(&rb.text));
        }
        None => {
            let _ = writeln!(
                out,
                "<p>Runbook {} is not in the catalog.</p>",
                html_escape(&clean(&a.runbook, 128))
            );
        }
    }
    out.push_str("</body></html>\n");
    crlf(&out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::routing::tests::alert;
    use ztlake_detections::Severity;
    use ztlake_detections::alert::WindowEvidence;

    pub(crate) fn notification(kind: MessageKind) -> Notification {
        let mut a = alert(Severity::High, "aws", &["T1133"]);
        a.entity.insert("user".into(), Some("x\r\nBcc: attacker@example.com".into()));
        a.evidence.windows.push(WindowEvidence {
            start: "2023-11-14T22:10:00Z".into(),
            count: 3,
            summary: "sources=2 note=<script>alert(1)</script>\n.\nafter".into(),
        });
        Notification {
            alert: a,
            kind,
            previous_count: Some(1),
            escalated_from: vec!["netsec".into()],
            target: "netsec".into(),
            recipients: vec!["netsec@example.com".into()],
            channel: "email".into(),
            incident_key: "ztlake-00000000000000aa".into(),
            entry_key: "0123456789abcdef".into(),
            revision: 0,
            idempotency_key: "0123456789abcdef-0".into(),
            runbook: Some(super::super::RunbookText {
                id: "exposed-admin-port".into(),
                title: "Admin port exposed".into(),
                owner: "netsec".into(),
                text: "## Triage\nCheck 10.0.0.5.\n.\n..leading dots\nlast line\n".into(),
            }),
            ack_url: "https://z.example.com/ack?t=v1.abc.def".into(),
            resolve_url: "https://z.example.com/resolve?t=v1.abc.ghi".into(),
            time: 1_700_000_100_000_000,
        }
    }

    #[test]
    fn values_stay_on_one_line_and_are_capped() {
        assert_eq!(clean("a\r\nb\tc\u{2028}d\u{202e}e", 100), "a b c d e");
        assert_eq!(clean("abcdef", 3), "abc…");
        assert_eq!(clean("ab", 2), "ab");
        let n = notification(MessageKind::New);
        let s = subject(&n);
        assert!(!s.contains('\r') && !s.contains('\n'), "{s:?}");
        assert!(s.starts_with("[ztlake] HIGH Admin port reachable from the internet: "), "{s}");
        assert!(s.contains("user=x Bcc: attacker@example.com"), "{s}");
        assert!(
            subject(&notification(MessageKind::Update))
                .starts_with("[ztlake] Update (3 events) HIGH")
        );
        assert!(
            subject(&notification(MessageKind::Escalation)).starts_with("[ztlake] ESCALATED HIGH")
        );
    }

    #[test]
    fn bodies_carry_the_alert_links_and_runbook_with_crlf_only() {
        let n = notification(MessageKind::Update);
        let text = text_body(&n);
        for needle in [
            "Severity:   HIGH",
            "Rule:       zt-net-admin-port-exposed",
            "Entity:     account=123456789012 dst_ip=10.0.0.5 user=x Bcc: attacker@example.com",
            "Count:      3 (was 1)",
            "First seen: 2023-11-14T22:13:20Z",
            "Acknowledge: https://z.example.com/ack?t=v1.abc.def",
            "Resolve:     https://z.example.com/resolve?t=v1.abc.ghi",
            "Runbook: Admin port exposed (exposed-admin-port), owner netsec",
            "Check 10.0.0.5.",
            "sources=2 note=<script>alert(1)</script> . after",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.replace("\r\n", "").contains(['\r', '\n']), "CRLF only");
        let html = html_body(&n);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("<a href=\"https://z.example.com/ack?t=v1.abc.def\">Acknowledge</a>")
        );
        assert!(!html.replace("\r\n", "").contains(['\r', '\n']));
        assert_eq!(crlf("a\nb\r\nc\rd"), "a\r\nb\r\nc\r\nd");
    }
}
