//! Bar charts drawn on the server as inline SVG.
//!
//! A page that wants a picture of a few numbers gets markup it can inline: no
//! script, no chart library, nothing to download, and it is drawn before any script
//! would have run. Accessible by construction: the `<svg>` is an image labelled by
//! its title and description, each bar carries a tooltip with its label and value,
//! and the [`Chart`] keeps its bars so the page can print the numbers as a table.
//! Colours come from the page's stylesheet (classes `chart`, `bar`, `value`,
//! `label`, `axis`), so there is no inline style for a Content-Security-Policy to
//! forbid.
//!
//! ```
//! use napiatke_charts::{Bar, Chart};
//! let chart = Chart::columns(
//!     "attendance",
//!     "Attendance by week",
//!     "Share of marked students who were present, last 3 weeks.",
//!     vec![
//!         Bar::new("2 Nov", 80.0, "80%"),
//!         Bar::new("9 Nov", 90.0, "90%"),
//!         Bar::new("16 Nov", 85.0, "85%"),
//!     ],
//!     Some(100.0),
//! );
//! assert!(chart.svg.starts_with("<svg class=\"chart\""));
//! assert_eq!(chart.svg.matches("<rect class=\"bar\"").count(), 3);
//! assert!(chart.svg.contains("<title>9 Nov: 90%</title>"));
//! ```

use std::fmt::Write;

use serde::Serialize;

/// One bar: what it is, how long it is, and how its value reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bar {
    /// Under or beside the bar ("16 Nov", "calendar").
    pub label: String,
    /// Its length on the chart's scale; negative or not finite counts as 0.
    pub value: f64,
    /// The value as it fits on the chart ("85%", "1.2k", "—").
    pub text: String,
    /// The value in full, for the tooltip and the table ("85.0% (17 of 20)").
    pub full: String,
}

impl Bar {
    /// A bar labelled `label`, `value` long, reading `text`.
    pub fn new(label: impl Into<String>, value: f64, text: impl Into<String>) -> Bar {
        let text = text.into();
        Bar {
            label: label.into(),
            value,
            full: text.clone(),
            text,
        }
    }

    /// Says more in the tooltip and the table than fits on the chart.
    #[must_use]
    pub fn with_full(mut self, full: impl Into<String>) -> Bar {
        self.full = full.into();
        self
    }
}

/// A drawn chart: its markup and what it was drawn from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chart {
    /// Unique on the page: the prefix of the title's and description's ids.
    pub id: String,
    /// What the chart shows, in a few words.
    pub title: String,
    /// One or two sentences for screen readers (what is measured, over what).
    pub description: String,
    /// The bars, in order.
    pub bars: Vec<Bar>,
    /// The table's column headings: what the labels are and what the values are.
    pub headings: (String, String),
    /// The `<svg>` element, escaped, ready to inline.
    pub svg: String,
}

/// The drawing's size in SVG units; the stylesheet scales it to the width it has.
/// Columns are drawn narrower than rows so that on a phone (about 300 px for the
/// chart) their text is drawn at about its nominal size.
const COLUMN_WIDTH: f64 = 300.0;
const ROW_WIDTH: f64 = 300.0;
/// Room left and right of the columns, so the first and last labels fit.
const SIDE: f64 = 10.0;
/// At most this many column labels: more would run into each other on a phone.
const MAX_COLUMN_LABELS: usize = 6;
const COLUMN_HEIGHT: f64 = 150.0;
const ROW_HEIGHT: f64 = 22.0;
/// Room for the value above a column and the label below it.
const TOP: f64 = 14.0;
const BOTTOM: f64 = 16.0;
/// The label column and the room after a row's bar for its value.
const LABEL_WIDTH: f64 = 96.0;
const VALUE_WIDTH: f64 = 48.0;

impl Chart {
    /// Names the table's columns: what a label is ("Week from") and what a value is.
    #[must_use]
    pub fn headed(mut self, labels: &str, values: &str) -> Chart {
        self.headings = (labels.to_owned(), values.to_owned());
        self
    }

