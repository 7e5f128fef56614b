//! `traptor rules add | list | remove | import | export`: the operator's tools for the rule
//! hashes in Redis (`traptor-<type>:<id>:<rule_id>`, the original traptor's shape).
//!
//! Every rule is validated as the supervisor will validate it before it is written, and every
//! change is announced with `PUBLISH traptor-notify <type>:<id>` so that running supervisors
//! (and original traptors) pick it up at once. Exit status: 0 done, 1 an operational failure
//! (Redis unreachable, file unreadable, rule not found), 2 input refused (an invalid rule, no
//! importable rule, unusable arguments).

pub mod connection;
mod csv;
mod input;
mod shard;

mod add;
mod export;
mod import;
mod list;
mod remove;

use std::collections::BTreeSet;
use std::process::ExitCode;

use redis::aio::MultiplexedConnection;
use traptor_actors::rule_store::{self, StoredHash};
use traptor_core::SlotId;

pub use connection::{NotifyArgs, RedisArgs};

/// In exported files, the slot a rule was stored under; on import it decides the slot unless
/// `--slot` or `--auto-slot` is given, and it is never written into the hash.
pub const SLOT_FIELD: &str = "_slot";

/// The exit status of refused input, distinct from operational failures (1).
pub const REFUSED: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: RulesCommand,
}

/// The rule subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Validate one rule and write it to its slot (replacing a rule with the same id).
    Add(add::Args),
    /// Show the stored rules with the verdict of the supervisor's validation.
    List(list::Args),
    /// Delete one rule from its slot.
    Remove(remove::Args),
    /// Write the rules of a JSON-lines or CSV file; bad lines are reported and skipped.
    Import(import::Args),
    /// Write the stored rules to stdout, in the format `import` reads.
    Export(export::Args),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        RulesCommand::Add(args) => add::run(args),
        RulesCommand::List(args) => list::run(args),
        RulesCommand::Remove(args) => remove::run(args),
        RulesCommand::Import(args) => import::run(args),
        RulesCommand::Export(args) => export::run(args),
    }
}

/// Parses `<type>:<id>` exactly (`track:0`), for `--slot`.
pub fn parse_slot(text: &str) -> Result<SlotId, String> {
    let trimmed = text.trim();
    let slot = SlotId::from_notice(trimmed)
        .filter(|slot| trimmed.split(':').count() == 2 && !slot.id.trim().is_empty() && !slot.id.contains(char::is_whitespace))
        .ok_or_else(|| format!("{text:?} is not a slot; expected <type>:<id> with type track, follow or locations, e.g. track:0"))?;
    Ok(slot)
}

/// Writes a command's output; a reader that went away (`| head`) is not an error.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Prints why input was refused and returns the matching exit status.
pub fn refused(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("traptor: {message}");
    ExitCode::from(REFUSED)
}

/// Publishes `<type>:<id>` for each slot (unless `--no-notify`), reporting on stderr.
async fn announce(
    con: &mut MultiplexedConnection,
    notify: &NotifyArgs,
    slots: &BTreeSet<SlotId>,
) -> anyhow::Result<()> {
    if notify.no_notify || slots.is_empty() {
        return Ok(());
    }
    for slot in slots {
        let receivers = rule_store::notify(con, &notify.channel, slot).await.map_err(|e| {
            anyhow::anyhow!(
                "the rules are written, but publishing {slot} on {} failed ({e}); running supervisors \
                 will see the change at their next resync, or run the command again",
                notify.channel
            )
        })?;
        eprintln!(
            "notified {slot} on {} ({receivers} subscriber(s))",
            notify.channel
        );
    }
    Ok(())
}

/// Copies of the given rule ids stored in *other* slots of the same type: after a move or a
/// re-shard they would be collected twice, so the operator is told where they are.
async fn copies_elsewhere(
    con: &mut MultiplexedConnection,
    placed: &[(SlotId, String)],
) -> redis::RedisResult<Vec<StoredHash>> {
    let types: BTreeSet<_> = placed.iter().map(|(slot, _)| slot.stream_type).collect();
    let wanted = |slot: &SlotId| types.contains(&slot.stream_type);
    let stored = rule_store::scan_hashes(con, &wanted).await?;
    let placed: BTreeSet<(&SlotId, &str)> =
        placed.iter().map(|(slot, id)| (slot, id.trim())).collect();
    let placed_types_ids: BTreeSet<(traptor_core::StreamType, &str)> = placed
        .iter()
        .map(|(slot, id)| (slot.stream_type, *id))
        .collect();
    Ok(stored
        .into_iter()
        .filter(|hash| {
            let Some(id) = hash.rule_id() else {
                return false;
            };
            placed_types_ids.contains(&(hash.slot.stream_type, id))
                && !placed.contains(&(&hash.slot, id))
        })
        .collect())
}

/// Prints the warning for [`copies_elsewhere`], the first few in full.
fn warn_about_copies(copies: &[StoredHash]) {
    const LISTED: usize = 10;
    if copies.len() > LISTED {
        eprintln!(
            "warning: {} of these rule ids are also stored in other slots (the first {LISTED} below); \
             `traptor rules list` shows them all",
            copies.len()
        );
    }
    for copy in copies.iter().take(LISTED) {
        let id = copy.rule_id().unwrap_or_default();
        eprintln!(
            "warning: rule {id} is also stored in slot {} ({}); it is collected twice until removed: \
             traptor rules remove --slot {} --rule-id {id}",
            copy.slot, copy.key, copy.slot
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use traptor_core::StreamType;

    #[test]
    fn slots_must_be_type_colon_id() {
        assert_eq!(
            parse_slot("track:0"),
            Ok(SlotId::new(StreamType::Track, "0"))
        );
        assert_eq!(
            parse_slot(" follow:12 "),
            Ok(SlotId::new(StreamType::Follow, "12"))
        );
        for bad in ["track", "track:", "track:0:1", "tweets:0", "track:a b"] {
            let error = parse_slot(bad).unwrap_err();
            assert!(error.contains("e.g. track:0"), "{bad}: {error}");
        }
    }
}
