//! The command line: `serve`, `import`, `seed`, `batch`, `eval`. Each command loads settings once,
//! runs, and reports failure as one sentence on stderr with a non-zero exit.

mod batch;
mod bench;
mod chat;
mod eval;
mod handoff;
mod import;
mod intents;
mod kernels;
mod kg;
mod serve;
mod train;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;

#[derive(Parser)]
#[command(
    name = "aisle",
    version,
    about = "Conversational shopping assistant: grounded product answers, customer service, human handoff"
)]
struct Cli {
    /// A TOML file overriding config/default.toml (also AISLE_CONFIG).
    #[arg(long, global = true, env = "AISLE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (embedded Postgres unless DATABASE_URL is set; demo store when empty).
    Serve(serve::ServeArgs),
    /// Import a product feed (upsert by id); rejected rows are reported with row number and reason.
    Import(import::ImportArgs),
    /// Load the demo store (products, customers, orders) from knowledge/demo.
    Seed(import::SeedArgs),
    /// Answer JSON Lines from stdin, one JSON line out per line in.
    #[command(subcommand)]
    Batch(batch::BatchCommand),
    /// Measure quality on labelled files.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// The knowledge graph: import/export the curated layer, stats, phrase resolution.
    #[command(subcommand)]
    Kg(kg::KgCommand),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Train models from labelled data and feedback.
    #[command(subcommand)]
    Train(train::TrainCommand),
    /// Chat with the assistant in the terminal (the same pipeline as the widget).
    Chat(chat::ChatArgs),
    /// Staff accounts (agents, editors, admins).
    #[command(subcommand)]
    User(user::UserCommand),
}

/// Runs the CLI; the exit code is non-zero on any failure.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = matches!(
        cli.command,
        Command::Batch(_)
            | Command::Chat(_)
            | Command::Eval(_)
            | Command::Kg(_)
            | Command::Bench(_)
            | Command::Train(_)
    );
    crate::telemetry::init_tracing(if quiet { "warn" } else { "info" });
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(settings, args).await,
            Command::Import(args) => import::run(settings, args).await,
            Command::Seed(args) => import::seed(settings, args).await,
            Command::Batch(cmd) => batch::run(settings, cmd).await,
            Command::Eval(cmd) => eval::run(settings, cmd).await,
            Command::Kg(cmd) => kg::run(settings, cmd).await,
            Command::Bench(cmd) => bench::run(settings, cmd).await,
            Command::User(cmd) => user::run(settings, cmd).await,
            Command::Train(cmd) => train::run(settings, cmd).await,
            Command::Chat(args) => chat::repl(settings, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
