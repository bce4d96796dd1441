//! `wps`: a command-line client for Azure Web PubSub, on the `webpubsub-client` Rust API.

mod args;
mod bench;
mod connect;
mod output;
mod send;
mod stream;
mod sub;
mod token;

use std::process::ExitCode;

use clap::Parser;

use args::{BenchCommand, Cli, Command};

/// Why a command failed; each kind has its exit code (listed in `wps --help`).
#[derive(Debug)]
pub enum Failure {
    /// An operation was refused or failed (exit 1).
    Operation(String),
    /// The arguments do not make a usable command (exit 2, as for clap's own errors).
    Usage(String),
    /// No connection, or it was lost for good (exit 3).
    Connection(String),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Operation(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Connection(_) => 3,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Operation(m) | Failure::Usage(m) => f.write_str(m),
            Failure::Connection(m) => write!(f, "connection failed: {m}"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    connect::init_logging(cli.verbose);
    let result = match &cli.command {
        Command::Token(args) => token::run(&cli.conn, args),
        command => run_async(&cli, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("wps: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run_async(cli: &Cli, command: &Command) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Operation(format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(async {
        match command {
            Command::Sub(args) => sub::run(&cli.conn, args, cli.verbose).await,
            Command::Pub(args) => send::run_pub(&cli.conn, args, cli.verbose).await,
            Command::Event(args) => send::run_event(&cli.conn, args, cli.verbose).await,
            Command::Invoke(args) => send::run_invoke(&cli.conn, args).await,
            Command::Stream(args) => stream::run(&cli.conn, args, cli.verbose).await,
            Command::Token(args) => token::run(&cli.conn, args),
            Command::Bench(BenchCommand::Pub(args)) => bench::run_pub(&cli.conn, args).await,
            Command::Bench(BenchCommand::Sub(args)) => {
                bench::run_sub(&cli.conn, args, cli.verbose).await
            }
        }
    });
    // A read of standard input blocks a thread that cannot be cancelled; dropping the runtime
    // would wait for it, so an interrupted `wps stream` would hang until its next input line.
    // The command has stopped its client by now, so nothing else is left to wait for.
    runtime.shutdown_background();
    result
}
