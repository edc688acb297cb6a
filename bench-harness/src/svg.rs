//! A small SVG line-chart writer: linear, log10 and "nines" (percentile) axes, tick labels,
//! a legend, solid and dashed series and shaded x-ranges. Hand-written because the plots are
//! few and simple, and a plotting crate would bring a font rasteriser and dozens of crates to
//! a 2-core build for three kinds of chart.

use std::fmt::Write;

const PALETTE: [&str; 12] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
    "#bcbd22", "#393b79", "#ad494a",
];
const MARGIN_LEFT: f64 = 70.0;
const LEGEND_ROW: f64 = 15.0;
const MARGIN_RIGHT: f64 = 40.0;
const MARGIN_TOP: f64 = 34.0;
const MARGIN_BOTTOM: f64 = 46.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Linear,
    Log10,
    /// Percentiles (0..100) placed by their number of nines: x = -log10(1 - p/100).
    Nines,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Colour index into the palette (series of one run share a colour, differ by dash).
    pub color: usize,
    pub dashed: bool,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_axis: Axis,
    pub y_axis: Axis,
    pub series: Vec<Series>,
    /// x ranges drawn shaded with their label (e.g. the warm-up).
    pub shaded: Vec<(f64, f64, String)>,
    /// A dot at every point (for a few measured points, such as a sweep's steps).
    pub markers: bool,
    /// The legend in a column right of the plot instead of over its top right corner (for
    /// many series).
    pub legend_outside: bool,
    /// Vertical lines at x with a short label and a tooltip (e.g. a broker's segment
    /// deletions on a time axis).
    pub marks: Vec<Mark>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub x: f64,
    /// One or two characters drawn at the top of the line.
    pub label: String,
    pub tooltip: String,
    pub color: usize,
}

/// Wraps fragments into a standalone SVG document.
pub fn document(width: f64, height: f64, body: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n"
    )
}

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Position of `v` on an axis, before scaling to pixels.
fn project(axis: Axis, v: f64) -> Option<f64> {
    match axis {
        Axis::Linear => v.is_finite().then_some(v),
        Axis::Log10 => (v > 0.0 && v.is_finite()).then(|| v.log10()),
        Axis::Nines => (0.0..100.0).contains(&v).then(|| -(1.0 - v / 100.0).log10()),
    }
}

