//! Command line: `euphrosyne serve`, `euphrosyne sandbox` and `euphrosyne recipe new|build|pack|verify|run`.

mod recipe;
mod sandbox;
mod scaffold;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Euphrosyne: an incident reconciler for Kubernetes that runs WebAssembly recipes.
#[derive(Debug, Parser)]
#[command(name = "euphrosyne", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `euphrosyne=debug`.
    #[arg(
        long,
        global = true,
        env = "EUPHROSYNE_LOG",
        default_value = "warn,wasmtime_wasi_http=error"
    )]
    log: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "EUPHROSYNE_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the host: receive alerts, run recipes, serve the API.
    Serve(serve::ServeArgs),
    /// Run one recipe call for the host: input from Redis, result published to Redis.
    Sandbox(sandbox::SandboxArgs),
    /// Write, build, pack, verify and run recipes.
    #[command(subcommand)]
    Recipe(recipe::RecipeCommand),
}

fn init_tracing(filter: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Parse the command line, run it, map errors to a message and exit code 1 (2 for usage).
pub fn main() -> ExitCode {
    let started = sandbox::Started::now();
    let cli = Cli::parse();
    init_tracing(&cli.log, cli.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Recipe(cmd) => recipe::run(cmd).await,
            Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Sandbox(args) => sandbox::run(args, started).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
