//! The `aisle` binary: parses the command line and hands over to [`aisle::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    aisle::cli::main()
}
