//! Command line and environment.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::relay::AllowedPort;

/// The usage text of `--help`.
pub const USAGE: &str = "\
Usage: thymis-agent [OPTIONS]

The Thymis device agent. It runs on every managed NixOS device, connects out to the
Thymis controller, and keeps the device reachable and reported there.

Options:
      --controller-host <URL>       The controller's URL (http, https, ws or wss; a base
                                    path is kept) [env: CONTROLLER_HOST]
      --root <DIR>                  The directory every device file lives under [default: /]
      --ca-file <FILE>              Also trust the CA certificates in this PEM file
                                    [env: THYMIS_AGENT_CA_FILE]
      --allow-port <PORT[=HOST:PORT]>
                                    A port the controller may open a channel to, optionally
                                    redirected; repeatable. Replaces the default 22 and 5900
                                    (both to 127.0.0.1 on the same port)
      --log-file <FILE>             Ship this text log instead of journald
                                    [default without journald: the first existing of
                                    <root>/var/log/syslog, <root>/var/log/messages]
      --metrics-interval-secs <N>   Seconds between metrics samples [default: 60]
      --interfaces-interval-secs <N>
                                    Seconds between network interface checks [default: 20]
      --log-level <LEVEL>           error, warn, info, debug or trace [default: info]
                                    [env: THYMIS_AGENT_LOG]
      --just-place-secrets          Place the secrets from the boot partition and exit
  -h, --help                        Print this help
  -V, --version                     Print the version";

/// What to do.
#[derive(Debug)]
pub enum Command {
    /// Print the help.
    Help,
    /// Print the version.
    Version,
    /// Run the agent (or only place secrets).
    Run(Config),
}

/// The agent's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The controller URL as given (`None` is only allowed with `--just-place-secrets`).
    pub controller_host: Option<String>,
    /// The device root.
    pub root: PathBuf,
    /// An extra CA file.
    pub ca_file: Option<PathBuf>,
    /// Ports the relay may open.
    pub allowed_ports: Vec<AllowedPort>,
    /// A text log to ship instead of journald.
    pub log_file: Option<PathBuf>,
    /// Between metrics samples.
    pub metrics_interval: Duration,
    /// Between interface checks.
    pub interfaces_interval: Duration,
    /// The log level.
    pub log_level: log::LevelFilter,
    /// Only place secrets, then exit.
    pub just_place_secrets: bool,
}

/// A command-line problem, shown with the usage hint.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<lexopt::Error> for CliError {
    fn from(e: lexopt::Error) -> Self {
        CliError(e.to_string())
    }
}

/// Parses the arguments (without the program name), reading defaults from `env`.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, CliError> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut controller_host = env("CONTROLLER_HOST").filter(|s| !s.is_empty());
    let mut ca_file = env("THYMIS_AGENT_CA_FILE")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let mut log_level = match env("THYMIS_AGENT_LOG").filter(|s| !s.is_empty()) {
        Some(level) => parse_level(&level)?,
        None => log::LevelFilter::Info,
    };
    let mut root = PathBuf::from("/");
    let mut allowed_ports = Vec::new();
    let mut log_file = None;
    let mut metrics_interval = Duration::from_secs(60);
    let mut interfaces_interval = Duration::from_secs(20);
    let mut just_place_secrets = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("controller-host") => controller_host = Some(parser.value()?.string()?),
            Long("root") => root = PathBuf::from(parser.value()?),
            Long("ca-file") => ca_file = Some(PathBuf::from(parser.value()?)),
            Long("allow-port") => {
                let spec = parser.value()?.string()?;
                allowed_ports.push(spec.parse().map_err(CliError)?);
            }
            Long("log-file") => log_file = Some(PathBuf::from(parser.value()?)),
            Long("metrics-interval-secs") => {
                metrics_interval = seconds("--metrics-interval-secs", &mut parser)?;
            }
            Long("interfaces-interval-secs") => {
                interfaces_interval = seconds("--interfaces-interval-secs", &mut parser)?;
            }
            Long("log-level") => log_level = parse_level(&parser.value()?.string()?)?,
            Long("just-place-secrets") => just_place_secrets = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    if allowed_ports.is_empty() {
        allowed_ports = thymis_protocol::DEFAULT_ALLOWED_PORTS
            .iter()
            .map(|&port| AllowedPort::same(port))
            .collect();
    }
    if !root.is_absolute() {
        root = std::env::current_dir()
            .map_err(|e| CliError(format!("cannot resolve --root: {e}")))?
            .join(root);
    }
    if controller_host.is_none() && !just_place_secrets {
        return Err(CliError(
            "no controller: set CONTROLLER_HOST (or --controller-host) to the controller's URL, \
             e.g. https://thymis.example.com"
                .into(),
        ));
    }
    Ok(Command::Run(Config {
        controller_host,
        root,
        ca_file,
        allowed_ports,
        log_file,
        metrics_interval,
        interfaces_interval,
        log_level,
        just_place_secrets,
    }))
}

