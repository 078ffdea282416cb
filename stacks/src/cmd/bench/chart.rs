//! Plain SVG charts: grouped bars and lines, a legend, linear or log axes.
//!
//! Written by hand (a few hundred bytes of markup per bar), so the benchmark needs no
//! plotting library and its output opens in any browser. [`page`] stacks several
//! charts into one document.

use std::fmt::Write;

/// Series colours, in order; the raw UDP baseline uses [`BASELINE`].
const PALETTE: [&str; 8] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
/// Colour of the raw baseline.
pub const BASELINE: &str = "#444444";

const WIDTH: f64 = 1200.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 70.0;

/// One named series of a chart.
pub struct Series {
    pub name: String,
    /// Colour; `None` picks the next palette colour.
    pub color: Option<&'static str>,
    /// Bars: one value per group (missing cells are `None`).
    pub values: Vec<Option<f64>>,
}

/// One named line: `(x, y)` points, in x order.
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The y (or x) axis: maps values to pixels and names its ticks.
struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Axis {
        let v: Vec<f64> = values.filter(|v| v.is_finite() && (!log || *v > 0.0)).collect();
        let max = v.iter().copied().fold(f64::MIN, f64::max);
        let min = v.iter().copied().fold(f64::MAX, f64::min);
        if v.is_empty() {
            return Axis { log, lo: if log { 1.0 } else { 0.0 }, hi: if log { 10.0 } else { 1.0 } };
        }
        if log {
            let lo = 10f64.powf(min.log10().floor());
            let mut hi = 10f64.powf(max.log10().ceil());
            if hi <= lo {
                hi = lo * 10.0;
            }
            Axis { log, lo, hi }
        } else {
            let step = nice_step(max.max(min.abs()) / 5.0);
            let hi = ((max / step).ceil() * step).max(step);
            Axis { log, lo: 0.0, hi }
        }
    }

    /// Position in 0..=1.
    fn frac(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        f.clamp(0.0, 1.0)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut t = Vec::new();
            let mut v = self.lo;
            while v <= self.hi * 1.000_1 {
                t.push(v);
                v *= 10.0;
            }
            t
        } else {
            let step = nice_step((self.hi - self.lo) / 5.0);
            (0..=((self.hi - self.lo) / step).round() as usize)
                .map(|i| self.lo + i as f64 * step)
                .collect()
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let r = raw / mag;
    let m = if r <= 1.0 {
        1.0
    } else if r <= 2.0 {
        2.0
    } else if r <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// A short human number: 1.2M, 35k, 950, 0.5.
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.3}G", v / 1e9).replace(".000G", "G")
    } else if a >= 1e6 {
        trim(format!("{:.1}M", v / 1e6))
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        trim(format!("{:.1}k", v / 1e3))
    } else if a >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        trim(format!("{v:.2}"))
    }
}

fn trim(s: String) -> String {
    s.replace(".0k", "k").replace(".0M", "M").replace(".00", "")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn colors<'a>(names: impl Iterator<Item = Option<&'static str>> + 'a) -> Vec<&'static str> {
    let mut next = 0;
    names
        .map(|c| {
            c.unwrap_or_else(|| {
                let c = PALETTE[next % PALETTE.len()];
                next += 1;
                c
            })
        })
        .collect()
}

fn frame(out: &mut String, title: &str, y_label: &str, y: &Axis) {
    let plot_h = HEIGHT - TOP - BOTTOM;
    let _ = write!(
        out,
        r#"<text x="{}" y="22" font-size="16" font-weight="bold">{}</text>"#,
        LEFT,
        esc(title)
    );
    let _ = write!(
        out,
        r#"<text transform="translate(18,{}) rotate(-90)" font-size="12" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        esc(y_label)
    );
    for t in y.ticks() {
        let py = TOP + plot_h * (1.0 - y.frac(t));
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            human(t)
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="black"/><line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="black"/>"#,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        HEIGHT - BOTTOM
    );
}

fn legend(out: &mut String, names: &[(&str, &str)]) {
    for (i, (name, color)) in names.iter().enumerate() {
        let y = TOP + 18.0 * i as f64;
        let x = WIDTH - RIGHT + 14.0;
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{y}" width="12" height="12" fill="{color}"/><text x="{}" y="{}" font-size="12">{}</text>"#,
            x + 18.0,
            y + 10.0,
            esc(name)
        );
    }
}

