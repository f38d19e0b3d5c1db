//! The `euphrosyne` binary: wires the command line to the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
