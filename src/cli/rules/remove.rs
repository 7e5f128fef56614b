//! `traptor rules remove`: deletes one rule of a slot, whether it is keyed by its rule id
//! (`add_rules.py`, this tool) or by an index (`rule_extract.py`).

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Context;
use traptor_actors::rule_store;
use traptor_core::SlotId;

use super::connection::{block_on, connect, redis_failure, NotifyArgs, RedisArgs};
use super::{announce, parse_slot};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The slot `<type>:<id>` the rule is stored in.
    #[arg(long, value_parser = parse_slot, value_name = "TYPE:ID")]
    pub slot: SlotId,

    /// The rule's id (its `rule_id` field).
    #[arg(long, value_name = "ID")]
    pub rule_id: String,

    #[command(flatten)]
    pub redis: RedisArgs,

    #[command(flatten)]
    pub notify: NotifyArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = args.redis.target()?;
    block_on(async {
        let mut con = connect(&target).await?;
        let deleted = rule_store::remove_rule(&mut con, &args.slot, &args.rule_id)
            .await
            .context(redis_failure("removing the rule", &target))?;
        if deleted.is_empty() {
            anyhow::bail!(
                "slot {} has no rule {}; `traptor rules list --slot {}` shows its rules",
                args.slot,
                args.rule_id.trim(),
                args.slot
            );
        }
        println!(
            "removed rule {} from {} ({})",
            args.rule_id.trim(),
            args.slot,
            deleted.join(", ")
        );
        announce(&mut con, &args.notify, &BTreeSet::from([args.slot.clone()])).await?;
        Ok(ExitCode::SUCCESS)
    })?
}
