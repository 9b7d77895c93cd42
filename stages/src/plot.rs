//! Report figures with plotters: ROC curves, t-SNE panels and Grad-CAM overlays, as PNG (and SVG
//! for the line plots). Text uses the bundled DejaVu Sans, so no system fonts are needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{io_err, Error, Result};

static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn fonts() {
    REGISTER.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

fn perr<E: std::fmt::Debug>(e: E) -> Error {
    Error::Data(format!("plot: {e:?}"))
}

/// Distinct, colour-blind-safe colours (Okabe-Ito).
pub const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Renders into an RGB buffer and writes a PNG.
pub fn png(path: &Path, size: (u32, u32), draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>) -> Result<()> {
    fonts();
    let mut buf = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        draw(&root)?;
        root.present().map_err(perr)?;
    }
    write_png(path, size, &buf)
}

pub fn svg(path: &Path, size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<()> {
    fonts();
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(perr)?;
    draw(&root)?;
    root.present().map_err(perr)
}

pub fn write_png(path: &Path, size: (u32, u32), rgb: &[u8]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), size.0, size.1);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(perr)?;
    w.write_image_data(rgb).map_err(perr)?;
    Ok(())
}

/// One ROC curve with its legend label.
pub struct Curve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Where the curve is a mean over seeds: (FPR, lowest TPR, highest TPR) of the seeds, drawn
    /// as a shaded band behind it.
    pub band: Band,
}

/// (FPR, lowest TPR, highest TPR) of several ROC curves at each FPR of a grid.
pub type Band = Vec<(f64, f64, f64)>;

/// FPRs at which seeds' ROC curves are averaged: 0 to 1 in steps of 0.005.
const GRID: usize = 200;

/// The vertical average of ROC curves (each as points by increasing FPR; Fawcett 2006, "An
/// introduction to ROC analysis", Pattern Recognition Letters 27(8), section 8.1): at each FPR of a
/// fixed grid, the mean of the seeds' TPRs ([`tpr_at`]), with their lowest and highest as a band.
pub fn mean_roc(curves: &[Vec<(f64, f64)>]) -> (Vec<(f64, f64)>, Band) {
    let (mut mean, mut band) = (Vec::new(), Vec::new());
    if curves.is_empty() {
        return (mean, band);
    }
    for i in 0..=GRID {
        let x = i as f64 / GRID as f64;
        let tprs: Vec<f64> = curves.iter().map(|c| tpr_at(c, x)).collect();
        let m = tprs.iter().sum::<f64>() / tprs.len() as f64;
        mean.push((x, m));
        band.push((x, tprs.iter().copied().fold(f64::INFINITY, f64::min), tprs.iter().copied().fold(f64::NEG_INFINITY, f64::max)));
    }
    (mean, band)
}

pub fn roc<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, curves: &[Curve]) -> Result<()> {
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 24))
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..1.0f64)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc("False positive rate")
        .y_desc("True positive rate")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(perr)?;
    chart
        .draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 6, 4, RGBColor(150, 150, 150).stroke_width(1)))
        .map_err(perr)?
        .label("chance (AUC 0.5)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(150, 150, 150)));
    // Curves that coincide (several variants often share a ROC) stay apart: each has its own
    // colour, dash pattern and marker shape, the markers at FPRs staggered per curve.
    let n = curves.len().max(1);
    // Bands first, under every line.
    for (i, c) in curves.iter().enumerate().filter(|(_, c)| !c.band.is_empty()) {
        let color = PALETTE[i % PALETTE.len()];
        let outline: Vec<(f64, f64)> = c.band.iter().map(|b| (b.0, b.1)).chain(c.band.iter().rev().map(|b| (b.0, b.2))).collect();
        chart.draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18).filled()))).map_err(perr)?;
    }
    for (i, c) in curves.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let style = color.stroke_width(3);
        let points: Vec<(f64, f64)> = c.points.clone();
        let series = match i % 3 {
            0 => chart.draw_series(LineSeries::new(points.iter().copied(), style)),
            1 => chart.draw_series(DashedLineSeries::new(points.iter().copied(), 14, 7, style)),
            _ => chart.draw_series(DashedLineSeries::new(points.iter().copied(), 3, 6, style)),
        };
        let shape = i % MARKERS;
        series
            .map_err(perr)?
            .label(c.label.clone())
            .legend(move |(x, y)| EmptyElement::at((x, y)) + PathElement::new(vec![(0, 0), (24, 0)], style) + marker(shape, (12, 0), color));
        let marks: Vec<(f64, f64)> = (0..5).map(|k| (k as f64 + (i + 1) as f64 / (n + 1) as f64) / 5.0).map(|x| (x, tpr_at(&points, x))).collect();
        chart.draw_series(marks.into_iter().map(|p| EmptyElement::at(p) + marker(shape, (0, 0), color))).map_err(perr)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(180, 180, 180))
        .draw()
        .map_err(perr)?;
    Ok(())
}

