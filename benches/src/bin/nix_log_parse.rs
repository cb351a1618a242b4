//! Throughput of the `--log-format internal-json` parser on a large log synthesised from the
//! real nix captures in `thymis/tests/fixtures/nix-log/` (builds, failures, evaluation errors,
//! flake locks, copies, substitution), with the build log lines of one build amplified so that,
//! like a real system build, most lines are builder output. Fed in 64 KiB chunks, polling
//! progress whenever it changed, as the task engine does; median of several runs.
//!
//! ```sh
//! cargo run --release -p thymis-benches --bin nix_log_parse [-- <lines> <runs>]
//! ```

use std::time::{Duration, Instant};

use thymis::nix::log::NixLogParser;

const CHUNK: usize = 64 * 1024;

/// Every captured log (`*.log`) of the fixture directory, sorted by name.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../thymis/tests/fixtures/nix-log");
    let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?.to_owned();
            name.ends_with(".log")
                .then(|| std::fs::read(&path).ok().map(|data| (name, data)))
                .flatten()
        })
        .collect();
    found.sort();
    found
}

/// Each builder output line of `build-ok.log` is repeated this often.
const LOG_LINE_REPEAT: usize = 24;

/// `line` with every `"id":N` moved by `offset`, so that repetitions do not share activities.
fn shift_ids(line: &[u8], offset: u64, out: &mut Vec<u8>) {
    const KEY: &[u8] = b"\"id\":";
    let mut rest = line;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        let digits_start = at + KEY.len();
        out.extend_from_slice(&rest[..digits_start]);
        let digits = rest[digits_start..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let id: u64 = std::str::from_utf8(&rest[digits_start..digits_start + digits])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        out.extend_from_slice((id + offset).to_string().as_bytes());
        rest = &rest[digits_start + digits..];
    }
    out.extend_from_slice(rest);
}

/// A log of at least `min_lines` lines; returns it and its line count.
fn synthesise(min_lines: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut lines = 0;
    let mut round: u64 = 0;
    let fixtures = fixtures();
    while lines < min_lines {
        for (name, data) in &fixtures {
            for line in data.split_inclusive(|b| *b == b'\n') {
                let repeat =
                    if *name == "build-ok.log" && line.windows(11).any(|w| w == b"\"type\":101}") {
                        LOG_LINE_REPEAT
                    } else {
                        1
                    };
                for _ in 0..repeat {
                    shift_ids(line, round * 1_000_000, &mut out);
                    lines += 1;
                }
            }
        }
        round += 1;
    }
    (out, lines)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let min_lines: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(9).max(1);

    let (log, lines) = synthesise(min_lines);
    let nix_lines = log
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"@nix "))
        .count();
    println!(
        "input: {lines} lines ({nix_lines} @nix events), {:.1} MiB, fed in {} KiB chunks",
        log.len() as f64 / (1024.0 * 1024.0),
        CHUNK / 1024
    );

    let mut times = Vec::new();
    let mut summary = String::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut parser = NixLogParser::new();
        let mut shown = 0usize;
        let mut polls = 0usize;
        for chunk in log.chunks(CHUNK) {
            shown += parser.feed(chunk).len();
            if parser.take_changed() {
                std::hint::black_box(parser.progress());
                polls += 1;
            }
        }
        shown += parser.finish().len();
        let progress = parser.progress();
        times.push(start.elapsed());
        summary = format!(
            "shown lines {shown}, progress polls {polls}, errors {}, malformed {}, \
             done/expected {}/{}",
            parser.errors().len(),
            progress.malformed_lines,
            progress.done,
            progress.expected
        );
    }
    let t = median(times.clone()).as_secs_f64();
    println!("{summary}");
    println!(
        "parser: median {:.1} ms of {runs} runs → {:.2} M lines/s, {:.0} MB/s (min {:.1} ms, max {:.1} ms)",
        t * 1e3,
        lines as f64 / t / 1e6,
        log.len() as f64 / t / 1e6,
        times.iter().min().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        times.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );

    // For scale: only decoding every @nix line into a generic JSON value, nothing else.
    let mut naive = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut objects = 0usize;
        for line in log.split(|b| *b == b'\n') {
            if let Some(json) = line.strip_prefix(b"@nix ") {
                if serde_json::from_slice::<serde_json::Value>(json).is_ok() {
                    objects += 1;
                }
            }
        }
        std::hint::black_box(objects);
        naive.push(start.elapsed());
    }
    let n = median(naive).as_secs_f64();
    println!(
        "baseline (serde_json::Value per @nix line, no model): median {:.1} ms → {:.2} M lines/s, {:.0} MB/s",
        n * 1e3,
        lines as f64 / n / 1e6,
        log.len() as f64 / n / 1e6
    );
}
