//! The printed table: every figure as median [min–max] over the repetitions, with the ratio
//! to direct and the target.

use std::fmt::Write as _;

/// Repetition samples of one figure.
#[derive(Debug, Default, Clone)]
pub(crate) struct Samples(pub Vec<f64>);

impl Samples {
    pub(crate) fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    pub(crate) fn median(&self) -> f64 {
        median(&self.0)
    }

    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    }

    fn show(&self, unit: &str, digits: usize) -> String {
        if self.0.is_empty() {
            return "—".into();
        }
        format!(
            "{:.d$} [{:.d$}–{:.d$}] {unit}",
            self.median(),
            self.min(),
            self.max(),
            d = digits
        )
    }
}

/// Median of any slice (mean of the middle two for even lengths); NaN when empty.
pub(crate) fn median(v: &[f64]) -> f64 {
    percentile(v, 50.0)
}

/// Nearest-rank percentile, interpolated; NaN when empty.
pub(crate) fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = p / 100.0 * (s.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    s[lo] + (s[hi] - s[lo]) * (rank - lo as f64)
}

/// How a figure is judged against its target.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// pipgate's median must be at most this.
    AtMost(f64),
    /// pipgate's median must be at least this fraction of direct's median.
    AtLeastOfDirect(f64),
    /// pipgate's median must be at most this fraction of direct's median (the `cache` table's
    /// pairs: with the cache / without, second install / first).
    AtMostOfDirect(f64),
    /// No target: information only.
    None,
}

/// One row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub name: String,
    pub unit: &'static str,
    pub digits: usize,
    pub direct: Samples,
    pub pipgate: Samples,
    /// The no-op Rust MITM reference figure, when it gives one.
    pub reference: &'static str,
    pub target: Target,
    pub target_text: &'static str,
}

impl Row {
    pub(crate) fn new(name: &str, unit: &'static str, digits: usize) -> Row {
        Row {
            name: name.into(),
            unit,
            digits,
            direct: Samples::default(),
            pipgate: Samples::default(),
            reference: "",
            target: Target::None,
            target_text: "",
        }
    }

    pub(crate) fn target(
        mut self,
        target: Target,
        text: &'static str,
        reference: &'static str,
    ) -> Row {
        self.target = target;
        self.target_text = text;
        self.reference = reference;
        self
    }

    fn ratio(&self) -> String {
        if self.direct.0.is_empty() || self.pipgate.0.is_empty() {
            return "—".into();
        }
        format!("{:.2}×", self.pipgate.median() / self.direct.median())
    }

    fn verdict(&self) -> String {
        if self.pipgate.0.is_empty() {
            return "—".into();
        }
        let m = self.pipgate.median();
        match self.target {
            Target::None => "".into(),
            Target::AtMost(t) if m <= t => "MET".into(),
            Target::AtMost(t) => format!("MISSED by {:.0}%", (m / t - 1.0) * 100.0),
            Target::AtMostOfDirect(f) => {
                let r = m / self.direct.median();
                if r <= f {
                    "MET".into()
                } else {
                    format!("MISSED by {:.0}%", (r / f - 1.0) * 100.0)
                }
            }
            Target::AtLeastOfDirect(f) => {
                let want = f * self.direct.median();
                if m >= want {
                    "MET".into()
                } else {
                    format!("MISSED by {:.0}%", (1.0 - m / want) * 100.0)
                }
            }
        }
    }
}

/// Renders rows as a Markdown table.
pub(crate) fn table(rows: &[Row]) -> String {
    table_with(rows, "direct (no proxy)", "pipgate")
}

/// Renders rows as a Markdown table whose two columns of figures are headed `left` and
/// `right` (the `cache` table's pairs: without and with the cache).
pub(crate) fn table_with(rows: &[Row], left: &str, right: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| figure | {left} | {right} | {right} / {left} | target | verdict | no-op MITM ref. |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.direct.show(r.unit, r.digits),
            r.pipgate.show(r.unit, r.digits),
            r.ratio(),
            r.target_text,
            r.verdict(),
            r.reference,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 100.0), 5.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn verdicts() {
        let mut r = Row::new("x", "µs", 1).target(Target::AtMost(40.0), "≤ 40 µs", "");
        r.pipgate = Samples(vec![30.0, 50.0, 35.0]);
        assert_eq!(r.verdict(), "MET");
        r.pipgate = Samples(vec![60.0]);
        assert_eq!(r.verdict(), "MISSED by 50%");
        let mut t = Row::new("t", "MB/s", 0).target(Target::AtLeastOfDirect(0.6), "", "");
        t.direct = Samples(vec![100.0]);
        t.pipgate = Samples(vec![50.0]);
        assert_eq!(t.verdict(), "MISSED by 17%");
        assert_eq!(t.ratio(), "0.50×");
    }
}
