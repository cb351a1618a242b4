//! Start-up (spec §2.3) and the agent's long-running tasks: the reconnect loop, metrics,
//! interface changes and log shipping.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{pem::PemObject, CertificateDer};
use thymis_protocol::{AgentMessage, Metrics, NetworkInterface};
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::cli::{self, Config};
use crate::device::{Device, Metadata, METADATA_FILE, TOKEN_FILE};
use crate::logs;
use crate::notify::Notifier;
use crate::outgoing::Link;
use crate::relay::RelayConfig;
use crate::session::{self, Shared};
use crate::{clock, secrets, sysinfo};

/// Runs the agent as configured; returns the process exit code.
pub fn main(config: Config) -> ExitCode {
    let device = Device::new(&config.root);
    prepare(&device);
    let token = match device.token() {
        Ok(token) => token,
        Err(e) => {
            log::error!("cannot read the agent token: {e}");
            None
        }
    };
    let placed_ok = place_secrets_on_start(&device, token.as_deref());
    if config.just_place_secrets {
        return if placed_ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    match setup(&config, device, token) {
        Ok(shared) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    log::error!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(run(shared, &config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Start-up steps before secrets: metadata (for the clock floor, host only) and the
/// controller key. The metadata itself is read again for every start message.
fn prepare(device: &Device) {
    let metadata = match device.metadata() {
        Ok(Some(metadata)) => metadata,
        Ok(None) => {
            log::error!(
                "no image metadata ({METADATA_FILE} in {}); continuing without it",
                show_candidates(device)
            );
            Metadata::default()
        }
        Err(e) => {
            log::error!("cannot read the image metadata: {e}; continuing without it");
            Metadata::default()
        }
    };
    if device.is_host() {
        if let Some(text) = &metadata.datetime {
            match clock::parse_local_date_time(text) {
                Some(floor) => match clock::apply_clock_floor(floor) {
                    Ok(true) => {
                        log::info!("the clock was behind the image build time; set it to {text}")
                    }
                    Ok(false) => {}
                    Err(e) => log::warn!("cannot set the clock to the image build time: {e}"),
                },
                None => log::warn!("the metadata datetime {text:?} is not a date-time"),
            }
        }
    }
    match device.authorize_controller_key() {
        Ok(true) => log::info!("authorised the controller's SSH key for root"),
        Ok(false) => {}
        Err(e) => log::error!("cannot authorise the controller's SSH key: {e}"),
    }
}

fn show_candidates(device: &Device) -> String {
    device
        .data_dir_candidates()
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Places the saved or initial secrets; `false` if anything failed.
fn place_secrets_on_start(device: &Device, token: Option<&str>) -> bool {
    match secrets::place_on_start(device, token) {
        Ok(Some((source, report))) => {
            report.log(source);
            report.failed.is_empty()
        }
        Ok(None) => {
            log::info!("no secrets to place");
            true
        }
        Err(e) => {
            log::error!("cannot place secrets: {e}");
            false
        }
    }
}

/// Everything the connection needs, checked before going online.
fn setup(config: &Config, device: Device, token: Option<String>) -> Result<Shared, String> {
    let token = token.ok_or_else(|| {
        format!(
            "no agent token: there is no {TOKEN_FILE} in {}",
            show_candidates(&device)
        )
    })?;
    let controller_host = config
        .controller_host
        .as_deref()
        .ok_or("no controller: set CONTROLLER_HOST")?;
    let url = cli::relay_url(controller_host)?;
    let tls = if url.starts_with("wss://") {
        Some(tls_config(config.ca_file.as_deref())?)
    } else {
        if config.ca_file.is_some() {
            log::warn!("--ca-file is not used: the controller URL is not https");
        }
        None
    };
    Ok(Shared {
        device,
        url,
        tls,
        token,
        relay: Arc::new(RelayConfig {
            allowed: config.allowed_ports.clone(),
            ..RelayConfig::default()
        }),
        link: Link::default(),
        notifier: Notifier::from_env(),
        last_interfaces: Arc::new(Mutex::new(None)),
        device_lock: Arc::new(tokio::sync::Mutex::new(())),
    })
}

/// TLS client settings: the system's CA certificates plus those in `ca_file`, ring crypto.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        log::debug!("system CA certificates: {e}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read the CA file {shown}: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the CA file {shown} is not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err(format!("the CA file {shown} holds no certificate"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("the CA file {shown} holds an unusable certificate: {e}"))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted CA certificates: the system has none and no --ca-file was given".into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The agent's tasks; runs until the process ends.
pub async fn run(shared: Shared, config: &Config) {
    tokio::spawn(report_metrics(
        shared.link.clone(),
        config.metrics_interval,
        config.root.clone(),
    ));
    tokio::spawn(watch_interfaces(
        shared.link.clone(),
        shared.last_interfaces.clone(),
        config.interfaces_interval,
    ));
    match logs::Source::select(&shared.device, config.log_file.as_deref()) {
        Some(source) => {
            tokio::spawn(logs::ship(shared.link.clone(), source));
        }
        None => log::info!("no journal and no log file: device logs are not shipped"),
    }
    connect_forever(&shared).await;
}

/// Connects, serves, and reconnects with backoff; never returns.
pub async fn connect_forever(shared: &Shared) {
    let mut backoff = Backoff::default();
    let mut last_error = None;
    loop {
        let started = Instant::now();
        let reason = session::run(shared, last_error.take()).await;
        shared.link.set(None);
        log::warn!("controller connection ended: {reason}");
        shared
            .notifier
            .notify_or_log("STATUS=Connection closed, reconnecting...");
        last_error = Some(reason);
        let delay = backoff.next_delay(started.elapsed());
        log::info!("reconnecting in {:.1} s", delay.as_secs_f64());
        tokio::time::sleep(delay).await;
    }
}

/// Sends a metrics sample every `every` while admitted.
pub async fn report_metrics(link: Link, every: Duration, root: PathBuf) {
    let mut cpu = sysinfo::CpuSampler::default();
    // The first sample only sets the baseline.
    let _ = cpu.sample();
    loop {
        tokio::time::sleep(every).await;
        let sample = (|| {
            Ok::<_, std::io::Error>(Metrics {
                timestamp: clock::format_rfc3339(clock::now_micros()),
                cpu_percent: cpu.sample()?,
                ram_percent: sysinfo::ram_percent()?,
                disk_percent: sysinfo::disk_percent(&root)?,
            })
        })();
        match sample {
            Ok(metrics) => {
                if let Some(out) = link.current() {
                    out.message(&AgentMessage::Metrics(metrics));
                }
            }
            Err(e) => log::warn!("cannot sample metrics: {e}"),
        }
    }
}

/// Checks the interfaces every `every` and sends them when they differ from what the
/// controller last got (the start message counts).
pub async fn watch_interfaces(
    link: Link,
    last_sent: Arc<Mutex<Option<Vec<NetworkInterface>>>>,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let Some(out) = link.current() else {
            continue;
        };
        let current = match sysinfo::network_interfaces() {
            Ok(current) => current,
            Err(e) => {
                log::warn!("cannot list network interfaces: {e}");
                continue;
            }
        };
        let Ok(mut last) = last_sent.lock() else {
            continue;
        };
        if last.as_ref() != Some(&current) {
            let message = AgentMessage::NetworkInterfaces {
                network_interfaces: current.clone(),
            };
            if out.message(&message) {
                *last = Some(current);
            }
        }
    }
}
