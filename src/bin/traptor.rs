//! `traptor <command>`: the operator's tool. See `traptor --help`.

/// The supervisor's allocator: `traptor enrich` runs the same hot path as a stream and allocates
/// per tweet (output copy, entity lists), which mimalloc serves faster than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    traptor::cli::main()
}