fn seconds(flag: &str, parser: &mut lexopt::Parser) -> Result<Duration, CliError> {
    use lexopt::ValueExt;
    let text = parser.value()?.string()?;
    match text.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
        _ => Err(CliError(format!(
            "{flag} needs a positive number of seconds, not {text:?}"
        ))),
    }
}

fn parse_level(text: &str) -> Result<log::LevelFilter, CliError> {
    text.parse().map_err(|_| {
        CliError(format!(
            "unknown log level {text:?} (error, warn, info, debug or trace)"
        ))
    })
}

/// The WebSocket URL of the relay: `http`→`ws`, `https`→`wss`, trailing `/` removed, base
/// path kept, plus `/agent/relay`.
pub fn relay_url(controller_host: &str) -> Result<String, String> {
    let trimmed = controller_host.trim();
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| format!("controller URL {trimmed:?} has no scheme (http:// or https://)"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => {
            return Err(format!(
                "controller URL scheme {other:?} is not http(s) or ws(s)"
            ))
        }
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("controller URL {trimmed:?} has no host"));
    }
    Ok(format!("{scheme}://{rest}{}", thymis_protocol::RELAY_PATH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, CliError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match parse(args.iter().map(OsString::from), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })? {
            Command::Run(config) => Ok(config),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            relay_url("http://c:8000").unwrap(),
            "ws://c:8000/agent/relay"
        );
        assert_eq!(
            relay_url("https://c.example/base/").unwrap(),
            "wss://c.example/base/agent/relay"
        );
        assert_eq!(relay_url("HTTPS://c").unwrap(), "wss://c/agent/relay");
        assert!(relay_url("c.example").is_err());
        assert!(relay_url("ftp://c").is_err());
        assert!(relay_url("http:///x").is_err());
    }

    #[test]
    fn env_flags_and_defaults() {
        let config = run(&[], &[("CONTROLLER_HOST", "http://c")]).unwrap();
        assert_eq!(config.controller_host.as_deref(), Some("http://c"));
        assert_eq!(config.root, PathBuf::from("/"));
        assert_eq!(config.allowed_ports.len(), 2);
        assert_eq!(config.metrics_interval, Duration::from_secs(60));
        let config = run(
            &[
                "--controller-host=http://d",
                "--root",
                "/tmp/dev",
                "--allow-port",
                "22=127.0.0.1:2201",
                "--metrics-interval-secs",
                "2",
                "--log-level",
                "debug",
            ],
            &[
                ("CONTROLLER_HOST", "http://c"),
                ("THYMIS_AGENT_CA_FILE", "/ca.pem"),
            ],
        )
        .unwrap();
        assert_eq!(config.controller_host.as_deref(), Some("http://d"));
        assert_eq!(config.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(config.allowed_ports.len(), 1);
        assert_eq!(config.log_level, log::LevelFilter::Debug);
        assert_eq!(config.metrics_interval, Duration::from_secs(2));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = run(&[], &[]).unwrap_err();
        assert!(e.0.contains("CONTROLLER_HOST"), "{e}");
        assert!(run(&["--just-place-secrets"], &[]).is_ok());
        let e = run(
            &["--metrics-interval-secs", "0"],
            &[("CONTROLLER_HOST", "x")],
        )
        .unwrap_err();
        assert!(e.0.contains("--metrics-interval-secs"), "{e}");
        let e = run(&["--allow-port", "ssh"], &[("CONTROLLER_HOST", "x")]).unwrap_err();
        assert!(e.0.contains("ssh"), "{e}");
        let e = run(&["--bogus"], &[("CONTROLLER_HOST", "x")]).unwrap_err();
        assert!(e.0.contains("--bogus"), "{e}");
    }
}
