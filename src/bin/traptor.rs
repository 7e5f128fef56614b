//! `traptor <command>`: the operator's tool. See `traptor --help`.

fn main() -> std::process::ExitCode {
    traptor::cli::main()
}
