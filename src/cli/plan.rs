//! `traptor plan --config cluster.toml`: what the supervisor would run with the rules stored
//! now — which connections, on which API keys, with how many terms and rules — and what it
//! would leave out (rules beyond the keys, slots without a key, invalid rules), without
//! starting anything.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use traptor_actors::config::{ClusterConfig, RulesConfig};
use traptor_actors::redis_target::{RedisTarget, RedisTlsFiles};
use traptor_actors::rule_store;
use traptor_actors::rules_file::load_rules_file;
use traptor_core::plan::{plan, Plan};
use traptor_core::{Rule, RuleError, RuleSet, SlotId};

use super::rules::connection::{block_on, connect, redis_failure, target};
use super::rules::write_stdout;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The cluster configuration (its API keys, slot selection and rule source are used).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Read the rules from this Redis, instead of the config's [redis] url or rules file.
    /// The config's [redis] TLS files are not used with it: give the --redis-… flags if needed.
    #[arg(long = "redis", value_name = "URL")]
    pub redis_url: Option<String>,

    /// PEM file of the private CA that signed the certificate of the --redis server.
    #[arg(long = "redis-ca-file", value_name = "PATH", requires = "redis_url")]
    pub redis_ca_file: Option<PathBuf>,

    /// PEM file of the client certificate for the --redis server (with --redis-client-key).
    #[arg(long = "redis-client-cert", value_name = "PATH", requires = "redis_url")]
    pub redis_client_cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key.
    #[arg(long = "redis-client-key", value_name = "PATH", requires = "redis_url")]
    pub redis_client_key: Option<PathBuf>,

    /// One JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = ClusterConfig::load(&args.config)?;
    let redis_override = match args.redis_url {
        Some(url) => Some(target(
            url,
            &RedisTlsFiles {
                ca_file: args.redis_ca_file,
                client_cert_file: args.redis_client_cert,
                client_key_file: args.redis_client_key,
            },
        )?),
        None => None,
    };
    let (source, loaded) = load_rules(&config, redis_override)?;
    let slots: BTreeMap<SlotId, Vec<Rule>> = loaded
        .iter()
        .map(|(slot, set)| (slot.clone(), set.rules.clone()))
        .collect();
    let keys: Vec<String> = config.key_names().into_iter().map(str::to_owned).collect();
    let planned = plan(&slots, &keys, None);
    let errors: Vec<&RuleError> = loaded.values().flat_map(|set| &set.errors).collect();

    if args.json {
        write_stdout(&format!(
            "{}\n",
            to_json(&source, &keys, &loaded, &planned, &errors)
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let rules: usize = slots.values().map(Vec::len).sum();
    let mut out = format!(
        "rules from {source}: {} slot(s), {rules} rule(s) to collect, {} not collected (invalid or paused); \
         {} API key(s); slots served: {}\n",
        slots.len(),
        errors.len(),
        keys.len(),
        config.slots
    );
    out.push_str(&planned.summary());
    if !errors.is_empty() {
        out.push_str(&format!(
            "rules not collected (invalid or paused): {}\n",
            errors.len()
        ));
        for error in errors {
            out.push_str(&format!("  {error}\n"));
        }
    }
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The configured slots' rules from Redis (the flags' server, else the config's) or from the
/// config's rules file; and a description of where they came from.
fn load_rules(
    config: &ClusterConfig,
    redis_override: Option<RedisTarget>,
) -> anyhow::Result<(String, BTreeMap<SlotId, RuleSet>)> {
    let wanted = |slot: &SlotId| config.slots.includes(slot);
    match (&config.rules, redis_override) {
        (RulesConfig::File { path }, None) => {
            let loaded = load_rules_file(path)?;
            Ok((
                path.display().to_string(),
                loaded
                    .into_iter()
                    .filter(|(slot, _)| wanted(slot))
                    .collect(),
            ))
        }
        (_, flag) => {
            let redis = match flag {
                Some(redis) => redis,
                None => RedisTarget::from_config(&config.redis)?,
            };
            let loaded = block_on(async {
                let mut con = connect(&redis).await?;
                rule_store::load_all(&mut con, &wanted)
                    .await
                    .context(redis_failure("reading the rules", &redis))
            })??;
            Ok((format!("Redis {}", redis.address()), loaded))
        }
    }
}

fn to_json(
    source: &str,
    keys: &[String],
    loaded: &BTreeMap<SlotId, RuleSet>,
    planned: &Plan,
    errors: &[&RuleError],
) -> serde_json::Value {
    use serde_json::json;
    let connections: Vec<_> = planned
        .connections
        .iter()
        .map(|c| {
            json!({
                "connection": c.id.to_string(),
                "slot": c.id.slot.to_string(),
                "part": c.id.part,
                "key": c.key,
                "terms": c.filter.len(),
                "rules": c.rules.len(),
                "rule_ids": c.rules.iter().map(|r| r.rule_id.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let left_out: Vec<_> = planned
        .left_out
        .iter()
        .map(|l| {
            json!({
                "slot": l.slot.to_string(),
                "rule_id": l.rule_id,
                "value": l.value,
                "reason": l.reason.to_string(),
            })
        })
        .collect();
    let rule_errors: Vec<_> = errors
        .iter()
        .map(|e| {
            json!({
                "rule_id": e.rule_id,
                "source": e.source,
                "error": e.problem.to_string(),
            })
        })
        .collect();
    json!({
        "source": source,
        "keys": keys,
        "slots": loaded.iter().map(|(slot, set)| (slot.to_string(), json!({"rules": set.rules.len(), "invalid": set.errors.len()}))).collect::<serde_json::Map<_, _>>(),
        "connections": connections,
        "left_out": left_out,
        "slots_without_key": planned.slots_without_key.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "unused_keys": planned.unused_keys,
        "rule_errors": rule_errors,
    })
}