/// A grouped bar chart: one group per label, one bar per series in each group.
pub fn bars(title: &str, y_label: &str, groups: &[String], series: &[Series], log: bool) -> String {
    let y = Axis::new(series.iter().flat_map(|s| s.values.iter().flatten().copied()), log);
    let cols = colors(series.iter().map(|s| s.color));
    let mut out = String::new();
    frame(&mut out, title, y_label, &y);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let gw = plot_w / groups.len().max(1) as f64;
    let bw = (gw * 0.8) / series.len().max(1) as f64;
    for (g, label) in groups.iter().enumerate() {
        let gx = LEFT + gw * g as f64 + gw * 0.1;
        for (k, s) in series.iter().enumerate() {
            let Some(v) = s.values.get(g).copied().flatten() else { continue };
            let h = plot_h * y.frac(v);
            let _ = write!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                gx + bw * k as f64,
                TOP + plot_h - h,
                (bw - 1.0).max(1.0),
                cols[k],
                esc(&s.name),
                human(v)
            );
        }
        let cx = gx + gw * 0.4;
        let _ = write!(
            out,
            r#"<text transform="translate({cx:.1},{}) rotate(30)" font-size="11">{}</text>"#,
            HEIGHT - BOTTOM + 14.0,
            esc(label)
        );
    }
    let names: Vec<(&str, &str)> =
        series.iter().zip(&cols).map(|(s, c)| (s.name.as_str(), *c)).collect();
    legend(&mut out, &names);
    out
}

/// A line chart with markers; `log_x`/`log_y` pick logarithmic axes.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    data: &[Line],
    log_x: bool,
    log_y: bool,
) -> String {
    let x = Axis::new(data.iter().flat_map(|l| l.points.iter().map(|p| p.0)), log_x);
    let y = Axis::new(data.iter().flat_map(|l| l.points.iter().map(|p| p.1)), log_y);
    let x = if log_x {
        x
    } else {
        let lo = data.iter().flat_map(|l| l.points.iter().map(|p| p.0)).fold(f64::MAX, f64::min);
        Axis { lo: if lo.is_finite() && lo < x.hi { lo.min(0.0) } else { 0.0 }, ..x }
    };
    let cols = colors(data.iter().map(|_| None));
    let mut out = String::new();
    frame(&mut out, title, y_label, &y);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    for t in x.ticks() {
        let px = LEFT + plot_w * x.frac(t);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{px:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 5.0,
            HEIGHT - BOTTOM + 18.0,
            human(t)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 20.0,
        esc(x_label)
    );
    for (l, c) in data.iter().zip(&cols) {
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|&(px, py)| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + plot_w * x.frac(px),
                    TOP + plot_h * (1.0 - y.frac(py))
                )
            })
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for (p, &(vx, vy)) in pts.iter().zip(&l.points) {
            let (cx, cy) = p.split_once(',').expect("x,y");
            let _ = write!(
                out,
                r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{c}"><title>{}: {} at {}</title></circle>"#,
                esc(&l.name),
                human(vy),
                human(vx)
            );
        }
    }
    let names: Vec<(&str, &str)> =
        data.iter().zip(&cols).map(|(l, c)| (l.name.as_str(), *c)).collect();
    legend(&mut out, &names);
    out
}

/// One SVG document holding `charts` one below the other.
pub fn page(charts: &[String]) -> String {
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{}" viewBox="0 0 {WIDTH} {}" font-family="sans-serif">"#,
        HEIGHT * charts.len() as f64,
        HEIGHT * charts.len() as f64
    );
    out.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (i, c) in charts.iter().enumerate() {
        let _ = write!(out, r#"<g transform="translate(0,{})">{c}</g>"#, HEIGHT * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers_are_short() {
        assert_eq!(human(1_250_000.0), "1.2M");
        assert_eq!(human(35_400.0), "35k");
        assert_eq!(human(1500.0), "1.5k");
        assert_eq!(human(950.0), "950");
        assert_eq!(human(0.0), "0");
    }

    #[test]
    fn log_axis_spans_whole_decades() {
        let a = Axis::new([30.0, 4000.0].into_iter(), true);
        assert_eq!((a.lo, a.hi), (10.0, 10_000.0));
        assert_eq!(a.ticks(), vec![10.0, 100.0, 1000.0, 10_000.0]);
        assert!((a.frac(100.0) - 1.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_page_is_one_svg_with_every_bar() {
        let s = Series { name: "a<b".into(), color: None, values: vec![Some(1.0), None] };
        let raw = Series { name: "raw".into(), color: Some(BASELINE), values: vec![Some(2.0); 2] };
        let svg = page(&[bars("t", "msgs/s", &["g1".into(), "g2".into()], &[s, raw], false)]);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<rect ").count(), 1 + 3 + 2, "background, 3 bars, 2 legend keys");
        assert!(svg.contains("a&lt;b"));
    }
}
