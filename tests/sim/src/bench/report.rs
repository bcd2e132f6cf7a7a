//! The figures of one run, their medians over repeated runs, and the table
//! that puts runners side by side.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::stats::{median, Distribution};

/// How a figure is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds, shown with two decimals.
    Seconds,
    /// Milliseconds, shown with two decimals.
    Millis,
    /// Mebibytes, shown with one decimal.
    MiB,
    /// A count, shown as an integer.
    Count,
    /// A ratio to the number of jobs, shown with two decimals.
    PerJob,
    /// A percentage, shown with two decimals.
    Percent,
    /// A rate per minute, shown with one decimal.
    PerMinute,
}

impl Unit {
    fn show(self, v: f64) -> String {
        match self {
            Unit::Seconds => format!("{v:.2} s"),
            Unit::Millis => format!("{v:.2} ms"),
            Unit::MiB => format!("{v:.1} MiB"),
            Unit::Count => format!("{v:.0}"),
            Unit::PerJob => format!("{v:.2}"),
            Unit::Percent => format!("{v:.2} %"),
            Unit::PerMinute => format!("{v:.1} /min"),
        }
    }
}

/// One named figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Row label.
    pub name: String,
    /// Value in `unit`.
    pub value: f64,
    /// Unit.
    pub unit: Unit,
}

/// The figures of one run of one runner, in display order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    rows: Vec<Figure>,
}

impl Figures {
    /// Appends a figure.
    pub fn push(&mut self, name: impl Into<String>, value: f64, unit: Unit) {
        self.rows.push(Figure {
            name: name.into(),
            value,
            unit,
        });
    }

    /// Appends mean, p50, p95 and max of a distribution (nothing measured:
    /// a single row saying so is not a number, so the rows are left out).
    pub fn push_distribution(&mut self, name: &str, d: Option<Distribution>) {
        let Some(d) = d else {
            return;
        };
        for (what, v) in [
            ("mean", d.mean),
            ("p50", d.p50),
            ("p95", d.p95),
            ("max", d.max),
        ] {
            self.push(format!("{name} {what}"), v, Unit::Seconds);
        }
    }

    /// The rows.
    pub fn rows(&self) -> &[Figure] {
        &self.rows
    }

    /// The value of the row `name`.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.rows.iter().find(|f| f.name == name).map(|f| f.value)
    }

    /// Row by row median of several runs (rows missing from a run count as
    /// 0 there: they are request counters that stayed at zero).
    pub fn median_of(runs: &[Figures]) -> Figures {
        let mut out = Figures::default();
        for name in row_order(runs.iter()) {
            let unit = runs
                .iter()
                .flat_map(|r| r.rows.iter())
                .find(|f| f.name == name)
                .map_or(Unit::Count, |f| f.unit);
            let values: Vec<f64> = runs.iter().map(|r| r.get(&name).unwrap_or(0.0)).collect();
            out.push(name, median(&values).unwrap_or(0.0), unit);
        }
        out
    }
}

/// Row names in order of first appearance across `runs`.
fn row_order<'a>(runs: impl Iterator<Item = &'a Figures>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for r in runs {
        for f in &r.rows {
            if !names.contains(&f.name) {
                names.push(f.name.clone());
            }
        }
    }
    names
}

/// A table of runners side by side: one column per runner, then the ratio of
/// each later column to the first.
pub fn render_table(columns: &[(String, Figures)]) -> String {
    let names = row_order(columns.iter().map(|(_, f)| f));
    let units: BTreeMap<&str, Unit> = columns
        .iter()
        .flat_map(|(_, f)| f.rows.iter())
        .map(|f| (f.name.as_str(), f.unit))
        .collect();
    let mut header: Vec<String> = vec!["figure".to_owned()];
    header.extend(columns.iter().map(|(label, _)| label.clone()));
    if let Some((first, _)) = columns.first() {
        header.extend(
            columns
                .iter()
                .skip(1)
                .map(|(label, _)| format!("{label} / {first}")),
        );
    }
    let mut lines: Vec<Vec<String>> = vec![header];
    for name in &names {
        let unit = units.get(name.as_str()).copied().unwrap_or(Unit::Count);
        let values: Vec<Option<f64>> = columns.iter().map(|(_, f)| f.get(name)).collect();
        let mut line = vec![name.clone()];
        line.extend(
            values
                .iter()
                .map(|v| v.map_or("-".to_owned(), |v| unit.show(v))),
        );
        let first = values.first().copied().flatten();
        for v in values.iter().skip(1) {
            line.push(match (first, v) {
                (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
                _ => "-".to_owned(),
            });
        }
        lines.push(line);
    }
    let cols = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            lines
                .iter()
                .filter_map(|l| l.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (i, cell) in line.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i == 0 {
                let _ = write!(text, "{cell:<w$}");
            } else {
                let _ = write!(text, "  {cell:>w$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figs(wall: f64, extra: Option<f64>) -> Figures {
        let mut f = Figures::default();
        f.push("wall", wall, Unit::Seconds);
        if let Some(e) = extra {
            f.push("requests x per job", e, Unit::PerJob);
        }
        f
    }

    #[test]
    fn medians_row_by_row_with_missing_rows_as_zero() {
        let m = Figures::median_of(&[figs(3.0, Some(2.0)), figs(1.0, None), figs(2.0, Some(4.0))]);
        assert_eq!(m.get("wall"), Some(2.0));
        assert_eq!(m.get("requests x per job"), Some(2.0));
        assert_eq!(m.rows().len(), 2);
    }

    #[test]
    fn table_has_columns_and_ratios() {
        let t = render_table(&[
            ("ours".to_owned(), figs(2.0, None)),
            ("theirs".to_owned(), figs(3.0, Some(1.5))),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("figure") && lines[0].ends_with("theirs / ours"));
        assert!(lines[1].contains("2.00 s") && lines[1].contains("3.00 s"));
        assert!(lines[1].ends_with("1.50"), "{t}");
        assert!(lines[2].contains('-') && lines[2].contains("1.50"), "{t}");
    }

    #[test]
    fn distributions_give_four_rows() {
        let mut f = Figures::default();
        f.push_distribution("lag", None);
        assert!(f.rows().is_empty());
        let d = Distribution::of(&[std::time::Duration::from_secs(1)]);
        f.push_distribution("lag", d);
        assert_eq!(f.rows().len(), 4);
        assert_eq!(f.get("lag p95"), Some(1.0));
    }
}
