//! Load generator for the controller: idle RSS after start, `GET /api/state` of a 1,000-config
//! project at a fixed 1,000 requests per second (p50/p99), and the median `PATCH /api/state` of
//! one setting.
//!
//! ```sh
//! cargo build --release -p thymis-http
//! cargo run --release -p thymis-benches --bin controller_load [-- <configs> <seconds>]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use thymis_benches::controller::{percentile, rss_mib, start};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let configs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let seconds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let controller = start(&[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "idle RSS after start: {:.1} MiB",
        rss_mib(controller.child.id())
    );

    let client = controller.login().await;
    let state = thymis_benches::fleet(configs);
    let started = Instant::now();
    let response = client
        .patch(format!("{}/api/state", controller.url))
        .json(&state)
        .send()
        .await
        .expect("patch");
    assert!(
        response.status().is_success(),
        "seeding failed: {}",
        response.status()
    );
    println!(
        "first PATCH of {configs} configs (full render + git add): {:.2?}",
        started.elapsed()
    );
    println!(
        "RSS with {configs} configs: {:.1} MiB",
        rss_mib(controller.child.id())
    );

    // Open loop at a fixed rate: a slow answer does not slow down the requests after it.
    let rate = 1_000u64;
    let total = rate * seconds;
    let url = Arc::new(format!("{}/api/state", controller.url));
    let mut interval = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::with_capacity(total as usize);
    let run_started = Instant::now();
    for _ in 0..total {
        interval.tick().await;
        let client = client.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = match client.get(url.as_str()).send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            (sent.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failures = 0;
    for task in tasks {
        let (latency, ok) = task.await.expect("request task");
        if !ok {
            failures += 1;
        }
        latencies.push(latency);
    }
    let elapsed = run_started.elapsed();
    latencies.sort();
    println!(
        "GET /api/state ({configs} configs) at {rate}/s for {seconds}s: {} requests in {:.1?}, {} failed, p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        latencies.len(),
        elapsed,
        failures,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "RSS after the GET load: {:.1} MiB",
        rss_mib(controller.child.id())
    );

    let mut state = state;
    let mut patch_times = Vec::new();
    for volume in 0..30 {
        state.configs[configs / 2].modules[2]
            .settings
            .insert("volume".into(), json!(volume));
        let started = Instant::now();
        let response = client
            .patch(format!("{}/api/state", controller.url))
            .json(&state)
            .send()
            .await
            .expect("patch");
        let ok = response.status().is_success();
        let _ = response.bytes().await;
        assert!(ok, "PATCH failed");
        patch_times.push(started.elapsed());
    }
    patch_times.sort();
    println!(
        "PATCH /api/state of one setting ({configs} configs): median {:.2?}, p90 {:.2?}",
        percentile(&patch_times, 0.5),
        percentile(&patch_times, 0.9)
    );
}