/// Marker shapes of ROC curves, in order: circle, triangle, square, cross.
const MARKERS: usize = 4;

/// Marker `shape` centred at `at` (pixels, relative to the element's anchor).
fn marker<DB: DrawingBackend>(shape: usize, at: (i32, i32), color: RGBColor) -> DynElement<'static, DB, (i32, i32)> {
    let (x, y) = at;
    match shape % MARKERS {
        0 => Circle::new((x, y), 5, color.filled()).into_dyn(),
        1 => Polygon::new(vec![(x, y - 6), (x - 6, y + 5), (x + 6, y + 5)], color.filled()).into_dyn(),
        2 => Rectangle::new([(x - 5, y - 5), (x + 5, y + 5)], color.filled()).into_dyn(),
        _ => Cross::new((x, y), 5, color.stroke_width(2)).into_dyn(),
    }
}

/// The true positive rate of a ROC curve (points by increasing FPR) at false positive rate `x`:
/// the highest TPR reached at or before `x`.
pub fn tpr_at(points: &[(f64, f64)], x: f64) -> f64 {
    points.iter().filter(|p| p.0 <= x).map(|p| p.1).fold(0.0, f64::max)
}

/// One t-SNE panel: 2-D points with a normal (0) / anomaly (1) label.
pub struct Scatter {
    pub title: String,
    pub points: Vec<([f32; 2], i64)>,
}

/// One pair of axis limits for every panel (with 5% padding), so panels compare at one scale.
pub fn shared_limits(panels: &[Scatter]) -> (std::ops::Range<f32>, std::ops::Range<f32>) {
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for ([x, y], _) in panels.iter().flat_map(|p| &p.points) {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x0 > x1 {
        return (-1.0..1.0, -1.0..1.0);
    }
    let pad_x = (x1 - x0).max(1e-6) * 0.05;
    let pad_y = (y1 - y0).max(1e-6) * 0.05;
    ((x0 - pad_x)..(x1 + pad_x), (y0 - pad_y)..(y1 + pad_y))
}

const NORMAL: RGBColor = RGBColor(0, 114, 178);
const ANOMALY: RGBColor = RGBColor(213, 94, 0);

/// t-SNE panels (van der Maaten and Hinton 2008), one per model, at one shared scale. t-SNE
/// coordinates have no units, so the axes carry no tick labels; one legend sits above the panels,
/// off the data.
pub fn tsne_panels<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, panels: &[Scatter]) -> Result<()> {
    let root = root.titled(title, ("sans-serif", 26)).map_err(perr)?;
    let (legend, root) = root.split_vertically(30);
    let w = legend.dim_in_pixel().0 as i32;
    for (k, (name, color)) in [("normal (the trained class)", NORMAL), ("anomaly (other classes)", ANOMALY)].into_iter().enumerate() {
        let x = w / 2 - 230 + 260 * k as i32;
        legend.draw(&Circle::new((x, 14), 6, color.filled())).map_err(perr)?;
        legend.draw(&Text::new(name, (x + 14, 5), ("sans-serif", 16))).map_err(perr)?;
    }
    let (xr, yr) = shared_limits(panels);
    let cols = panels.len().clamp(1, 3);
    let rows = panels.len().div_ceil(cols).max(1);
    let areas = root.split_evenly((rows, cols));
    for (area, p) in areas.iter().zip(panels) {
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(20)
            .y_label_area_size(20)
            .build_cartesian_2d(xr.clone(), yr.clone())
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .x_desc("t-SNE 1")
            .y_desc("t-SNE 2")
            .axis_desc_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        // Anomalies first, normals on top: the normal cluster is what a one-class model learns.
        for (label, color) in [(1, ANOMALY), (0, NORMAL)] {
            chart
                .draw_series(p.points.iter().filter(|(_, l)| *l == label).map(|([x, y], _)| Circle::new((*x, *y), 2, color.mix(0.55).filled())))
                .map_err(perr)?;
        }
    }
    Ok(())
}

