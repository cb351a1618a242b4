//! `thymis-controller`: the Thymis controller (web API) and the project tools for users' own CI
//! and scripts (`check`, `render`).

mod agent_clients;
mod agent_relay;
mod agent_routes;
mod api;
mod app;
mod auth;
mod cli;
mod error;
mod notifications;
mod serve;
mod server;
mod ui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let result = match args.command {
        Some(command) => cli::run(command),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(serve::serve(args.serve)))
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
