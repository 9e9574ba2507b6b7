//! A small hand-written SVG line chart for `pushwise tune --plot` (no plotting crate needed for three lines).

use std::fmt::Write;

/// One series of (x, y) points, y in the chart's own unit.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
    /// Right axis (scaled separately) instead of the left 0..1 axis.
    pub right_axis: bool,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart's geometry: the canvas, the plot area inside its margins, the right axis's scale.
struct Frame {
    w: f64,
    h: f64,
    l: f64,
    t: f64,
    pw: f64,
    ph: f64,
    right_max: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        self.l + v.clamp(0.0, 1.0) * self.pw
    }
    fn y(&self, v: f64) -> f64 {
        self.t + self.ph - v.clamp(0.0, 1.0) * self.ph
    }
}

/// Renders series against x in [0, 1]; left axis 0..1, right axis 0..max of the right series.
pub fn line_chart(
    title: &str,
    x_label: &str,
    right_label: &str,
    series: &[Series<'_>],
    marker_x: Option<f64>,
) -> String {
    let (w, h) = (720.0, 420.0);
    let (l, r, t, b) = (60.0, 80.0, 40.0, 50.0);
    let f = Frame {
        w,
        h,
        l,
        t,
        pw: w - l - r,
        ph: h - t - b,
        right_max: series
            .iter()
            .filter(|s| s.right_axis)
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0f64, f64::max)
            .max(1e-9),
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    grid(&mut s, &f);
    axis_labels(&mut s, &f, x_label, right_label);
    if let Some(mx) = marker_x {
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{t}\" y2=\"{}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{}\" fill=\"#555\">recommended</text>",
            f.x(mx),
            f.x(mx),
            t + f.ph,
            f.x(mx) + 4.0,
            t + 14.0
        );
    }
    for (i, se) in series.iter().enumerate() {
        line(&mut s, &f, i, se);
    }
    s.push_str("</svg>\n");
    s
}

/// Grid lines with the left (0..1), right (0..right_max) and x (0..1) tick labels.
fn grid(s: &mut String, f: &Frame) {
    let (l, pw) = (f.l, f.pw);
    for i in 0..=10 {
        let v = i as f64 / 10.0;
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" x2=\"{}\" y1=\"{yv:.1}\" y2=\"{yv:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text><text x=\"{}\" y=\"{:.1}\">{:.0}</text>",
            l + pw,
            l - 6.0,
            f.y(v) + 4.0,
            l + pw + 6.0,
            f.y(v) + 4.0,
            v * f.right_max,
            yv = f.y(v)
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{v:.1}</text>",
            f.x(v),
            f.t + f.ph + 16.0
        );
    }
}

/// The plot area's border and the x and right axis labels.
fn axis_labels(s: &mut String, f: &Frame, x_label: &str, right_label: &str) {
    let (l, t, pw, ph) = (f.l, f.t, f.pw, f.ph);
    let _ = writeln!(
        s,
        r#"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        l + pw / 2.0,
        f.h - 12.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({},{}) rotate(90)" text-anchor="middle">{}</text>"#,
        f.w - 18.0,
        t + ph / 2.0,
        esc(right_label)
    );
}

/// One series' polyline and its legend entry (the `i`th).
fn line(s: &mut String, f: &Frame, i: usize, se: &Series<'_>) {
    let pts: Vec<String> = se
        .points
        .iter()
        .map(|&(px, py)| {
            let py = if se.right_axis { py / f.right_max } else { py };
            format!("{:.1},{:.1}", f.x(px), f.y(py))
        })
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
        se.color,
        pts.join(" ")
    );
    let ly = f.t + 16.0 * i as f64 + 30.0;
    let _ = writeln!(
        s,
        r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
        f.l + 10.0,
        f.l + 30.0,
        se.color,
        f.l + 36.0,
        ly + 4.0,
        esc(se.name)
    );
}
