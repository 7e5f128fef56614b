//! Reading rule hashes from Redis in the original's shape: `SCAN MATCH traptor-*` (or one
//! slot's `traptor-<type>:<id>:*`), then `HGETALL` of each key, every value a string.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;
use redis::RedisResult;
use traptor_core::{RuleSet, SlotId};

/// How many keys one SCAN step asks for and one HGETALL pipeline carries.
const BATCH: usize = 500;

/// Every rule hash under `traptor-*` whose slot `wanted` accepts, parsed per slot. Keys of
/// other types or shapes are skipped with a log line, never fatal; a connection error is.
pub async fn load_all(
    con: &mut MultiplexedConnection,
    wanted: &dyn Fn(&SlotId) -> bool,
) -> RedisResult<BTreeMap<SlotId, RuleSet>> {
    let keys = scan_keys(con, "traptor-*").await?;
    let mut by_slot: BTreeMap<SlotId, Vec<String>> = BTreeMap::new();
    for key in keys {
        match SlotId::from_rule_key(&key) {
            Some(slot) if wanted(&slot) => by_slot.entry(slot).or_default().push(key),
            Some(_) => {}
            None => tracing::debug!(key, "ignoring a traptor-* key that is not traptor-<type>:<id>:<rule>"),
        }
    }
    let mut loaded = BTreeMap::new();
    for (slot, keys) in by_slot {
        let set = load_hashes(con, &slot, keys).await?;
        loaded.insert(slot, set);
    }
    Ok(loaded)
}

/// The rules of one slot (an empty set when it has none).
pub async fn load_slot(con: &mut MultiplexedConnection, slot: &SlotId) -> RedisResult<RuleSet> {
    let pattern = format!("{}*", glob_escape(&slot.rule_key_prefix()));
    let keys = scan_keys(con, &pattern).await?;
    // A glob-escaped prefix matches exactly, but keep the check: the key decides the slot.
    let keys = keys
        .into_iter()
        .filter(|key| SlotId::from_rule_key(key).as_ref() == Some(slot))
        .collect();
    load_hashes(con, slot, keys).await
}

/// All keys matching `pattern`, sorted so that logs and errors come in a stable order.
async fn scan_keys(con: &mut MultiplexedConnection, pattern: &str) -> RedisResult<Vec<String>> {
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(con)
            .await?;
        for raw in batch {
            match String::from_utf8(raw) {
                Ok(key) => keys.push(key),
                Err(e) => tracing::warn!(key = %String::from_utf8_lossy(e.as_bytes()), "ignoring a rule key that is not UTF-8"),
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// HGETALL of each key, pipelined; a key that is not a hash (or vanished) is skipped.
async fn load_hashes(con: &mut MultiplexedConnection, slot: &SlotId, keys: Vec<String>) -> RedisResult<RuleSet> {
    let mut hashes = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(BATCH) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for key in chunk {
            pipe.cmd("HGETALL").arg(key);
        }
        let results: Vec<RedisResult<Vec<(String, String)>>> = pipe.query_async(con).await?;
        for (key, result) in chunk.iter().zip(results) {
            match result {
                // Deleted between SCAN and HGETALL: gone, not an error.
                Ok(fields) if fields.is_empty() => {}
                Ok(fields) => hashes.push((Some(key.clone()), fields)),
                Err(e) => tracing::warn!(key, "skipping rule key that cannot be read as a hash of strings: {e}"),
            }
        }
    }
    Ok(RuleSet::from_hashes(hashes, Some(slot.stream_type)))
}

/// Escapes Redis glob specials so a slot id like `a*` matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_specials_are_escaped() {
        assert_eq!(glob_escape("traptor-track:a*[b]?\\:"), "traptor-track:a\\*\\[b\\]\\?\\\\:");
        assert_eq!(glob_escape("traptor-track:0:"), "traptor-track:0:");
    }
}
