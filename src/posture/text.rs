//! The terminal rendering of a posture report: one table of every KPI (current value, previous
//! period, change, a daily sparkline), the values per provider and scope, and the top offenders.
//!
//! Offender cells and scopes come from the lake (attacker-controlled): control characters are
//! shown escaped (`\u{1b}`), never sent to the terminal, and long cells are cut.

use std::fmt::Write as _;

use super::report::{KpiReport, PostureReport, Verdict, format_change, format_value};

/// Longest cell shown.
const MAX_CELL: usize = 48;

/// Offender rows shown per KPI in the terminal (JSON and HTML show all of `--top`).
const OFFENDER_ROWS: usize = 5;

/// A lake value made safe for a terminal: control characters escaped, capped.
pub fn sanitize(value: &str) -> String {
    let mut out = String::new();
    for (n, c) in value.chars().enumerate() {
        if n >= MAX_CELL {
            out.push('…');
            break;
        }
        if c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A sparkline of daily values (`·` for a day without data).
fn sparkline(values: &[Option<f64>]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let (lo, hi) = present
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    values
        .iter()
        .map(|v| match v {
            None => '·',
            Some(v) if hi - lo < 1e-12 => BARS[if *v > 0.0 { 4 } else { 0 }],
            Some(v) => BARS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize],
        })
        .collect()
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Better => "better",
        Verdict::Worse => "worse",
        Verdict::Unchanged => "same",
        Verdict::Unknown => "",
    }
}

/// Lay out rows as aligned columns (first row is the header, underlined).
fn table(rows: &[Vec<String>], out: &mut String) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c].saturating_sub(cell.chars().count());
            line.push_str(cell);
            if c + 1 < row.len() {
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * columns.saturating_sub(1);
            let _ = writeln!(out, "{}", "─".repeat(total));
        }
    }
}

fn summary_row(k: &KpiReport) -> Vec<String> {
    let daily: Vec<Option<f64>> = k.daily.iter().map(|d| d.value.value).collect();
    vec![
        format!("  {}", k.title),
        format_value(k.unit, k.current.value),
        format_value(k.unit, k.previous.value),
        format_change(k.unit, k.change),
        verdict_word(k.verdict).to_owned(),
        sparkline(&daily),
    ]
}

/// The report as terminal text.
pub fn render(report: &PostureReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Zero Trust posture {} (previous period {}), generated {}\n",
        report.period.label(),
        report.previous_period.label(),
        report.generated_at
    );
    let mut rows =
        vec![["KPI", "CURRENT", "PREVIOUS", "CHANGE", "", "DAILY"].map(str::to_owned).to_vec()];
    let mut group = None;
    for k in &report.kpis {
        if group != Some(k.group) {
            group = Some(k.group);
            rows.push(vec![k.group.title().to_owned()]);
        }
        rows.push(summary_row(k));
    }
    table(&rows, &mut out);

    let _ = writeln!(out, "\nBy provider and account / severity (current period):\n");
    let mut rows =
        vec![["KPI", "PROVIDER", "SCOPE", "CURRENT", "PREVIOUS"].map(str::to_owned).to_vec()];
    for k in &report.kpis {
        for b in &k.breakdown {
            rows.push(vec![
                k.id.clone(),
                sanitize(&b.provider),
                b.scope.as_deref().map_or_else(|| "-".to_owned(), sanitize),
                format_value(k.unit, b.current.value),
                format_value(k.unit, b.previous.value),
            ]);
        }
    }
    if rows.len() == 1 {
        let _ = writeln!(out, "  no data in either period");
    } else {
        table(&rows, &mut out);
    }

    let _ = writeln!(out, "\nTop offenders (current period):");
    let mut any = false;
    for k in &report.kpis {
        let Some(t) = &k.offenders else { continue };
        if t.rows.is_empty() {
            continue;
        }
        any = true;
        let _ = writeln!(
            out,
            "\n{} — {} ({} shown of {}):",
            k.id,
            t.title,
            t.rows.len().min(OFFENDER_ROWS),
            t.rows.len()
        );
        let mut rows = vec![t.columns.iter().map(|c| sanitize(c)).collect::<Vec<_>>()];
        for r in t.rows.iter().take(OFFENDER_ROWS) {
            rows.push(r.iter().map(|c| c.as_deref().map_or_else(String::new, sanitize)).collect());
        }
        table(&rows, &mut out);
    }
    if !any {
        let _ = writeln!(out, "  none");
    }
    let _ = writeln!(
        out,
        "\nDefinitions: README \"Posture KPIs\", or `ztlake posture --html report.html`."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let s = sanitize("evil\u{1b}[31mred\u{7}\r\n\u{202e}txt");
        assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
        assert!(s.contains("\\u{1b}") && s.contains("\\u{202e}"), "{s}");
        let long = sanitize(&"x".repeat(500));
        assert_eq!(long.chars().count(), MAX_CELL + 1);
    }

    #[test]
    fn sparklines_show_gaps_and_scale() {
        assert_eq!(sparkline(&[Some(0.0), None, Some(10.0), Some(5.0)]), "▁·█▅");
        assert_eq!(sparkline(&[Some(3.0), Some(3.0)]), "▅▅");
        assert_eq!(sparkline(&[None, None]), "··");
    }
}
