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
    let pw = w - l - r;
    let ph = h - t - b;
    let right_max = series
        .iter()
        .filter(|s| s.right_axis)
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let x = |v: f64| l + v.clamp(0.0, 1.0) * pw;
    let y = |v: f64| t + ph - v.clamp(0.0, 1.0) * ph;
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
    for i in 0..=10 {
        let v = i as f64 / 10.0;
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" x2=\"{}\" y1=\"{yv:.1}\" y2=\"{yv:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text><text x=\"{}\" y=\"{:.1}\">{:.0}</text>",
            l + pw,
            l - 6.0,
            y(v) + 4.0,
            l + pw + 6.0,
            y(v) + 4.0,
            v * right_max,
            yv = y(v)
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{v:.1}</text>",
            x(v),
            t + ph + 16.0
        );
    }
    let _ = writeln!(
        s,
        r#"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="black"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        l + pw / 2.0,
        h - 12.0,
        esc(x_label)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({},{}) rotate(90)" text-anchor="middle">{}</text>"#,
        w - 18.0,
        t + ph / 2.0,
        esc(right_label)
    );
    if let Some(mx) = marker_x {
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{t}\" y2=\"{}\" stroke=\"#888\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{}\" fill=\"#555\">recommended</text>",
            x(mx),
            x(mx),
            t + ph,
            x(mx) + 4.0,
            t + 14.0
        );
    }
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> = se
            .points
            .iter()
            .map(|&(px, py)| {
                let py = if se.right_axis { py / right_max } else { py };
                format!("{:.1},{:.1}", x(px), y(py))
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
            se.color,
            pts.join(" ")
        );
        let ly = t + 16.0 * i as f64 + 30.0;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            l + 10.0,
            l + 30.0,
            se.color,
            l + 36.0,
            ly + 4.0,
            esc(se.name)
        );
    }
    s.push_str("</svg>\n");
    s
}
