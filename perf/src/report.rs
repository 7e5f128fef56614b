//! A scenario's results: named figures with their target and whether it was met, printed as
//! a Markdown table so a run can be pasted into BENCHMARKS.md as it is.

use std::fmt::Write;

/// Whether a figure met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// A figure reported for context, with no target.
    Info,
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub name: String,
    pub value: String,
    pub target: String,
    pub verdict: Verdict,
}

/// Everything one scenario measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub title: String,
    /// How it was run (sizes, settings), one sentence each.
    pub setup: Vec<String>,
    pub figures: Vec<Figure>,
    /// What the figures mean, or why a target was missed.
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(title: impl Into<String>) -> Report {
        Report {
            title: title.into(),
            ..Report::default()
        }
    }

    pub fn setup(&mut self, line: impl Into<String>) {
        self.setup.push(line.into());
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    /// A figure with no target.
    pub fn info(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.figures.push(Figure {
            name: name.into(),
            value: value.into(),
            target: String::new(),
            verdict: Verdict::Info,
        });
    }

    /// A figure checked against `target`: `met` says whether it was reached.
    pub fn check(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) {
        self.figures.push(Figure {
            name: name.into(),
            value: value.into(),
            target: target.into(),
            verdict: if met { Verdict::Met } else { Verdict::Missed },
        });
    }

    /// True when no checked figure missed its target.
    pub fn all_met(&self) -> bool {
        self.figures.iter().all(|f| f.verdict != Verdict::Missed)
    }

    /// The report as Markdown: a heading, the setup, a table, the notes.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.title);
        for line in &self.setup {
            let _ = writeln!(out, "- {line}");
        }
        if !self.setup.is_empty() {
            out.push('\n');
        }
        out.push_str("| figure | measured | target | met |\n|---|---|---|---|\n");
        for f in &self.figures {
            let verdict = match f.verdict {
                Verdict::Met => "yes",
                Verdict::Missed => "**NO**",
                Verdict::Info => "",
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {verdict} |",
                cell(&f.name),
                cell(&f.value),
                cell(&f.target)
            );
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for line in &self.notes {
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}

/// A table cell may not hold `|` or a line break.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A count with thousands separators: 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn markdown_marks_missed_targets_and_escapes_cells() {
        let mut report = Report::new("demo");
        report.setup("2 streams");
        report.check("rate", "10 /s", "≥ 20 /s", false);
        report.check("loss", "0", "0", true);
        report.info("note|pipe", "a\nb");
        let text = report.to_markdown();
        assert!(text.starts_with("### demo\n\n- 2 streams\n"), "{text}");
        assert!(
            text.contains("| rate | 10 /s | ≥ 20 /s | **NO** |"),
            "{text}"
        );
        assert!(text.contains("| loss | 0 | 0 | yes |"), "{text}");
        assert!(text.contains("| note\\|pipe | a b |  |  |"), "{text}");
        assert!(!report.all_met());
    }
}
