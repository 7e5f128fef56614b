//! `traptor rules add`: one rule, validated for its slot before anything is written.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use traptor_actors::rule_store::{self, PutRuleError};
use traptor_core::SlotId;

use super::connection::{block_on, connect, redis_failure, NotifyArgs, RedisArgs};
use super::{announce, copies_elsewhere, parse_slot, refused, warn_about_copies};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The slot `<type>:<id>` (e.g. track:0); the rule is stored as traptor-<type>:<id>:<rule_id>.
    #[arg(long, value_parser = parse_slot, value_name = "TYPE:ID")]
    pub slot: SlotId,

    /// The rule's id; a rule with this id already in the slot is replaced.
    #[arg(long, value_name = "ID")]
    pub rule_id: String,

    /// A track phrase, a numeric user id (follow), or a box sw_lon,sw_lat,ne_lon,ne_lat (locations).
    #[arg(long, value_name = "VALUE", allow_hyphen_values = true)]
    pub value: String,

    /// How the rule matches: keyword, hashtag (track), userid, username (follow), geo (locations).
    #[arg(long, value_name = "ORIG_TYPE")]
    pub orig_type: Option<String>,

    /// Copied to the output as rule_tag.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Any other hash field, e.g. --field project_id=p7 (repeatable). May set rule_type,
    /// status and date_added, which otherwise default to the slot's type, "active" and now (UTC).
    #[arg(long = "field", value_name = "NAME=VALUE", value_parser = parse_field)]
    pub fields: Vec<(String, String)>,

    #[command(flatten)]
    pub redis: RedisArgs,

    #[command(flatten)]
    pub notify: NotifyArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let fields = match build_fields(&args, now) {
        Ok(fields) => fields,
        Err(message) => return Ok(refused(message)),
    };
    // Validate before connecting: a bad rule is refused even when Redis is down.
    if let Err(error) = rule_store::validate_for_storage(&args.slot, fields.clone()) {
        return Ok(refused(format!("refused: {error}")));
    }
    let target = args.redis.target()?;
    block_on(async {
        let mut con = connect(&target).await?;
        let (storable, report) = match rule_store::put_rule(&mut con, &args.slot, fields).await {
            Ok(done) => done,
            Err(PutRuleError::Invalid(error)) => return Ok(refused(format!("refused: {error}"))),
            Err(PutRuleError::Redis(e)) => {
                return Err(e).context(redis_failure("writing the rule", &target))
            }
        };
        let key = &report.written[0];
        let verb = if report.updated.is_empty() && report.replaced.is_empty() {
            "added"
        } else {
            "replaced"
        };
        let rule = &storable.rule;
        println!(
            "{verb} rule {} in {} ({key}): {}",
            rule.rule_id,
            args.slot,
            rule.term.to_filter_value()
        );
        if let Some(status) = &storable.inactive {
            eprintln!(
                "note: its status is {status:?}: stored, but not collected until it is \"active\""
            );
        }
        for old in &report.replaced {
            eprintln!("removed the older copy {old} of the same rule id");
        }
        let copies = copies_elsewhere(&mut con, &[(args.slot.clone(), rule.rule_id.clone())])
            .await
            .context(redis_failure("looking for copies in other slots", &target))?;
        warn_about_copies(&copies);
        announce(&mut con, &args.notify, &report.slots).await?;
        Ok(ExitCode::SUCCESS)
    })?
}

/// The hash to write, in the field order of the original's stored rules, with the defaults
/// for what was not given. `now` is seconds since 1970 (for `date_added`).
fn build_fields(args: &Args, now: u64) -> Result<Vec<(String, String)>, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let explicit = [
        ("rule_id", Some(args.rule_id.trim().to_owned())),
        ("value", Some(args.value.clone())),
        ("tag", args.tag.clone()),
        ("orig_type", args.orig_type.clone()),
    ];
    for (name, value) in explicit {
        if let Some(value) = value {
            fields.push((name.to_owned(), value));
        }
    }
    for (name, value) in &args.fields {
        if fields.iter().any(|(existing, _)| existing == name) {
            return Err(format!(
                "the field {name} is given twice; give it once (as --{} or --field)",
                name.replace('_', "-")
            ));
        }
        fields.push((name.clone(), value.clone()));
    }
    let defaults = [
        ("rule_type", args.slot.stream_type.as_str().to_owned()),
        ("status", "active".to_owned()),
        ("date_added", utc_datetime(now)),
    ];
    for (name, value) in defaults {
        if !fields.iter().any(|(existing, _)| existing == name) {
            fields.push((name.to_owned(), value));
        }
    }
    Ok(fields)
}

/// `NAME=VALUE` for `--field`.
fn parse_field(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=VALUE, e.g. --field project_id=p7"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{text:?} has no field name before '='"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, the original's `date_added` format.
fn utc_datetime(unix_secs: u64) -> String {
    traptor_core::timestamps::utc_date_time(unix_secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: Args,
    }

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec![
            "add",
            "--slot",
            "track:0",
            "--rule-id",
            "123",
            "--value",
            "happy",
        ];
        argv.extend_from_slice(extra);
        Wrapper::try_parse_from(argv).unwrap().args
    }

    #[test]
    fn dates_are_utc_in_the_original_format() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00:00");
        assert_eq!(utc_datetime(1_462_899_514), "2016-05-10 16:58:34");
        assert_eq!(utc_datetime(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn defaults_fill_what_was_not_given() {
        let fields = build_fields(
            &args(&["--orig-type", "keyword", "--tag", "t"]),
            1_462_899_514,
        )
        .unwrap();
        let names: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("rule_id", "123"),
                ("value", "happy"),
                ("tag", "t"),
                ("orig_type", "keyword"),
                ("rule_type", "track"),
                ("status", "active"),
                ("date_added", "2016-05-10 16:58:34"),
            ]
        );
    }

    #[test]
    fn extra_fields_may_set_defaults_but_not_repeat_flags() {
        let fields = build_fields(
            &args(&["--field", "status=paused", "--field", "appid=a=b"]),
            0,
        )
        .unwrap();
        assert!(fields.contains(&("status".into(), "paused".into())));
        assert!(fields.contains(&("appid".into(), "a=b".into())));
        assert_eq!(fields.iter().filter(|(k, _)| k == "status").count(), 1);
        let error = build_fields(&args(&["--field", "value=other"]), 0).unwrap_err();
        assert!(error.contains("value is given twice"), "{error}");
        assert!(parse_field("novalue").is_err());
        assert!(parse_field("=x").is_err());
    }
}