/// Viridis (matplotlib's perceptually uniform colormap, as colorous gives it) at `t` in [0, 1]
/// (clamped): RGB in [0, 255].
pub fn viridis(t: f64) -> [f64; 3] {
    let c = colorous::VIRIDIS.eval_continuous(t.clamp(0.0, 1.0));
    [c.r as f64, c.g as f64, c.b as f64]
}

/// One image as RGB rows: `pixels` [C][H][W] in [0, 1] (C = 1 or 3), optional heatmap [H][W].
pub struct Cell {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub pixels: Vec<f32>,
    pub heat: Option<Vec<f32>>,
    /// Printed under the image (e.g. its true class, or the model's score of it).
    pub caption: Option<String>,
}

/// Heat below this (of a map normalised to [0, 1]) is not drawn: the image shows through where the
/// score does not depend on the pixels, instead of a wash of low colour.
pub const HEAT_FLOOR: f64 = 0.2;

/// Opacity of the heat overlay.
const HEAT_ALPHA: f64 = 0.6;

impl Cell {
    fn rgb(&self, y: usize, x: usize) -> RGBColor {
        self.rgb_with(y, x, self.heat.as_ref().map(|h| h[y * self.w + x] as f64))
    }

    /// Pixel (y, x) of the image with heat `heat` drawn over it (viridis above the floor).
    fn rgb_with(&self, y: usize, x: usize, heat: Option<f64>) -> RGBColor {
        let px = |c: usize| self.pixels[c * self.h * self.w + y * self.w + x].clamp(0.0, 1.0) as f64 * 255.0;
        let base = if self.channels == 3 { [px(0), px(1), px(2)] } else { [px(0); 3] };
        let out = match heat {
            Some(v) if v >= HEAT_FLOOR => {
                let c = viridis(heat_position(v));
                [0, 1, 2].map(|i| base[i] * (1.0 - HEAT_ALPHA) + c[i] * HEAT_ALPHA)
            }
            _ => base,
        };
        RGBColor(out[0] as u8, out[1] as u8, out[2] as u8)
    }

