//! What `traptor enrich` counted, printed to stderr when it is done.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use traptor_core::record::MessageKind;
use traptor_core::rules::Rule;

use super::rules_file::Rejected;

/// How many problem lines the summary prints before it only counts them.
const PROBLEMS_SHOWN: usize = 20;

/// Counters of one run.
#[derive(Debug, Default)]
pub struct Summary {
    pub by_kind: BTreeMap<MessageKind, u64>,
    pub matched_tweets: u64,
    pub unmatched_tweets: u64,
    /// Tweets matched, per rule (same order as the rules).
    pub per_rule: Vec<u64>,
    pub skipped: u64,
    /// `line N: what went wrong`, in input order.
    pub problems: Vec<String>,
    pub problem_count: u64,
}

impl Summary {
    pub fn new(rule_count: usize) -> Summary {
        Summary {
            per_rule: vec![0; rule_count],
            ..Summary::default()
        }
    }

    pub fn problem(&mut self, line: u64, what: impl std::fmt::Display) {
        self.problem_count += 1;
        if self.problems.len() < PROBLEMS_SHOWN {
            self.problems.push(format!("line {line}: {what}"));
        }
    }

    /// The report printed at the end of a run.
    pub fn render(&self, input_name: &str, rules: &[Rule], rejected: &[Rejected]) -> String {
        let mut out = String::new();
        let written: u64 = self.by_kind.values().sum();
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let kinds = if kinds.is_empty() {
            "none".to_string()
        } else {
            kinds.join(", ")
        };
        let _ = writeln!(
            out,
            "traptor enrich: {written} messages written from {input_name} ({kinds})"
        );
        let _ = writeln!(out, "  skipped (bad lines): {}", self.skipped);
        let _ = writeln!(
            out,
            "  tweets: {} matched, {} unmatched (\"Not Found\")",
            self.matched_tweets, self.unmatched_tweets
        );
        let _ = writeln!(
            out,
            "rules: {} loaded, {} rejected",
            rules.len(),
            rejected.len()
        );
        for (rule, count) in rules.iter().zip(&self.per_rule) {
            let _ = writeln!(
                out,
                "  rule {} ({} {:?}, tag {:?}): {count} tweets",
                rule.rule_id,
                rule.stream_type,
                rule.value,
                rule.tag().unwrap_or("")
            );
        }
        for rejected in rejected {
            let _ = writeln!(out, "  rejected: {rejected}");
        }
        if self.problem_count > 0 {
            let _ = writeln!(out, "problems: {}", self.problem_count);
            for problem in &self.problems {
                let _ = writeln!(out, "  {problem}");
            }
            let hidden = self.problem_count - self.problems.len() as u64;
            if hidden > 0 {
                let _ = writeln!(out, "  ... and {hidden} more");
            }
        }
        out
    }
}
