//! `thymis-agent`: the Thymis device agent (see the library docs).

use std::process::ExitCode;

use thymis_agent::cli::{self, Command};

fn main() -> ExitCode {
    let args = std::env::args_os().skip(1);
    match cli::parse(args, |name| std::env::var(name).ok()) {
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("thymis-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => {
            thymis_agent::logger::init(config.log_level);
            thymis_agent::agent::main(config)
        }
        Err(e) => {
            eprintln!("thymis-agent: {e}\nTry 'thymis-agent --help' for more information.");
            ExitCode::from(2)
        }
    }
}
