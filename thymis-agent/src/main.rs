//! `thymis-agent`: the Thymis device agent. This build answers `--version` and `--help`;
//! the controller connection is built on top of it.

use std::process::ExitCode;

const USAGE: &str = "\
Usage: thymis-agent [--help | --version]

The Thymis device agent. It runs on every managed NixOS device and connects out to the
Thymis controller named by the CONTROLLER_HOST environment variable.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V") => {
            println!("thymis-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
