//! `junction-bench`: a load generator for WAMP routers written on Junction's own codec,
//! speaking WAMP over WebSocket and RawSocket with any serializer. Scenarios `rpc`,
//! `pubsub` (exact, prefix or wildcard subscriptions), `sessions`, `churn`, `storm`
//! (reconnect storm); the raw relay (`relay-server`, measured with `relay`) as the
//! transport's ceiling; `compare` and `chart` turn result lines into the comparison
//! table and SVG. See `bench/README.md` and `bench/compare.sh`.
//!
//! Every scenario prints a human table and one `RESULT {json}` line on stdout, and a
//! progress bar on stderr while it runs.

mod chart;
mod churn;
mod cli;
mod client;
mod compare;
mod error;
mod http;
mod proc;
mod pubsub;
mod relay;
mod report;
mod rpc;
mod sessions;
mod stats;
mod storm;
mod topics;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::Result;

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

fn run(cli: Cli) -> Result<()> {
    let mut report = match cli.command {
        Command::Compare(a) => return compare::run(&a),
        Command::Chart(a) => return chart::run(&a),
        Command::RelayServer(a) => {
            let threads =
                a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()?;
            return rt.block_on(relay::serve(a));
        }
        Command::Rpc(a) => runtime(a.common.threads)?.block_on(rpc::run(a))?,
        Command::Pubsub(a) => runtime(a.common.threads)?.block_on(pubsub::run(a))?,
        Command::Sessions(a) => runtime(a.common.threads)?.block_on(sessions::run(a))?,
        Command::Churn(a) => runtime(a.common.threads)?.block_on(churn::run(a))?,
        Command::Http(a) => runtime(a.common.threads)?.block_on(http::run(a))?,
        Command::Storm(a) => runtime(a.common.threads)?.block_on(storm::run(a))?,
        Command::Relay(a) => runtime(a.common.threads)?.block_on(relay::run(a))?,
    };
    report.emit();
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("junction-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
