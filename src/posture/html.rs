//! The posture report as one self-contained HTML page: inline CSS, one inline SVG chart per
//! KPI (drawn by [`super::chart`]), the current value against the previous period, the values
//! per provider and scope, the top offenders, the definition and the SQL of every KPI. No
//! script, no external font, stylesheet or image; a Content-Security-Policy forbids loading
//! anything, as a second line of defence.
//!
//! Every value from the lake (offender cells, accounts, severities, providers) is
//! attacker-controlled and goes through [`escape`]; so does every other text, ztlake's own
//! included, so no path writes unescaped text into the page.

use std::fmt::Write as _;

use anyhow::Result;

use super::kpi::{Group, Unit};
use super::report::{
    KpiReport, OffenderTable, PostureReport, Verdict, format_change, format_value,
};

/// HTML-escape text for element content and quoted attribute values. C0 control characters
/// other than tab and newline (invalid in HTML) become U+FFFD.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif;
       margin: 0; color: #1d2433; background: #f4f6fa; line-height: 1.45; }
header { background: #173f8c; color: #fff; padding: 24px 32px; }
header h1 { margin: 0 0 6px; font-size: 26px; }
header p { margin: 2px 0; opacity: 0.92; }
main { max-width: 1120px; margin: 0 auto; padding: 16px 24px 48px; }
h2 { margin: 32px 0 12px; font-size: 21px; border-bottom: 2px solid #173f8c; padding-bottom: 4px; }
h3 { margin: 0 0 8px; font-size: 18px; }
h4 { margin: 18px 0 6px; font-size: 15px; color: #333; }
section.kpi { background: #fff; border: 1px solid #d9dee8; border-radius: 8px; padding: 18px 22px;
              margin: 14px 0; }
.values { display: flex; flex-wrap: wrap; gap: 28px; align-items: baseline; margin-bottom: 8px; }
.big { font-size: 30px; font-weight: 700; color: #173f8c; }
.label { color: #5b6478; font-size: 13px; }
.better { color: #0a7a3e; font-weight: 600; }
.worse { color: #b3261e; font-weight: 600; }
figure { margin: 8px 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eceff4; border-radius: 4px; }
figcaption { color: #5b6478; font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin: 4px 0 8px;
        background: #fff; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #e6e9f0;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #eef1f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.group td { background: #dfe6f3; font-weight: 700; }
td.none { color: #7a8194; font-style: italic; }
p.definition { margin: 10px 0; }
details summary { cursor: pointer; color: #173f8c; font-size: 13px; }
pre { background: #f6f8fb; border: 1px solid #e1e5ee; padding: 10px; overflow-x: auto;
      font-size: 12px; white-space: pre-wrap; }
footer { color: #5b6478; font-size: 12px; text-align: center; padding: 16px; }
";

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Better => "better",
        Verdict::Worse => "worse",
        Verdict::Unchanged | Verdict::Unknown => "",
    }
}

fn verdict_text(v: Verdict) -> &'static str {
    match v {
        Verdict::Better => " (better)",
        Verdict::Worse => " (worse)",
        Verdict::Unchanged => " (unchanged)",
        Verdict::Unknown => "",
    }
}

/// What a value was computed from, in words (shares and means).
fn basis(k: &KpiReport) -> String {
    let v = &k.current;
    if v.value.is_none() {
        return String::new();
    }
    match (k.unit, k.id.as_str()) {
        (Unit::Percent, _) => format!("{} of {}", v.num, v.den),
        (Unit::Seconds, _) => format!("over {} alert(s)", v.den),
        _ => String::new(),
    }
}

fn better_text(k: &KpiReport) -> &'static str {
    match k.higher_is_better {
        Some(true) => "higher is better",
        Some(false) => "lower is better",
        None => "a volume to watch",
    }
}

fn unit_text(u: Unit) -> &'static str {
    match u {
        Unit::Percent => "percent",
        Unit::Count => "count",
        Unit::Seconds => "duration",
    }
}

fn summary(report: &PostureReport, out: &mut String) {
    out.push_str("<section id=\"summary\"><h2>Summary</h2>\n<table data-table=\"summary\">\n");
    out.push_str("<thead><tr><th>KPI</th><th>Current</th><th>Previous period</th><th>Change</th></tr></thead>\n<tbody>\n");
    let mut group: Option<Group> = None;
    for k in &report.kpis {
        if group != Some(k.group) {
            group = Some(k.group);
            let _ = writeln!(
                out,
                "<tr class=\"group\"><td colspan=\"4\">{}</td></tr>",
                escape(k.group.title())
            );
        }
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#kpi-{id}\">{title}</a></td><td class=\"num\">{cur}</td><td class=\"num\">{prev}</td><td class=\"num {class}\">{change}{verdict}</td></tr>",
            id = escape(&k.id),
            title = escape(&k.title),
            cur = escape(&format_value(k.unit, k.current.value)),
            prev = escape(&format_value(k.unit, k.previous.value)),
            class = verdict_class(k.verdict),
            change = escape(&format_change(k.unit, k.change)),
            verdict = escape(verdict_text(k.verdict)),
        );
    }
    out.push_str("</tbody></table></section>\n");
}

fn breakdown(k: &KpiReport, out: &mut String) {
    let _ = writeln!(out, "<h4>By provider and {}</h4>", escape(&k.scope));
    let _ = writeln!(
        out,
        "<table data-table=\"breakdown-{}\"><thead><tr><th>Provider</th><th>{}</th><th>Current</th><th>Previous period</th></tr></thead><tbody>",
        escape(&k.id),
        escape(&k.scope)
    );
    if k.breakdown.is_empty() {
        out.push_str("<tr><td class=\"none\" colspan=\"4\">No data in either period.</td></tr>\n");
    }
    for b in &k.breakdown {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&b.provider),
            b.scope.as_deref().map_or_else(|| "—".to_owned(), escape),
            escape(&format_value(k.unit, b.current.value)),
            escape(&format_value(k.unit, b.previous.value)),
        );
    }
    out.push_str("</tbody></table>\n");
}

fn offenders(k: &KpiReport, t: &OffenderTable, out: &mut String) {
    let _ = writeln!(out, "<h4>{}</h4>", escape(&t.title));
    let _ = write!(out, "<table data-table=\"offenders-{}\"><thead><tr>", escape(&k.id));
    for c in &t.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>\n");
    if t.rows.is_empty() {
        let _ = writeln!(
            out,
            "<tr><td class=\"none\" colspan=\"{}\">None in this period.</td></tr>",
            t.columns.len().max(1)
        );
    }
    for row in &t.rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", cell.as_deref().map_or_else(String::new, escape));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

fn kpi_section(report: &PostureReport, k: &KpiReport, out: &mut String) -> Result<()> {
    let id = escape(&k.id);
    let _ = writeln!(out, "<section class=\"kpi\" id=\"kpi-{id}\" data-kpi=\"{id}\">");
    let _ = writeln!(out, "<h3>{}</h3>", escape(&k.title));
    let _ = writeln!(
        out,
        "<div class=\"values\"><div><span class=\"big\">{cur}</span> <span class=\"label\">current period{basis}</span></div><div><span class=\"label\">previous period</span> {prev}</div><div class=\"{class}\">{change}{verdict}</div><div class=\"label\">{better}</div></div>",
        cur = escape(&format_value(k.unit, k.current.value)),
        basis = {
            let b = basis(k);
            if b.is_empty() { String::new() } else { format!(" · {}", escape(&b)) }
        },
        prev = escape(&format_value(k.unit, k.previous.value)),
        class = verdict_class(k.verdict),
        change = escape(&format_change(k.unit, k.change)),
        verdict = escape(verdict_text(k.verdict)),
        better = escape(better_text(k)),
    );
    let svg = super::chart::svg(k, &report.days)?;
    let _ = writeln!(
        out,
        "<figure class=\"chart\" data-chart=\"{id}\" aria-label=\"{title}, per day\">{svg}<figcaption>Per UTC day of the period; bold line: all providers{providers}. A gap is a day without data.</figcaption></figure>",
        title = escape(&k.title),
        providers = if k.by_provider.len() > 1 { ", thin lines: each provider" } else { "" },
    );
    let _ = writeln!(
        out,
        "<p class=\"definition\"><strong>Definition.</strong> {}</p>",
        escape(&k.definition)
    );
    let _ = writeln!(
        out,
        "<details><summary>SQL behind the values</summary><pre>{}</pre></details>",
        escape(k.sql.trim())
    );
    breakdown(k, out);
    if let Some(t) = &k.offenders {
        offenders(k, t, out);
    }
    out.push_str("</section>\n");
    Ok(())
}

fn definitions(report: &PostureReport, out: &mut String) {
    out.push_str("<section id=\"definitions\"><h2>Definitions</h2>\n<table data-table=\"definitions\"><thead><tr><th>KPI</th><th>Id</th><th>Unit</th><th>Better</th><th>Per</th><th>Definition</th></tr></thead><tbody>\n");
    for k in &report.kpis {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&k.title),
            escape(&k.id),
            unit_text(k.unit),
            escape(better_text(k)),
            escape(&k.scope),
            escape(&k.definition),
        );
    }
    out.push_str("</tbody></table>\n<p>Days are UTC days; the period runs from the start of its first day to the end of its last. A value shown as “no data” had no rows to be computed from (never a division by zero). Values from the logs are shown as they were logged, escaped.</p></section>\n");
}

/// The report as a self-contained HTML page.
///
/// # Errors
/// When a chart cannot be drawn.
pub fn render(report: &PostureReport) -> Result<String> {
    let mut out = String::with_capacity(256 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>ztlake — Zero Trust posture {}</title>\n<style>{STYLE}</style></head>\n<body>\n",
        escape(&report.period.label())
    );
    let _ = writeln!(
        out,
        "<header><h1>Zero Trust posture</h1><p>Period {} (UTC), compared with the previous period {}.</p><p>Generated {} by ztlake from the telemetry in the lake.</p></header>\n<main>",
        escape(&report.period.label()),
        escape(&report.previous_period.label()),
        escape(&report.generated_at),
    );
    summary(report, &mut out);
    let mut group: Option<Group> = None;
    for k in &report.kpis {
        if group != Some(k.group) {
            group = Some(k.group);
            let _ = writeln!(out, "<h2>{}</h2>", escape(k.group.title()));
        }
        kpi_section(report, k, &mut out)?;
    }
    definitions(report, &mut out);
    out.push_str("</main>\n<footer>ztlake posture report — self-contained: no scripts, no external resources.</footer>\n</body></html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_quotes_and_controls() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\"\u{0}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\u{fffd}"
        );
        assert_eq!(escape("plain\ttext\n"), "plain\ttext\n");
    }
}