    /// The heatmap sampled bilinearly at (fx, fy) in pixel coordinates (edges clamped).
    fn heat_at(&self, fx: f64, fy: f64) -> Option<f64> {
        let h = self.heat.as_ref()?;
        let (fx, fy) = (fx.clamp(0.0, (self.w - 1) as f64), fy.clamp(0.0, (self.h - 1) as f64));
        let (x0, y0) = (fx.floor() as usize, fy.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
        let (tx, ty) = (fx - x0 as f64, fy - y0 as f64);
        let v = |y: usize, x: usize| h[y * self.w + x] as f64;
        Some((v(y0, x0) * (1.0 - tx) + v(y0, x1) * tx) * (1.0 - ty) + (v(y1, x0) * (1.0 - tx) + v(y1, x1) * tx) * ty)
    }
}

/// Where heat `v` (>= the floor) sits on the colour bar: the floor maps to the colormap's start.
fn heat_position(v: f64) -> f64 {
    ((v - HEAT_FLOOR) / (1.0 - HEAT_FLOOR)).clamp(0.0, 1.0)
}

/// A vertical colour bar for the heat overlay (viridis from the floor to 1), with its labels.
fn colour_bar<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, x0: i32, y0: i32, height: i32) -> Result<()> {
    let steps = 64;
    for k in 0..steps {
        let t = 1.0 - k as f64 / steps as f64;
        let c = viridis(t);
        let (a, b) = (y0 + k * height / steps, y0 + (k + 1) * height / steps);
        root.draw(&Rectangle::new([(x0, a), (x0 + 16, b)], RGBColor(c[0] as u8, c[1] as u8, c[2] as u8).filled())).map_err(perr)?;
    }
    root.draw(&Rectangle::new([(x0, y0), (x0 + 16, y0 + height)], RGBColor(120, 120, 120))).map_err(perr)?;
    let font = ("sans-serif", 13).into_font();
    root.draw(&Text::new("1.0", (x0 + 20, y0 - 2), font.clone())).map_err(perr)?;
    root.draw(&Text::new(format!("{HEAT_FLOOR}"), (x0 + 20, y0 + height - 12), font.clone())).map_err(perr)?;
    root.draw(&Text::new("relevance", (x0 - 8, y0 + height + 6), font.clone())).map_err(perr)?;
    root.draw(&Text::new(format!("(< {HEAT_FLOOR}: none)"), (x0 - 18, y0 + height + 22), font)).map_err(perr)?;
    Ok(())
}

