//! The report's charts, drawn with `plotters` on its SVG backend (text stays `<text>`, so the
//! numbers are readable, searchable and printable, and checkable from the DOM).
//!
//! Every chart draws its bars first, then one value label per non-zero bar, in group order and,
//! within a group, in series order; its other texts (title, legend, group labels) contain no
//! bare number. So the sequence of integer `<text>` elements of a chart is exactly the sequence
//! of its non-zero values: the Chromium test reads them back and compares with the package.
//! Every string comes from plotters' SVG backend, which escapes text and attributes.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Drawing failed (plotters' backend error, as text).
#[derive(Debug, thiserror::Error)]
#[error("chart {chart}: {reason}")]
pub struct ChartError {
    /// Which chart.
    pub chart: &'static str,
    /// The backend's error.
    pub reason: String,
}

/// One series of a bar chart: its name (legend) and colour.
#[derive(Clone, Copy, Debug)]
pub struct Series {
    /// Legend text.
    pub name: &'static str,
    /// Fill colour.
    pub color: RGBColor,
}

/// Series colours: allow, deny, escalate, not-applicable (colour-blind safe, print safe).
pub const ALLOW: Series = Series {
    name: "allow",
    color: RGBColor(0x1b, 0x9e, 0x77),
};
/// Deny.
pub const DENY: Series = Series {
    name: "deny",
    color: RGBColor(0xd9, 0x5f, 0x02),
};
/// Escalate.
pub const ESCALATE: Series = Series {
    name: "escalate",
    color: RGBColor(0x75, 0x70, 0xb3),
};
/// Not applicable.
pub const NOT_APPLICABLE: Series = Series {
    name: "not-applicable",
    color: RGBColor(0x66, 0x66, 0x66),
};

const FONT: &str = "sans-serif";

fn err(chart: &'static str) -> impl Fn(DrawingAreaErrorKind<std::io::Error>) -> ChartError {
    move |e| ChartError {
        chart,
        reason: e.to_string(),
    }
}

/// A vertical grouped bar chart: `groups` are (label, one value per series).
///
/// # Errors
/// [`ChartError`] when plotters fails to draw.
pub fn vertical_bars(
    chart: &'static str,
    title: &str,
    series: &[Series],
    groups: &[(String, Vec<u64>)],
) -> Result<String, ChartError> {
    let e = err(chart);
    let n = groups.len().max(1);
    let per_group = series.len().max(1);
    let width = u32::try_from((n * per_group * 26 + 120).clamp(420, 1000)).unwrap_or(1000);
    let height = 320u32;
    let max = largest(groups);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let area = header(&root, title, series).map_err(&e)?;
        let top = to_f64(max) * 1.15;
        let pad = top * 0.14;
        let mut cc = ChartBuilder::on(&area)
            .margin(8)
            .build_cartesian_2d(0f64..to_f64(n as u64), -pad..top)
            .map_err(|x| ChartError {
                chart,
                reason: x.to_string(),
            })?;
        let slot = 0.8 / to_f64(per_group as u64);
        // Baseline.
        cc.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (to_f64(n as u64), 0.0)],
            BLACK,
        )))
        .map_err(&e)?;
        let mut bars = Vec::new();
        let mut labels = Vec::new();
        let step = groups.len().div_ceil(16).max(1);
        for (g, (label, values)) in groups.iter().enumerate() {
            let gx = to_f64(g as u64);
            for (s, value) in values.iter().enumerate() {
                let x0 = gx + 0.1 + slot * to_f64(s as u64);
                let color = series.get(s).map_or(BLACK, |x| x.color);
                bars.push(Rectangle::new(
                    [(x0, 0.0), (x0 + slot * 0.9, to_f64(*value))],
                    color.filled(),
                ));
                if *value > 0 {
                    labels.push(Text::new(
                        value.to_string(),
                        (x0 + slot * 0.45, to_f64(*value)),
                        text_style(13, HPos::Center, VPos::Bottom),
                    ));
                }
            }
            if g % step == 0 {
                labels.push(Text::new(
                    label.clone(),
                    (gx + 0.5, -pad * 0.35),
                    text_style(13, HPos::Center, VPos::Center),
                ));
            }
        }
        cc.draw_series(bars).map_err(&e)?;
        cc.draw_series(labels).map_err(&e)?;
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