/// Range of the projected values, widened to whole ticks.
fn range(axis: Axis, values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in values.filter_map(|v| project(axis, v)) {
        lo = lo.min(p);
        hi = hi.max(p);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    match axis {
        Axis::Linear => {
            let lo = lo.min(0.0);
            let step = nice_step((hi - lo).max(1e-12) / 5.0);
            (lo, (hi / step).ceil().max(1.0) * step)
        }
        Axis::Log10 => (lo.floor(), hi.ceil().max(lo.floor() + 1.0)),
        Axis::Nines => (0.0, hi.ceil().max(1.0)),
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

/// Ticks as (projected position, label).
fn ticks(axis: Axis, (lo, hi): (f64, f64)) -> Vec<(f64, String)> {
    match axis {
        Axis::Linear => {
            let step = nice_step((hi - lo) / 5.0);
            let n = ((hi - lo) / step).round() as i64;
            (0..=n).map(|i| lo + i as f64 * step).map(|v| (v, number(v))).collect()
        }
        Axis::Log10 => (lo as i64..=hi as i64).map(|e| (e as f64, number(10f64.powi(e as i32)))).collect(),
        Axis::Nines => (0..=hi as i64)
            .map(|k| {
                let p = 100.0 * (1.0 - 10f64.powi(-(k as i32)));
                (k as f64, format!("{}%", number(p)))
            })
            .collect(),
    }
}

/// A compact label: 1.5k, 2M, 0.25, 99.99.
pub fn number(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if a >= 1e9 {
        trim(format!("{:.2}", v / 1e9)) + "G"
    } else if a >= 1e6 {
        trim(format!("{:.2}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if a >= 100.0 || a == 0.0 {
        trim(format!("{v:.0}"))
    } else if a >= 1.0 {
        trim(format!("{v:.4}"))
    } else {
        trim(format!("{v:.6}"))
    }
}

impl Chart {
    /// The chart as an SVG group filling the box at (`x`, `y`) of `w` × `h` pixels.
    pub fn render(&self, x: f64, y: f64, w: f64, h: f64) -> String {
        let xs = range(self.x_axis, self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
        let ys = range(self.y_axis, self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
        let legend_room = if self.legend_outside { self.legend_width() + 10.0 } else { 0.0 };
        let plot = Plot {
            left: x + MARGIN_LEFT,
            top: y + MARGIN_TOP,
            w: w - MARGIN_LEFT - MARGIN_RIGHT - legend_room,
            h: h - MARGIN_TOP - MARGIN_BOTTOM,
            xs,
            ys,
        };
        let mut out = String::new();
        let _ = writeln!(out, "<g>");
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">{}</text>",
            x + MARGIN_LEFT,
            y + 20.0,
            escape(&self.title)
        );
        self.shading(&plot, &mut out);
        self.grid(&plot, &mut out);
        self.marks(&plot, &mut out);
        for s in &self.series {
            self.line(&plot, s, &mut out);
        }
        self.legend(&plot, &mut out);
        let _ = writeln!(out, "</g>");
        out
    }

    fn shading(&self, plot: &Plot, out: &mut String) {
        for (from, to, label) in &self.shaded {
            let (Some(a), Some(b)) = (project(self.x_axis, *from), project(self.x_axis, *to)) else {
                continue;
            };
            let (a, b) = (plot.px(a), plot.px(b));
            let _ = writeln!(
                out,
                "<rect x=\"{a:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#eeeeee\"/>",
                plot.top,
                (b - a).max(0.0),
                plot.h
            );
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#888\" font-size=\"10\">{}</text>",
                a + 3.0,
                plot.top + 12.0,
                escape(label)
            );
        }
    }

    fn marks(&self, plot: &Plot, out: &mut String) {
        for m in &self.marks {
            let Some(x) = project(self.x_axis, m.x) else { continue };
            if x < plot.xs.0 || x > plot.xs.1 {
                continue;
            }
            let (px, color) = (plot.px(x), PALETTE[m.color % PALETTE.len()]);
            let _ = writeln!(
                out,
                "<g><title>{}</title><line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"{color}\" \
                 stroke-width=\"1\" stroke-dasharray=\"2 2\"/><text x=\"{px:.1}\" y=\"{:.1}\" fill=\"{color}\" \
                 font-size=\"9\" text-anchor=\"middle\">{}</text></g>",
                escape(&m.tooltip),
                plot.top,
                plot.top + plot.h,
                plot.top - 2.0,
                escape(&m.label)
            );
        }
    }

    fn grid(&self, plot: &Plot, out: &mut String) {
        let (l, t, r, b) = (plot.left, plot.top, plot.left + plot.w, plot.top + plot.h);
        for (pos, label) in ticks(self.x_axis, plot.xs) {
            let px = plot.px(pos);
            let _ = writeln!(
                out,
                "<line x1=\"{px:.1}\" y1=\"{t:.1}\" x2=\"{px:.1}\" y2=\"{b:.1}\" stroke=\"#ddd\"/>"
            );
            let _ = writeln!(
                out,
                "<text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                b + 15.0,
                escape(&label)
            );
        }
        for (pos, label) in ticks(self.y_axis, plot.ys) {
            let py = plot.py(pos);
            let _ = writeln!(
                out,
                "<line x1=\"{l:.1}\" y1=\"{py:.1}\" x2=\"{r:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>"
            );
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                l - 5.0,
                py + 4.0,
                escape(&label)
            );
        }
        let _ = writeln!(out, "<rect x=\"{l:.1}\" y=\"{t:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#333\"/>", plot.w, plot.h);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            l + plot.w / 2.0,
            b + 34.0,
            escape(&self.x_label)
        );
        let (cx, cy) = (l - 55.0, t + plot.h / 2.0);
        let _ = writeln!(out, "<text x=\"{cx:.1}\" y=\"{cy:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 {cx:.1} {cy:.1})\">{}</text>", escape(&self.y_label));
    }

    fn line(&self, plot: &Plot, s: &Series, out: &mut String) {
        let points: Vec<String> = s
            .points
            .iter()
            .filter_map(|(x, y)| Some((project(self.x_axis, *x)?, project(self.y_axis, *y)?)))
            .map(|(x, y)| format!("{:.1},{:.1}", plot.px(x), plot.py(y)))
            .collect();
        if points.is_empty() {
            return;
        }
        let color = PALETTE[s.color % PALETTE.len()];
        let dash = if s.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.8\"{dash} points=\"{}\"/>",
            points.join(" ")
        );
        if self.markers {
            for p in &points {
                let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                let _ = writeln!(out, "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{color}\"/>");
            }
        }
    }

    /// Pixels the legend needs across (estimated from the longest name).
    pub fn legend_width(&self) -> f64 {
        let longest = self.series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0) as f64;
        40.0 + 6.8 * longest
    }

    /// Pixels a chart needs down to fit its legend beside the plot.
    pub fn legend_height(&self) -> f64 {
        MARGIN_TOP + MARGIN_BOTTOM + 8.0 + LEGEND_ROW * self.series.len() as f64
    }

    /// Over the top right corner on a white box (so lines and shading under it stay
    /// readable), or beside the plot.
    fn legend(&self, plot: &Plot, out: &mut String) {
        if self.series.is_empty() {
            return;
        }
        let width = self.legend_width();
        let x =
            if self.legend_outside { plot.left + plot.w + 16.0 } else { plot.left + plot.w - width - 6.0 };
        if !self.legend_outside {
            let height = 8.0 + LEGEND_ROW * self.series.len() as f64;
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>",
                x - 4.0,
                plot.top + 4.0
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let y = plot.top + 16.0 + LEGEND_ROW * i as f64;
            let color = PALETTE[s.color % PALETTE.len()];
            let dash = if s.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
            let _ = writeln!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
                y - 4.0,
                x + 22.0,
                y - 4.0
            );
            let _ = writeln!(
                out,
                "<text x=\"{:.1}\" y=\"{y:.1}\" fill=\"#222\">{}</text>",
                x + 27.0,
                escape(&s.name)
            );
        }
    }
}

