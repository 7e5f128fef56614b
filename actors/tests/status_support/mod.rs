//! Helpers for the status tests: a checker of Prometheus' text exposition format, a stand-in
//! supervisor for reports built by hand, and a blocking GET run off the actor thread.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use actix::prelude::*;
use traptor_actors::status::client::{self, Response};
use traptor_actors::supervisor::status::StatusSnapshot;
use traptor_actors::supervisor::GetStatus;

/// Checks `text` line by line against the exposition format (0.0.4) and returns every sample
/// as `name{labels}` → value. Fails with the offending line.
pub fn parse_exposition(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut samples = BTreeMap::new();
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let fail = |why: &str| Err(format!("{why}: {line:?}"));
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or_default();
            if !valid_name(name) || !helped.insert(name.to_owned()) {
                return fail("bad or repeated HELP");
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            let (name, kind) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            if !valid_name(name) || words.next().is_some() || !typed.insert(name.to_owned()) {
                return fail("bad or repeated TYPE");
            }
            if !["counter", "gauge", "untyped"].contains(&kind) {
                return fail("unexpected type");
            }
            if kind == "counter" && !name.ends_with("_total") {
                return fail("a counter without _total");
            }
            if !helped.contains(name) {
                return fail("TYPE before its HELP");
            }
            current = Some((name.to_owned(), kind.to_owned()));
        } else if line.starts_with('#') || line.is_empty() {
            return fail("unexpected comment or empty line");
        } else {
            let (series, value) = match line.rsplit_once(' ') {
                Some(parts) => parts,
                None => return fail("no value"),
            };
            let name = series.split('{').next().unwrap_or_default();
            if current.as_ref().map(|c| c.0.as_str()) != Some(name) {
                return fail("a sample outside its family");
            }
            if let Some(labels) = series.strip_prefix(name).filter(|l| !l.is_empty()) {
                if let Err(why) = check_labels(labels) {
                    return fail(&why);
                }
            }
            let value = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => match v.parse() {
                    Ok(v) => v,
                    Err(_) => return fail("bad value"),
                },
            };
            if samples.insert(series.to_owned(), value).is_some() {
                return fail("a repeated series");
            }
        }
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{a="x",b="y\"z"}`: label names valid, values quoted with only `\\`, `\"`, `\n` escapes.
fn check_labels(labels: &str) -> Result<(), String> {
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .ok_or("labels not in braces")?;
    let mut rest = inner;
    let mut names = BTreeSet::new();
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").ok_or("a label without =\"")?;
        if !valid_name(name) || name.contains(':') || !names.insert(name) {
            return Err(format!("bad or repeated label name {name:?}"));
        }
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\' | '"' | 'n')) => {}
                    _ => return Err("a bad escape".into()),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err("a raw newline".into()),
                Some(_) => {}
                None => return Err("an unterminated label value".into()),
            }
        };
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(more) if !more.is_empty() => more,
            Some(_) => return Err("a trailing comma".into()),
            None if rest.is_empty() => rest,
            None => return Err("labels not separated by commas".into()),
        };
    }
    Ok(())
}

/// Answers `GetStatus` with a fixed snapshot (for reports built by hand).
pub struct FixedSupervisor(pub StatusSnapshot);

impl Actor for FixedSupervisor {
    type Context = Context<Self>;
}

impl Handler<GetStatus> for FixedSupervisor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.0.clone())
    }
}

/// `GET http://{addr}{path}` on a blocking thread, so the actors on this thread keep running.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Response {
    let base = format!("http://{addr}");
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || client::get(&base, &path, Duration::from_secs(10)))
        .await
        .expect("the GET thread")
        .unwrap_or_else(|e| panic!("GET failed: {e}"))
}

#[test]
fn the_checker_refuses_what_prometheus_would() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\n# HELP g G.\n# TYPE g gauge\ng 0.5\n";
    let samples = parse_exposition(good).unwrap();
    assert_eq!(samples["a_total{x=\"1\",y=\"q\\\"\"}"], 3.0);
    assert_eq!(samples["g"], 0.5);
    for bad in [
        "a_total 1\n",
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "# HELP g G.\n# TYPE g gauge\ng{x=1} 1\n",
        "# HELP g G.\n# TYPE g gauge\ng{x=\"1\"} one\n",
        "# HELP g G.\n# TYPE g gauge\ng 1\ng 2\n",
        "# HELP g G.\n# TYPE g gauge\n# HELP h H.\n# TYPE h gauge\ng 1\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}