/// A grid of images: one row per label (several lines where it holds `\n`), same columns (images)
/// in every row. Heatmaps (Grad-CAM, normalised to [0, 1]; bilinearly upsampled by `explain`) are
/// drawn in viridis above [`HEAT_FLOOR`], with a colour bar on the right.
pub fn image_grid<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, title: &str, rows: &[(String, Vec<Cell>)]) -> Result<()> {
    let root = root.titled(title, ("sans-serif", 24)).map_err(perr)?;
    let (w, h) = root.dim_in_pixel();
    let label_w = 190i32;
    let has_heat = rows.iter().any(|r| r.1.iter().any(|c| c.heat.is_some()));
    let bar_w = if has_heat { 90 } else { 0 };
    let ncols = rows.iter().map(|r| r.1.len()).max().unwrap_or(1).max(1) as i32;
    let nrows = rows.len().max(1) as i32;
    let caption_h = if rows.iter().any(|r| r.1.iter().any(|c| c.caption.is_some())) { 18 } else { 0 };
    let cell = (((w as i32 - label_w - bar_w - 10) / ncols).min((h as i32 - 10) / nrows - caption_h) - 6).max(8);
    if has_heat {
        let bar_h = (h as i32 / 2).min(260);
        colour_bar(&root, w as i32 - bar_w + 20, (h as i32 - bar_h) / 2 - 20, bar_h)?;
    }
    for (r, (label, cells)) in rows.iter().enumerate() {
        let y0 = 5 + r as i32 * (cell + caption_h + 6);
        // A label of several lines (`\n`) is centred on the row as a block.
        let lines: Vec<&str> = label.lines().collect();
        for (k, line) in lines.iter().enumerate() {
            let y = y0 + cell / 2 - 8 - 10 * (lines.len() as i32 - 1) + 20 * k as i32;
            root.draw(&Text::new(line.to_string(), (8, y), ("sans-serif", 16).into_font())).map_err(perr)?;
        }
        for (c, img) in cells.iter().enumerate() {
            let x0 = label_w + c as i32 * (cell + 6);
            let sx = cell as f64 / img.w as f64;
            let sy = cell as f64 / img.h as f64;
            if let Some(text) = &img.caption {
                let style = TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
                root.draw(&Text::new(text.clone(), (x0 + cell / 2, y0 + cell + 3), style)).map_err(perr)?;
            }
            if img.heat.is_none() {
                for y in 0..img.h {
                    for x in 0..img.w {
                        let (a, b) = (
                            (x0 + (x as f64 * sx) as i32, y0 + (y as f64 * sy) as i32),
                            (x0 + ((x + 1) as f64 * sx) as i32, y0 + ((y + 1) as f64 * sy) as i32),
                        );
                        root.draw(&Rectangle::new([a, b], img.rgb(y, x).filled())).map_err(perr)?;
                    }
                }
                continue;
            }
            // With a heatmap: every display pixel, the image's own pixel under it and the heat
            // sampled bilinearly there, so the overlay is smooth at any size.
            for dy in 0..cell {
                for dx in 0..cell {
                    let (fx, fy) = ((dx as f64 + 0.5) / sx - 0.5, (dy as f64 + 0.5) / sy - 0.5);
                    let (x, y) = ((fx + 0.5).clamp(0.0, (img.w - 1) as f64) as usize, (fy + 0.5).clamp(0.0, (img.h - 1) as f64) as usize);
                    root.draw_pixel((x0 + dx, y0 + dy), &img.rgb_with(y, x, img.heat_at(fx, fy))).map_err(perr)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod shared_scale_tests {
    use super::*;

    #[test]
    fn every_panel_gets_the_limits_of_all_points() {
        let a = Scatter { title: "a".into(), points: vec![([0.0, 0.0], 0), ([10.0, 1.0], 1)] };
        let b = Scatter { title: "b".into(), points: vec![([-10.0, -4.0], 0), ([2.0, 6.0], 0)] };
        let (x, y) = shared_limits(&[a, b]);
        assert_eq!((x.start, x.end), (-11.0, 11.0));
        assert_eq!((y.start, y.end), (-4.5, 6.5));
        assert_eq!(shared_limits(&[]), (-1.0..1.0, -1.0..1.0));
    }

    #[test]
    fn heat_is_sampled_bilinearly() {
        let c = Cell { channels: 1, h: 2, w: 2, pixels: vec![0.0; 4], heat: Some(vec![0.0, 1.0, 0.0, 1.0]), caption: None };
        assert_eq!(c.heat_at(0.5, 0.0), Some(0.5));
        assert_eq!(c.heat_at(0.25, 1.0), Some(0.25));
        assert_eq!(c.heat_at(-3.0, 9.0), Some(0.0), "edges clamp");
    }

    #[test]
    fn markers_sit_on_the_roc_step() {
        let roc = [(0.0, 0.0), (0.0, 0.5), (0.2, 0.5), (0.2, 0.9), (1.0, 1.0)];
        assert_eq!(tpr_at(&roc, 0.1), 0.5);
        assert_eq!(tpr_at(&roc, 0.2), 0.9);
        assert_eq!(tpr_at(&roc, 1.0), 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_roc_curves_are_averaged_vertically_with_their_range() {
        // A perfect ranking and one whose positives all come last.
        let perfect = vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)];
        let worst = vec![(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)];
        let (mean, band) = mean_roc(&[perfect.clone(), worst]);
        assert_eq!(mean.len(), 201);
        assert_eq!(mean[100], (0.5, 0.5));
        assert_eq!(band[100], (0.5, 0.0, 1.0));
        assert_eq!(mean[200], (1.0, 1.0), "both reach TPR 1 at FPR 1");
        // One curve: its own TPR at each grid FPR, no spread.
        let (one, band) = mean_roc(&[perfect]);
        assert!(one.iter().all(|p| p.1 == 1.0) && band.iter().all(|b| b.1 == b.2));
    }
}
