//! The results table as parallel coordinates (Inselberg 1985; W&B's and MLflow's run comparison
//! view): one vertical axis per grid parameter, the metric last, one line per row, coloured by the
//! metric. Drawn here as SVG; the report's script makes each axis brushable (drag along it to keep
//! the lines that cross it there; click it to clear), nothing fetched.

use std::fmt::Write as _;

use polars::prelude::*;

use super::{esc, num, text};

/// Axis geometry, in SVG units.
const TOP: f64 = 40.0;
const BOTTOM: f64 = 270.0;
const HEIGHT: f64 = 300.0;
const GAP: f64 = 150.0;
const LEFT: f64 = 70.0;

/// One axis: its name and where each row crosses it.
struct Axis {
    name: String,
    /// Tick labels and their heights.
    ticks: Vec<(String, f64)>,
    /// The height each row crosses at (NaN: no value).
    y: Vec<f64>,
    /// Each row's value as shown.
    label: Vec<String>,
}

/// A grid parameter: its values in order (numerically where all are numbers), evenly spaced.
fn categorical(c: &Column, rows: usize) -> Axis {
    let values: Vec<String> = (0..rows).map(|i| text(c, i)).collect();
    let mut levels: Vec<String> = values.clone();
    levels.sort_by(|a, b| a.parse::<f64>().ok().zip(b.parse::<f64>().ok()).map(|(x, y)| x.total_cmp(&y)).unwrap_or_else(|| a.cmp(b)));
    levels.dedup();
    let at = |k: usize| if levels.len() < 2 { (TOP + BOTTOM) / 2.0 } else { BOTTOM - k as f64 * (BOTTOM - TOP) / (levels.len() - 1) as f64 };
    let y = values.iter().map(|v| levels.iter().position(|l| l == v).map_or(f64::NAN, at)).collect();
    Axis { name: c.name().to_string(), ticks: levels.iter().enumerate().map(|(k, l)| (l.clone(), at(k))).collect(), y, label: values }
}

/// The metric: linear from its smallest to its largest value.
fn linear(name: &str, v: &[f64]) -> Axis {
    let (lo, hi) = v.iter().filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
    let at = |x: f64| if hi > lo { BOTTOM - (x - lo) / (hi - lo) * (BOTTOM - TOP) } else { (TOP + BOTTOM) / 2.0 };
    let ticks = if lo.is_finite() { vec![(num(lo), at(lo)), (num((lo + hi) / 2.0), at((lo + hi) / 2.0)), (num(hi), at(hi))] } else { Vec::new() };
    let y = v.iter().map(|x| if x.is_finite() { at(*x) } else { f64::NAN }).collect();
    Axis { name: name.to_string(), ticks, y, label: v.iter().map(|x| num(*x)).collect() }
}

/// Viridis at `t` in [0, 1] (five stops, linear between them).
fn viridis(t: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 } * 4.0;
    let k = (t.floor() as usize).min(3);
    let f = t - k as f64;
    let (a, b) = (STOPS[k], STOPS[k + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    format!("#{:02x}{:02x}{:02x}", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The view of `df`: an axis per column named in `params` that varies, then `metric`; `None`
/// when no parameter varies or the metric is missing (a single cell needs no such view).
pub(super) fn view(df: &DataFrame, params: &[&str], metric: &str) -> Option<String> {
    let rows = df.height();
    let m = df.column(metric).ok()?.cast(&DataType::Float64).ok()?;
    let values: Vec<f64> = m.f64().ok()?.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    let mut axes: Vec<Axis> = params.iter().filter_map(|p| df.column(p).ok()).map(|c| categorical(c, rows)).filter(|a| a.ticks.len() > 1).collect();
    if axes.is_empty() || rows < 2 {
        return None;
    }
    axes.push(linear(metric, &values));
    let (lo, hi) = values.iter().filter(|x| x.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(*x), b.max(*x)));
    let width = LEFT * 2.0 + GAP * (axes.len() - 1) as f64;
    let x = |k: usize| LEFT + GAP * k as f64;
    let mut svg = format!(
        "<figure class=parcoords><svg class=parcoords viewBox='0 0 {width} {HEIGHT}' width='{width}' height='{HEIGHT}' role=img \
         aria-label='parallel coordinates: {} against {}'><g class=lines>",
        esc(&axes[..axes.len() - 1].iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")),
        esc(metric)
    );
    for (i, value) in values.iter().enumerate() {
        let points: Vec<String> =
            axes.iter().enumerate().filter(|(_, a)| a.y[i].is_finite()).map(|(k, a)| format!("{},{:.1}", x(k), a.y[i])).collect();
        let ys: Vec<String> = axes.iter().map(|a| format!("{:.1}", a.y[i])).collect();
        let t = if hi > lo { (value - lo) / (hi - lo) } else { 1.0 };
        let what: Vec<String> = axes.iter().map(|a| format!("{}={}", a.name, a.label[i])).collect();
        let _ = write!(
            svg,
            "<polyline points='{}' data-y='{}' stroke='{}'><title>{}</title></polyline>",
            points.join(" "),
            ys.join(" "),
            viridis(t),
            esc(&what.join(", "))
        );
    }
    svg.push_str("</g>");
    for (k, a) in axes.iter().enumerate() {
        let _ = write!(
            svg,
            "<g class=axis data-axis='{k}'><line x1='{0}' x2='{0}' y1='{TOP}' y2='{BOTTOM}'/><text class=name x='{0}' y='{1}'>{2}</text>",
            x(k),
            TOP - 18.0,
            esc(&a.name)
        );
        for (label, y) in &a.ticks {
            let _ = write!(svg, "<text class=tick x='{}' y='{:.1}'>{}</text>", x(k) - 6.0, y + 4.0, esc(label));
        }
        let _ = write!(
            svg,
            "<rect class=sel x='{}' width='12' y='0' height='0'/><rect class=brush x='{}' y='{TOP}' width='24' height='{}'/></g>",
            x(k) - 6.0,
            x(k) - 12.0,
            BOTTOM - TOP
        );
    }
    let _ = write!(
        svg,
        "</svg><figcaption>One line per row ({rows}), coloured by {m} (dark: low, yellow: high). Drag along an axis to keep the lines that cross it there; click an axis to clear it. <span class=selected>{rows} of {rows} lines</span></figcaption></figure>",
        m = esc(metric)
    );
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameters are evenly spaced in numeric order; the metric is linear between its extremes;
    /// a constant parameter gets no axis.
    #[test]
    fn axes_place_each_row_where_it_belongs() {
        let df = df!("mu2" => [2.0, 0.0, 0.5, 0.0], "dataset" => ["m", "m", "m", "m"], "auc" => [0.9, 0.8, 1.0, 0.85]).unwrap();
        let svg = view(&df, &["mu2", "dataset"], "auc").unwrap();
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert_eq!(svg.matches("class=axis").count(), 2, "mu2 and auc; dataset does not vary");
        // mu2 2.0 at the top (40), 0.0 at the bottom (270), 0.5 between; auc 0.9 at 155, 1.0 at 40.
        assert!(svg.contains("data-y='40.0 155.0'"), "{svg}");
        assert!(svg.contains("data-y='270.0 270.0'"), "{svg}");
        assert!(svg.contains("data-y='155.0 40.0'"), "{svg}");
        assert!(view(&df, &["dataset"], "auc").is_none(), "no varying parameter, no view");
    }
}
