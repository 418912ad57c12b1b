//! The `switchboard` binary: command line, then hands over to the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc malloc: the engine, the SIP driver and the HTTP API run on
/// different threads and free each other's allocations (offers, events, call cells), and
/// glibc serialises such frees on the allocating arena's lock — in the engine benchmark at
/// 2 threads a `futex` wake-up in 7 % of the samples and 30 % less throughput (see
/// ARCHITECTURE.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchboard — a SIP ACD server.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Without it the built-in demo configuration runs.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Run,
    /// Validate a configuration file and print every error with its key path.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage the client directory.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// Load clients from a CSV file with the header `number,name,type,manager,region,overdue_debt`.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => switchboard::cli::run(config),
        Command::CheckConfig { file } => switchboard::cli::check_config(&file),
        Command::Migrate => switchboard::cli::migrate(config),
        Command::Clients {
            command: ClientsCommand::Import { file },
        } => switchboard::cli::import_clients(config, &file),
    }
}
