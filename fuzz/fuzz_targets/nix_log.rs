//! Arbitrary bytes as nix's stderr: the parser must not panic, and cutting the stream into
//! chunks must not change what it reports.

#![no_main]

use libfuzzer_sys::fuzz_target;
use thymis::nix::log::{NixErrorInfo, NixLogParser, NixProgress};

fn run<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<String>, NixProgress, Vec<NixErrorInfo>) {
    let mut parser = NixLogParser::new();
    let mut lines = Vec::new();
    for chunk in chunks {
        lines.extend(parser.feed(chunk));
        // The caller polls progress when it changed; that must be sound at any point.
        if parser.take_changed() {
            let fraction = parser.progress().fraction();
            assert!((0.0..=1.0).contains(&fraction), "fraction {fraction}");
        }
    }
    lines.extend(parser.finish());
    (lines, parser.progress(), parser.errors().to_vec())
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks a chunk size; the rest is the stream.
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let whole = run([stream]);
    let chunked = run(stream.chunks(usize::from(first) + 1));
    assert_eq!(whole, chunked);

    let (_, progress, errors) = whole;
    let fraction = progress.fraction();
    assert!((0.0..=1.0).contains(&fraction), "fraction {fraction}");
    assert!(progress.expected >= progress.done, "{progress:?}");
    assert_eq!(errors.len(), progress.errors + progress.warnings);
    for e in &errors {
        assert!(!e.msg.contains('\x1b') && !e.raw_msg.contains('\x1b'));
    }
});
