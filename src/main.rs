//! The `ztlake` command. See `ztlake --help` and the README.

fn main() -> std::process::ExitCode {
    ztlake::cli::main()
}