    /// Vertical bars side by side, labels under them (a series over time). `max` is
    /// the top of the scale (100 for percentages); `None` takes the largest value.
    #[must_use]
    pub fn columns(
        id: &str,
        title: &str,
        description: &str,
        bars: Vec<Bar>,
        max: Option<f64>,
    ) -> Chart {
        let top = scale_top(&bars, max);
        let mut svg = open(id, title, description, COLUMN_WIDTH, COLUMN_HEIGHT);
        let n = bars.len().max(1) as f64;
        let slot = (COLUMN_WIDTH - 2.0 * SIDE) / n;
        // Every `step`th label, counted back from the last bar (the latest, in a
        // series over time, is the one people look for); the others are in the
        // tooltips and the table.
        let step = bars.len().div_ceil(MAX_COLUMN_LABELS).max(1);
        let width = slot * 0.7;
        let plot = COLUMN_HEIGHT - TOP - BOTTOM;
        for (i, bar) in bars.iter().enumerate() {
            let x = SIDE + i as f64 * slot + (slot - width) / 2.0;
            let height = plot * length(bar.value) / top;
            let y = COLUMN_HEIGHT - BOTTOM - height;
            let middle = x + width / 2.0;
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{height:.1}\"><title>{}: {}</title></rect>",
                Escaped(&bar.label),
                Escaped(&bar.full),
            );
            if !bar.text.is_empty() {
                let _ = write!(
                    svg,
                    "<text class=\"value\" x=\"{middle:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    y - 3.0,
                    Escaped(&bar.text),
                );
            }
            if (bars.len() - 1 - i).is_multiple_of(step) {
                let _ = write!(
                    svg,
                    "<text class=\"label\" x=\"{middle:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                    COLUMN_HEIGHT - 4.0,
                    Escaped(&bar.label),
                );
            }
        }
        let _ = write!(
            svg,
            "<line class=\"axis\" x1=\"0\" y1=\"{y:.1}\" x2=\"{COLUMN_WIDTH}\" y2=\"{y:.1}\"/>",
            y = COLUMN_HEIGHT - BOTTOM
        );
        close(svg, id, title, description, COLUMN_WIDTH, bars)
    }

    /// Horizontal bars one under another, label on the left and value on the right
    /// (a comparison of named things; long labels fit).
    #[must_use]
    pub fn rows(
        id: &str,
        title: &str,
        description: &str,
        bars: Vec<Bar>,
        max: Option<f64>,
    ) -> Chart {
        let top = scale_top(&bars, max);
        let height = ROW_HEIGHT * bars.len().max(1) as f64;
        let mut svg = open(id, title, description, ROW_WIDTH, height);
        let room = ROW_WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        for (i, bar) in bars.iter().enumerate() {
            let y = i as f64 * ROW_HEIGHT;
            let length = room * length(bar.value) / top;
            let text_y = y + ROW_HEIGHT / 2.0 + 4.0;
            let _ = write!(
                svg,
                "<text class=\"label\" x=\"{:.1}\" y=\"{text_y:.1}\" text-anchor=\"end\">{}</text>\
                 <rect class=\"bar\" x=\"{LABEL_WIDTH}\" y=\"{:.1}\" width=\"{length:.1}\" height=\"{:.1}\"><title>{}: {}</title></rect>\
                 <text class=\"value\" x=\"{:.1}\" y=\"{text_y:.1}\">{}</text>",
                LABEL_WIDTH - 6.0,
                Escaped(&bar.label),
                y + 3.0,
                ROW_HEIGHT - 6.0,
                Escaped(&bar.label),
                Escaped(&bar.full),
                LABEL_WIDTH + length + 4.0,
                Escaped(&bar.text),
            );
        }
        close(svg, id, title, description, ROW_WIDTH, bars)
    }
}

fn length(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

/// The scale's top: `max` when given, else the longest bar; never 0.
fn scale_top(bars: &[Bar], max: Option<f64>) -> f64 {
    let top = max.unwrap_or_else(|| bars.iter().map(|b| length(b.value)).fold(0.0, f64::max));
    if top.is_finite() && top > 0.0 {
        top
    } else {
        1.0
    }
}

fn open(id: &str, title: &str, description: &str, width: f64, height: f64) -> String {
    let mut svg = String::with_capacity(256 + 320 * 12);
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-labelledby=\"{id}-title {id}-desc\" focusable=\"false\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        Escaped(title),
        Escaped(description),
        id = Escaped(id),
    );
    svg
}

fn close(
    mut svg: String,
    id: &str,
    title: &str,
    description: &str,
    width: f64,
    bars: Vec<Bar>,
) -> Chart {
    if bars.is_empty() {
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">No data yet</text>",
            width / 2.0,
            ROW_HEIGHT / 2.0 + 4.0
        );
    }
    svg.push_str("</svg>");
    Chart {
        id: id.to_owned(),
        title: title.to_owned(),
        description: description.to_owned(),
        bars,
        headings: ("Label".to_owned(), "Value".to_owned()),
        svg,
    }
}

