//! One SVG line chart per KPI, drawn by ztlake with `plotters` (its SVG backend writes into a
//! string: no file, no font file, no script). The x axis is the period's days; the bold line
//! is the KPI over all providers, thin lines are the providers when there are several. A day
//! without data is a gap in its line, never a zero.

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::kpi::Unit;
use super::report::{KpiReport, format_duration};

/// Chart size in pixels.
const SIZE: (u32, u32) = (720, 260);

/// The overall line.
const ALL: RGBColor = RGBColor(23, 63, 140);

/// Provider lines (colour-blind friendly, after Okabe & Ito).
const PALETTE: [RGBColor; 7] = [
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
];

/// Runs of consecutive days with a value: each run is one line (gaps stay gaps).
fn runs(values: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) if v.is_finite() => run.push((i as f64, *v)),
            _ => {
                if !run.is_empty() {
                    out.push(std::mem::take(&mut run));
                }
            }
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// The upper end of the y axis.
fn y_max(unit: Unit, series: &[&[Option<f64>]]) -> f64 {
    if unit == Unit::Percent {
        return 100.0;
    }
    let max = series.iter().flat_map(|s| s.iter().flatten()).copied().fold(0.0f64, f64::max);
    if max <= 0.0 { 1.0 } else { max * 1.15 }
}

fn y_label(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Percent => format!("{v:.0}%"),
        Unit::Count => {
            if v.fract().abs() < 1e-9 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
        Unit::Seconds => format_duration(v),
    }
}

/// The SVG chart of `kpi` over `days`.
pub fn svg(kpi: &KpiReport, days: &[String]) -> Result<String> {
    let overall: Vec<Option<f64>> = kpi.daily.iter().map(|d| d.value.value).collect();
    let providers: Vec<(&str, &[Option<f64>])> = if kpi.by_provider.len() > 1 {
        kpi.by_provider.iter().map(|p| (p.provider.as_str(), p.values.as_slice())).collect()
    } else {
        Vec::new()
    };
    let mut all_series: Vec<&[Option<f64>]> = vec![&overall];
    all_series.extend(providers.iter().map(|(_, v)| *v));
    let top = y_max(kpi.unit, &all_series);
    let n = days.len().max(1);
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing the chart of {}: {e}", kpi.id);

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)
            .map_err(|e| err(&e))?;
        let day_label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            days.get(i as usize).and_then(|d| d.get(5..)).unwrap_or_default().to_owned()
        };
        let value_label = |y: &f64| y_label(kpi.unit, *y);
        chart
            .configure_mesh()
            .x_labels(n.min(10))
            .x_label_formatter(&day_label)
            .y_labels(6)
            .y_label_formatter(&value_label)
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(215, 215, 215))
            .axis_style(RGBColor(120, 120, 120))
            .label_style(("sans-serif", 12).into_font().color(&RGBColor(60, 60, 60)))
            .draw()
            .map_err(|e| err(&e))?;

        for (i, (provider, values)) in providers.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let style = ShapeStyle::from(&color).stroke_width(2);
            let mut labelled = false;
            for run in runs(values) {
                let points = run.clone();
                let series = chart
                    .draw_series(LineSeries::new(points, style).point_size(2))
                    .map_err(|e| err(&e))?;
                if !labelled {
                    labelled = true;
                    series
                        .label(provider.to_string())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                }
            }
        }
        let style = ShapeStyle::from(&ALL).stroke_width(3);
        let mut labelled = false;
        let runs_all = runs(&overall);
        for run in &runs_all {
            let series = chart
                .draw_series(LineSeries::new(run.clone(), style).point_size(3))
                .map_err(|e| err(&e))?;
            if !labelled && !providers.is_empty() {
                labelled = true;
                series
                    .label("all providers")
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
            }
        }
        if !providers.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(|e| err(&e))?;
        }
        if runs_all.is_empty() {
            let (w, h) = (SIZE.0 as i32, SIZE.1 as i32);
            let text = Text::new(
                "no data in this period",
                (w / 2 - 70, h / 2 - 8),
                ("sans-serif", 16).into_font().color(&RGBColor(150, 150, 150)),
            );
            root.draw(&text).map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_split_lines() {
        let r = runs(&[Some(1.0), None, Some(2.0), Some(3.0), None]);
        assert_eq!(r, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
        assert!(runs(&[None, None]).is_empty());
        assert_eq!(y_max(Unit::Count, &[&[None]]), 1.0);
        assert_eq!(y_max(Unit::Percent, &[&[Some(3.0)]]), 100.0);
        assert_eq!(y_label(Unit::Seconds, 90.0), "1m 30s");
    }
}
