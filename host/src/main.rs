//! The `cairn` command line: a thin shell over the `cairn` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
