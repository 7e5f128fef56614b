//! The `traptor` command tree.
//!
//! Each subcommand is one module of this folder with a `pub struct Args` (`#[derive(clap::Args)]`)
//! and a `pub fn run(args: Args) -> anyhow::Result<ExitCode>`. Adding one is one file plus one
//! entry in the `commands!` list below; its doc comment becomes the command's help line.
//! An `Err` from `run` is printed as `traptor: <error>` and exits with status 1; clap's usage
//! errors exit with status 2.

use std::process::ExitCode;

use clap::Parser;

/// Declares the subcommand modules, the [`Command`] enum and its dispatch from one list.
macro_rules! commands {
    ($($(#[$doc:meta])* $variant:ident => $module:ident,)*) => {
        $(pub mod $module;)*

        /// The subcommands of `traptor`.
        #[derive(Debug, clap::Subcommand)]
        pub enum Command {
            $($(#[$doc])* $variant($module::Args),)*
        }

        impl Command {
            pub fn run(self) -> anyhow::Result<ExitCode> {
                match self {
                    $(Command::$variant(args) => $module::run(args),)*
                }
            }
        }
    };
}

commands! {
    /// Tag tweets from a file (or stdin) with the rules they match, as the streams do.
    Enrich => enrich,
    /// Add, list, remove, import and export the rule hashes in Redis (`traptor-<type>:<id>:<rule_id>`).
    Rules => rules,
    /// Show which connections and API keys the supervisor would run with the stored rules.
    Plan => plan,
    /// Run the Twitter v1.1 streaming-API emulator (test double, load generator, demo source).
    Firehose => firehose,
    /// Show how a running traptor-supervisor is doing (from its [status] endpoint).
    Status => status,
}

/// traptor collects Twitter-style streams driven by Redis rules and writes enriched tweets to
/// Kafka.
#[derive(Debug, Parser)]
#[command(name = "traptor", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Parses the command line, runs the command and turns its outcome into an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("traptor: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