struct Plot {
    left: f64,
    top: f64,
    w: f64,
    h: f64,
    xs: (f64, f64),
    ys: (f64, f64),
}

impl Plot {
    fn px(&self, v: f64) -> f64 {
        self.left + (v - self.xs.0) / (self.xs.1 - self.xs.0) * self.w
    }

    fn py(&self, v: f64) -> f64 {
        self.top + self.h - (v - self.ys.0) / (self.ys.1 - self.ys.0) * self.h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_and_labels() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(70.0), 100.0);
        assert_eq!(number(1_500_000.0), "1.5M");
        assert_eq!(number(25_000.0), "25k");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(99.99), "99.99");
        assert_eq!(number(0.0), "0");
        assert!((project(Axis::Nines, 99.0).expect("on axis") - 2.0).abs() < 1e-9);
        assert_eq!(project(Axis::Nines, 100.0), None, "100 % is off a nines axis");
        assert_eq!(project(Axis::Log10, 0.0), None);
        assert_eq!(range(Axis::Log10, [0.3, 42.0].into_iter()), (-1.0, 2.0));
        let labels: Vec<String> = ticks(Axis::Nines, (0.0, 3.0)).into_iter().map(|t| t.1).collect();
        assert_eq!(labels, vec!["0%", "90%", "99%", "99.9%"]);
    }

    #[test]
    fn charts_render_every_series_and_escape_text() {
        let chart = Chart {
            title: "a < b".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_axis: Axis::Linear,
            y_axis: Axis::Log10,
            series: vec![
                Series { name: "one".into(), points: vec![(0.0, 1.0), (1.0, 10.0)], color: 0, dashed: false },
                Series { name: "two".into(), points: vec![(0.0, 0.0), (1.0, 5.0)], color: 1, dashed: true },
            ],
            shaded: vec![(0.0, 0.5, "warm-up".into())],
            markers: true,
            legend_outside: false,
            marks: Vec::new(),
        };
        let svg = document(600.0, 400.0, &chart.render(0.0, 0.0, 600.0, 400.0));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt; b") && svg.contains("stroke-dasharray") && svg.contains("warm-up"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