/// Text escaped for XML content and attribute values.
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut start = 0;
        for (i, c) in self.0.char_indices() {
            let escape = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '"' => "&quot;",
                '\'' => "&#39;",
                _ => continue,
            };
            f.write_str(&self.0[start..i])?;
            f.write_str(escape)?;
            start = i + c.len_utf8();
        }
        f.write_str(&self.0[start..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `name="..."` attribute values of every element of kind `tag`.
    fn attr(svg: &str, tag: &str, name: &str) -> Vec<f64> {
        svg.split(&format!("<{tag} "))
            .skip(1)
            .filter_map(|el| {
                let from = el.find(&format!(" {name}=\""))? + name.len() + 3;
                el[from..].split('"').next()?.parse().ok()
            })
            .collect()
    }

    #[test]
    fn columns_are_as_tall_as_their_share_of_the_scale() {
        let c = Chart::columns(
            "a",
            "T",
            "D",
            vec![
                Bar::new("1", 50.0, "50%"),
                Bar::new("2", 100.0, "100%"),
                Bar::new("3", 0.0, "—"),
            ],
            Some(100.0),
        );
        let heights = attr(&c.svg, "rect", "height");
        let plot = COLUMN_HEIGHT - TOP - BOTTOM;
        assert_eq!(heights, vec![(plot / 2.0 * 10.0).round() / 10.0, plot, 0.0]);
        // Bottoms on the axis.
        let ys = attr(&c.svg, "rect", "y");
        for (y, h) in ys.iter().zip(&heights) {
            assert!((y + h - (COLUMN_HEIGHT - BOTTOM)).abs() < 0.11, "{y} + {h}");
        }
        // Side by side, not overlapping, inside the drawing.
        let xs = attr(&c.svg, "rect", "x");
        let w = attr(&c.svg, "rect", "width")[0];
        assert!(xs.windows(2).all(|p| p[0] + w < p[1]) && xs[2] + w <= COLUMN_WIDTH);
    }

    #[test]
    fn without_a_maximum_the_longest_bar_fills_the_scale() {
        let c = Chart::rows(
            "b",
            "T",
            "D",
            vec![
                Bar::new("x", 2.0, "2"),
                Bar::new("y", 8.0, "8"),
                Bar::new("z", f64::NAN, "?"),
            ],
            None,
        );
        let widths = attr(&c.svg, "rect", "width");
        let room = ROW_WIDTH - LABEL_WIDTH - VALUE_WIDTH;
        assert_eq!(widths, vec![room / 4.0, room, 0.0]);
        assert_eq!(c.svg.matches("<text class=\"label\"").count(), 3);
    }

    #[test]
    fn text_is_escaped_and_the_image_is_labelled() {
        let c = Chart::rows(
            "c",
            "<b>\"Hit\" & miss</b>",
            "it's",
            vec![Bar::new("<script>", 1.0, "1 & 2")],
            None,
        );
        assert!(!c.svg.contains("<script>") && !c.svg.contains("<b>"));
        assert!(c.svg.contains("&lt;script&gt;: 1 &amp; 2</title>"));
        assert!(c.svg.contains(
            "aria-labelledby=\"c-title c-desc\" focusable=\"false\"><title id=\"c-title\">&lt;b&gt;&quot;Hit&quot; &amp; miss&lt;/b&gt;</title><desc id=\"c-desc\">it&#39;s</desc>"
        ));
        assert!(c.svg.ends_with("</svg>"));
    }

    #[test]
    fn twelve_columns_get_six_labels_ending_with_the_last_and_empty_values_no_text() {
        let bars = (1..=12)
            .map(|i| {
                Bar::new(
                    format!("w{i}"),
                    f64::from(i),
                    if i == 3 { String::new() } else { i.to_string() },
                )
            })
            .collect();
        let c = Chart::columns("e", "T", "D", bars, None);
        let labels: Vec<&str> = c
            .svg
            .split("<text class=\"label\"")
            .skip(1)
            .filter_map(|t| t.split('>').nth(1)?.split('<').next())
            .collect();
        assert_eq!(labels, vec!["w2", "w4", "w6", "w8", "w10", "w12"]);
        assert_eq!(c.svg.matches("<text class=\"value\"").count(), 11);
        assert_eq!(
            c.svg.matches("<title").count(),
            13,
            "the chart's and every bar's"
        );
    }

    #[test]
    fn no_bars_say_so() {
        let c = Chart::columns("d", "T", "D", Vec::new(), None);
        assert!(c.svg.contains(">No data yet</text>"));
        assert!(!c.svg.contains("<rect"));
    }
}