/// A horizontal grouped bar chart (long group labels, such as rule names, on the left).
///
/// # Errors
/// [`ChartError`] when plotters fails to draw.
pub fn horizontal_bars(
    chart: &'static str,
    title: &str,
    series: &[Series],
    groups: &[(String, Vec<u64>)],
) -> Result<String, ChartError> {
    let e = err(chart);
    let n = groups.len().max(1);
    let per_group = series.len().max(1);
    let width = 900u32;
    let height = u32::try_from((n * per_group * 22 + 90).clamp(160, 1200)).unwrap_or(1200);
    let max = largest(groups);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let area = header(&root, title, series).map_err(&e)?;
        let (labels_area, bars_area) = area.split_horizontally(300);
        let right = to_f64(max) * 1.15;
        let mut cc = ChartBuilder::on(&bars_area)
            .margin(8)
            .build_cartesian_2d(0f64..right, 0f64..to_f64(n as u64))
            .map_err(|x| ChartError {
                chart,
                reason: x.to_string(),
            })?;
        let slot = 0.8 / to_f64(per_group as u64);
        let mut bars = Vec::new();
        let mut values_text = Vec::new();
        let mut names = Vec::new();
        let rows = to_f64(n as u64);
        let row_px = f64::from(height.saturating_sub(60)) / rows;
        for (g, (label, values)) in groups.iter().enumerate() {
            // Group 0 at the top.
            let gy = rows - 1.0 - to_f64(g as u64);
            for (s, value) in values.iter().enumerate() {
                let y1 = gy + 0.9 - slot * to_f64(s as u64);
                let color = series.get(s).map_or(BLACK, |x| x.color);
                bars.push(Rectangle::new(
                    [(0.0, y1 - slot * 0.9), (to_f64(*value), y1)],
                    color.filled(),
                ));
                if *value > 0 {
                    values_text.push(Text::new(
                        value.to_string(),
                        (to_f64(*value), y1 - slot * 0.45),
                        text_style(13, HPos::Left, VPos::Center),
                    ));
                }
            }
            let y = (8.0 + (to_f64(g as u64) + 0.5) * row_px) as i32;
            names.push(Text::new(
                label.clone(),
                (292, y),
                text_style(13, HPos::Right, VPos::Center),
            ));
        }
        for name in names {
            labels_area.draw(&name).map_err(&e)?;
        }
        cc.draw_series(bars).map_err(&e)?;
        cc.draw_series(values_text).map_err(&e)?;
        root.present().map_err(&e)?;
    }
    Ok(svg)
}

/// Title and legend across the top; returns the area below them.
fn header<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    title: &str,
    series: &[Series],
) -> Result<DrawingArea<SVGBackend<'a>, Shift>, DrawingAreaErrorKind<std::io::Error>> {
    let (top, rest) = root.split_vertically(44);
    top.draw(&Text::new(
        title.to_owned(),
        (10, 14),
        text_style(18, HPos::Left, VPos::Center),
    ))?;
    let mut x = 10i32;
    for s in series {
        top.draw(&Rectangle::new([(x, 30), (x + 10, 40)], s.color.filled()))?;
        top.draw(&Text::new(
            s.name.to_owned(),
            (x + 14, 35),
            text_style(13, HPos::Left, VPos::Center),
        ))?;
        let len = i32::try_from(s.name.len()).unwrap_or(20);
        x = x.saturating_add(30 + 7 * len);
    }
    Ok(rest)
}

fn text_style(size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).pos(Pos::new(h, v))
}

fn to_f64(v: u64) -> f64 {
    v as f64
}

/// The largest value of any group, at least 1 (the axis of an empty chart).
fn largest(groups: &[(String, Vec<u64>)]) -> u64 {
    groups
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integer texts of an SVG, in document order.
    fn numbers(svg: &str) -> Vec<u64> {
        texts(svg).iter().filter_map(|t| t.parse().ok()).collect()
    }

    /// The `<text>` contents of an SVG, trimmed, in document order.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>').and_then(|(_, r)| r.split_once("</text>")))
            .map(|(text, _)| text.trim().to_owned())
            .collect()
    }

    #[test]
    fn value_labels_are_the_non_zero_values_in_order() {
        let groups = vec![
            ("2026-11-01".to_owned(), vec![3, 0, 1, 0]),
            ("2026-11-02".to_owned(), vec![0, 12, 0, 7]),
        ];
        let svg = vertical_bars(
            "t",
            "Decisions per day",
            &[ALLOW, DENY, ESCALATE, NOT_APPLICABLE],
            &groups,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert_eq!(numbers(&svg), [3, 1, 12, 7]);
        assert!(texts(&svg).contains(&"2026-11-02".to_owned()), "{svg}");
        let svg = horizontal_bars(
            "t",
            "Rules",
            &[DENY, ESCALATE],
            &[
                ("p 1.0.0 #2".to_owned(), vec![5, 0]),
                ("p 1.0.0 #0".to_owned(), vec![2, 4]),
            ],
        )
        .unwrap();
        assert_eq!(numbers(&svg), [5, 2, 4]);
    }

    #[test]
    fn vendor_strings_are_escaped() {
        let svg = horizontal_bars(
            "t",
            "Rules",
            &[DENY],
            &[("<script>alert(1)</script> & \"x\"".to_owned(), vec![1])],
        )
        .unwrap();
        assert!(!svg.contains("<script"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
    }

    #[test]
    fn empty_charts_draw() {
        let svg = vertical_bars("t", "Nothing", &[ALLOW], &[]).unwrap();
        assert!(numbers(&svg).is_empty());
    }
}
