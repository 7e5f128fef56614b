//! `traptor enrich --rules RULES [INPUT]`: tags tweets offline with the rules they match, exactly
//! as a stream would, and writes them as JSON lines to stdout.
//!
//! INPUT (a file, or stdin when absent or `-`) is JSON lines or a raw `delimited=length` capture
//! of a stream; keep-alives are skipped. Every tweet is matched against every rule of the file,
//! whatever its type. Control messages are written unchanged. A line that is not a JSON object
//! is reported with its line number and skipped. A summary goes to stderr. The exit status is
//! non-zero only when the arguments are unusable or a file cannot be read.

mod rules_file;
mod summary;

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use traptor_core::enrich::{EnrichError, Enriched, Enricher};
use traptor_core::protocol::{FrameDecoder, Item, DEFAULT_MAX_FRAME_BYTES};
use traptor_core::record::MessageKind;

use summary::Summary;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rule hashes as in Redis: a JSON array, one JSON object, or JSON lines. Each needs
    /// `rule_id`, `value` and `rule_type` (track, follow, locations) or `orig_type`.
    #[arg(long, value_name = "RULES")]
    pub rules: PathBuf,

    /// Tweets as JSON lines or a `delimited=length` capture; stdin when absent or `-`.
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let rules = rules_file::load(&args.rules)?;
    let (reader, input_name): (Box<dyn BufRead>, String) = match &args.input {
        None => (Box::new(io::stdin().lock()), "stdin".to_string()),
        Some(path) if path.as_os_str() == "-" => {
            (Box::new(io::stdin().lock()), "stdin".to_string())
        }
        Some(path) => {
            let file = File::open(path).with_context(|| {
                format!(
                    "cannot open the input {}; give a readable file of tweets, or `-` for stdin",
                    path.display()
                )
            })?;
            (
                Box::new(BufReader::with_capacity(1 << 16, file)),
                path.display().to_string(),
            )
        }
    };
    let enricher = Enricher::new(None, rules.rules);
    let mut summary = Summary::new(enricher.rules().len());
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    enrich_stream(reader, &input_name, &enricher, &mut out, &mut summary)?;
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write to stdout")
        }
        _ => {}
    }
    eprint!(
        "{}",
        summary.render(&input_name, enricher.rules(), &rules.rejected)
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads `reader` line by line through the frame decoder, so that every frame, keep-alive and
/// framing error is known by the line it ended on.
fn enrich_stream(
    mut reader: Box<dyn BufRead + '_>,
    input_name: &str,
    enricher: &Enricher,
    out: &mut impl Write,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let mut line = Vec::with_capacity(8192);
    let mut line_number: u64 = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {input_name}"))?;
        if read == 0 {
            break;
        }
        line_number += 1;
        if line.last() != Some(&b'\n') {
            line.push(b'\n');
        }
        decoder.push(&line);
        while let Some(item) = decoder.next_item() {
            let keep_going = handle_item(item, line_number, enricher, out, summary)?;
            if !keep_going {
                return Ok(());
            }
        }
    }
    if let Some(error) = decoder.finish() {
        summary.skipped += 1;
        summary.problem(line_number, error);
    }
    Ok(())
}

/// Enriches and writes one item; `false` when stdout is closed (e.g. piped into `head`).
fn handle_item(
    item: Item,
    line: u64,
    enricher: &Enricher,
    out: &mut impl Write,
    summary: &mut Summary,
) -> anyhow::Result<bool> {
    let frame = match item {
        Item::Frame(frame) => frame,
        Item::KeepAlive => return Ok(true),
        Item::Error(error) => {
            summary.skipped += 1;
            summary.problem(line, format!("{error}"));
            return Ok(true);
        }
    };
    let Enriched {
        record,
        matched,
        error,
    } = enricher.enrich(&frame, now_ms());
    if record.kind == MessageKind::Invalid {
        summary.skipped += 1;
        let why = error.map_or_else(|| "not a JSON object".to_string(), |e| e.to_string());
        summary.problem(
            line,
            format!(
                "{}; skipped",
                why.trim_end_matches("; it was kept as an invalid message")
            ),
        );
        return Ok(true);
    }
    if let Some(error @ (EnrichError::BadCreatedAt { .. } | EnrichError::UnreadableTweet { .. })) =
        &error
    {
        summary.problem(line, error);
    }
    *summary.by_kind.entry(record.kind).or_default() += 1;
    if record.kind == MessageKind::Tweet {
        if matched.is_empty() {
            summary.unmatched_tweets += 1;
        } else {
            summary.matched_tweets += 1;
        }
        for rule in matched {
            summary.per_rule[rule] += 1;
        }
    }
    match write_json_line(out, &record.payload) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("cannot write to stdout"),
    }
}

/// Writes one JSON document as one line. A raw line break inside a JSON document can only be
/// whitespace between tokens, so it is written as a space.
fn write_json_line(out: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    if payload.iter().any(|&b| b == b'\n' || b == b'\r') {
        let flat: Vec<u8> = payload
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect();
        out.write_all(&flat)?;
    } else {
        out.write_all(payload)?;
    }
    out.write_all(b"\n")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
