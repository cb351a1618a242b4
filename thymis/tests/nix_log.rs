//! The `--log-format internal-json` parser against real captures of this machine's nix (2.8.0;
//! see `fixtures/nix-log/generate.sh`) and against hostile input.

use std::path::PathBuf;

use thymis::nix::log::{
    strip_ansi, ActivityCounts, ActivityType, NixErrorInfo, NixLogParser, NixProgress,
    MAX_LINE_BYTES,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nix-log")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const FIXTURES: &[&str] = &[
    "build-fail.log",
    "build-git-dirty.log",
    "build-invalid-utf8.log",
    "build-ok-verbose.log",
    "build-ok.log",
    "build-ten.log",
    "build-unrecognised-flag.log",
    "copy-ssh-refused.log",
    "copy-to-cache.log",
    "eval-syntax-error.log",
    "eval-throw-show-trace.log",
    "eval-throw.log",
    "eval-undefined-variable-show-trace.log",
    "eval-undefined-variable.log",
    "flake-lock-create.log",
    "flake-lock-missing-input.log",
    "flake-lock-path-input.log",
    "flake-lock-update-input.log",
    "flake-update.log",
    "substitute.log",
];

/// Everything a parser produced for a stream.
#[derive(Debug, PartialEq)]
struct Outcome {
    lines: Vec<String>,
    progress: NixProgress,
    errors: Vec<NixErrorInfo>,
}

fn parse_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut parser = NixLogParser::new();
    let mut lines = Vec::new();
    for chunk in chunks {
        lines.extend(parser.feed(chunk));
    }
    lines.extend(parser.finish());
    Outcome {
        lines,
        progress: parser.progress(),
        errors: parser.errors().to_vec(),
    }
}

fn parse(data: &[u8]) -> Outcome {
    parse_chunks([data])
}

fn parse_str(data: &str) -> Outcome {
    parse(data.as_bytes())
}

/// The progress after each complete line of `data`.
fn progress_per_line(data: &[u8]) -> Vec<NixProgress> {
    let mut parser = NixLogParser::new();
    data.split_inclusive(|b| *b == b'\n')
        .map(|line| {
            parser.feed(line);
            parser.progress()
        })
        .collect()
}

fn counts(done: u64, expected: u64, running: u64, failed: u64) -> ActivityCounts {
    ActivityCounts {
        done,
        expected,
        running,
        failed,
    }
}

// ---------------------------------------------------------------------------------------------
// Successful builds

#[test]
fn build_ok_shows_build_lines_like_nix_and_ends_complete() {
    let out = parse(&fixture("build-ok.log"));
    let expected: Vec<&str> = vec![
        "building '/nix/store/8a2bqw45i7fma31jf22m9z8fkqaqdnxj-thymis-a.drv'...",
        "thymis-a> hello from lib",
        "thymis-a> building a: line 1",
        "thymis-a> building a: line 2",
        "thymis-a> \u{1b}[1;32mgreen a\u{1b}[0m",
        "thymis-a> after phase",
        "building '/nix/store/hfjlwdqr6vs0kwkglq663hwmshahs6ik-thymis-b-1.0.drv'...",
        "thymis-b-1.0> b depends on /nix/store/h4z8j7907cjqlgafhpnq1zprpsv4hyz2-thymis-a",
        "thymis-b-1.0> b line 1",
        "thymis-b-1.0> b line 2",
        "thymis-b-1.0> b line 3",
        "building '/nix/store/4s7xybb5ljd9vk2qwfirj80s7pkms49c-thymis-d.drv'...",
        "thymis-d> d: unicode ✓ äöü",
        "building '/nix/store/6gbnb0sbah25a6bvn6qd6n05fc9mh6a0-thymis-c-slow.drv'...",
        "thymis-c-slow> c starting, sleeping",
        "thymis-c-slow> c done",
        "building '/nix/store/48zc5l53c562m2h1lihc1sa3fgh472ln-thymis-top.drv'...",
        "thymis-top> top: /nix/store/3b8qklgx2xpyz2arahr5y5v5imh1x4i7-thymis-b-1.0 \
         /nix/store/gfdz9b7kricnc31d1xhl6qmqrd7jga5z-thymis-c-slow \
         /nix/store/0fj4fv1lc9prnr3abasjwalbp7hz3v78-thymis-d",
    ];
    assert_eq!(out.lines, expected);
    assert!(out.errors.is_empty());

    let p = &out.progress;
    assert_eq!((p.done, p.expected, p.running, p.failed), (5, 5, 0, 0));
    assert_eq!(p.activities.len(), 1);
    assert_eq!(p.activities["builds"], counts(5, 5, 0, 0));
    assert_eq!(p.phase, None);
    assert!(p.running_builds.is_empty());
    assert_eq!((p.errors, p.warnings, p.malformed_lines), (0, 0, 0));
    assert_eq!(p.fraction(), 1.0);
}

#[test]
fn build_ok_progress_while_building() {
    let data = fixture("build-ok.log");
    let steps = progress_per_line(&data);

    // The builder's own `@nix setPhase` reaches us as a setPhase result of its build.
    let with_phase: Vec<&NixProgress> = steps.iter().filter(|p| p.phase.is_some()).collect();
    assert!(!with_phase.is_empty());
    for p in &with_phase {
        assert_eq!(p.phase.as_deref(), Some("buildPhase"));
        assert_eq!(p.running_builds, ["thymis-a"]);
    }
    let seen_builds: Vec<&str> = {
        let mut v: Vec<&str> = steps
            .iter()
            .flat_map(|p| p.running_builds.iter().map(String::as_str))
            .collect();
        v.dedup();
        v
    };
    assert_eq!(
        seen_builds,
        [
            "thymis-a",
            "thymis-b-1.0",
            "thymis-d",
            "thymis-c-slow",
            "thymis-top"
        ]
    );

    let mut last = NixProgress::default();
    for p in &steps {
        assert!(p.done >= last.done, "done went back: {last:?} → {p:?}");
        assert!(p.done <= p.expected);
        assert!((0.0..=1.0).contains(&p.fraction()));
        if !p.running_builds.is_empty() {
            assert_eq!(p.expected, 5, "{p:?}");
        }
        last = p.clone();
    }
    assert_eq!(last.fraction(), 1.0);
}

#[test]
fn ten_derivations_go_from_0_of_10_to_10_of_10_without_finishing_early() {
    let data = fixture("build-ten.log");
    let steps = progress_per_line(&data);
    let first_build = steps
        .iter()
        .find(|p| !p.running_builds.is_empty())
        .expect("a build starts");
    assert_eq!((first_build.done, first_build.expected), (0, 10));
    assert_eq!(first_build.running_builds, ["step-1"]);

    let finished_at = steps
        .iter()
        .position(|p| p.fraction() >= 1.0)
        .expect("reaches 100%");
    // 100% only once the last build reported: nothing running, nothing left to build.
    for p in &steps[finished_at..] {
        assert_eq!((p.done, p.expected, p.running), (10, 10, 0));
    }
    for p in &steps[..finished_at] {
        assert!(p.done < 10 && p.fraction() < 1.0, "{p:?}");
    }
    let last = steps.last().expect("lines");
    assert_eq!(last.activities["builds"], counts(10, 10, 0, 0));
    assert!(last.running_builds.is_empty());
    assert_eq!(parse(&data).lines.len(), 20);
}

#[test]
fn verbose_messages_are_not_shown() {
    let verbose = parse(&fixture("build-ok-verbose.log"));
    let plain = parse(&fixture("build-ok.log"));
    // The -v capture adds level-4 "evaluating file" messages; they stay hidden.
    assert_eq!(verbose.lines.len(), plain.lines.len());
    assert!(!verbose.lines.iter().any(|l| l.contains("evaluating file")));
    assert_eq!(verbose.progress.activities, plain.progress.activities);
}

#[test]
fn dirty_git_flake_warning_is_shown() {
    let out = parse(&fixture("build-git-dirty.log"));
    assert_eq!(
        out.lines[0],
        "\u{1b}[35;1mwarning:\u{1b}[0m Git tree '/tmp/thymis-nix-log-fixtures/gitflake' is dirty"
    );
    assert_eq!(out.lines[2], "step-1> building step-1");
    assert_eq!(out.progress.activities["builds"], counts(10, 10, 0, 0));
    assert!(out.errors.is_empty());
}

#[test]
fn builder_output_that_was_not_utf8() {
    let out = parse(&fixture("build-invalid-utf8.log"));
    // Nix 2.8 replaces invalid UTF-8 with U+FFFD and drops the carriage return itself.
    assert_eq!(
        out.lines[1..],
        [
            "bad-utf8> before",
            "bad-utf8> latin1: caf\u{FFFD}",
            "bad-utf8> tab\there",
            "bad-utf8> after"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Failures

#[test]
fn failed_build_counts_the_failure_and_stays_below_100_percent() {
    let data = fixture("build-fail.log");
    let out = parse(&data);
    let p = &out.progress;
    assert_eq!((p.done, p.expected, p.running, p.failed), (2, 3, 0, 1));
    assert!(p.fraction() < 1.0);
    assert_eq!(p.errors, 2);
    assert!(out
        .lines
        .contains(&"thymis-bad> bad: error details on stderr".to_owned()));
    assert_eq!(out.errors.len(), 2);
    assert_eq!(
        out.errors[0].raw_msg,
        "builder for '/nix/store/hsy3k8sv9fl8cxw5v9p95xvyxv6qsjkh-thymis-bad.drv' failed with \
         exit code 3"
    );
    assert_eq!(
        out.errors[0].msg,
        format!("error: {}", out.errors[0].raw_msg),
        "ANSI stripped"
    );
    assert_eq!(out.errors[0].level, 0);
    assert_eq!(out.errors[0].file, None);
    assert_eq!(
        out.errors[1].raw_msg,
        "1 dependencies of derivation \
         '/nix/store/x81nplr20ym8347n810d18j3rbdcmqfi-thymis-fail-top.drv' failed to build"
    );

    // While the failing build ran, 4 builds were expected; the failure never turns into 100%.
    let steps = progress_per_line(&data);
    assert!(steps.iter().any(|p| p.expected == 4 && p.running == 1));
    assert!(steps.iter().all(|p| p.fraction() < 1.0));
}

#[test]
fn undefined_variable_in_an_imported_file_has_its_position() {
    let out = parse(&fixture("eval-undefined-variable.log"));
    assert_eq!(out.errors.len(), 1);
    let e = &out.errors[0];
    assert_eq!(e.raw_msg, "undefined variable 'undefinedVariable'");
    assert_eq!(
        e.file.as_deref(),
        Some("/nix/store/8izhn82vyafjmqxlk5pxf59c61b4qn1j-source/hosts/x/custom.nix")
    );
    assert_eq!(e.source_relative_file(), Some("hosts/x/custom.nix"));
    assert_eq!((e.line, e.column), (Some(3), Some(11)));
    assert!(e.trace.is_empty());
    assert!(e
        .msg
        .starts_with("error: undefined variable 'undefinedVariable'\n\n       at "));
    assert!(!e.msg.contains('\x1b'));
    // The shown lines are Nix's message, colours kept, one per line.
    assert_eq!(out.lines.len(), 9);
    assert_eq!(
        out.lines[2],
        "       \u{1b}[34;1mat \u{1b}[35;1m/nix/store/8izhn82vyafjmqxlk5pxf59c61b4qn1j-source/\
         hosts/x/custom.nix:3:11\u{1b}[0m:"
    );
    assert_eq!(
        out.lines[5],
        "            3|   value = undefinedVariable + 1;"
    );
    assert_eq!(
        out.lines[8],
        "(use '--show-trace' to show detailed location information)"
    );
    assert_eq!(out.progress.errors, 1);
}

#[test]
fn show_trace_frames_are_kept() {
    let out = parse(&fixture("eval-undefined-variable-show-trace.log"));
    let e = &out.errors[0];
    assert_eq!(e.source_relative_file(), Some("hosts/x/custom.nix"));
    assert_eq!((e.line, e.column), (Some(3), Some(11)));
    assert_eq!(
        e.trace,
        [
            "while evaluating the attribute 'args' of the derivation 'evalerr' at \
          /nix/store/8izhn82vyafjmqxlk5pxf59c61b4qn1j-source/flake.nix:7:9"
        ]
    );
}

#[test]
fn throw_without_show_trace_has_no_position_in_nix_2_8() {
    let out = parse(&fixture("eval-throw.log"));
    let e = &out.errors[0];
    assert_eq!(e.raw_msg, "thymis: hostname must be set for y");
    assert_eq!(e.msg, "error: thymis: hostname must be set for y");
    assert_eq!((e.file.as_deref(), e.line, e.column), (None, None, None));
}

#[test]
fn throw_with_show_trace_takes_the_position_of_the_innermost_frame() {
    let out = parse(&fixture("eval-throw-show-trace.log"));
    let e = &out.errors[0];
    // Nix 2.8 sends `"file":null` for a throw: the position is only in the trace.
    assert_eq!(e.source_relative_file(), Some("hosts/y/custom.nix"));
    assert_eq!((e.line, e.column), (Some(4), Some(3)));
    assert_eq!(e.trace.len(), 2);
    assert!(e.trace[0].starts_with("while evaluating the attribute 'networking.hostName' at "));
    assert!(e.trace[1].ends_with("-source/flake.nix:7:9"));
}

#[test]
fn syntax_error_and_builtins_trace() {
    let out = parse(&fixture("eval-syntax-error.log"));
    assert_eq!(out.lines[0], "trace: evaluating host z");
    let e = &out.errors[0];
    assert_eq!(e.raw_msg, "syntax error, unexpected '=', expecting ';'");
    assert_eq!(e.source_relative_file(), Some("hosts/z/custom.nix"));
    assert_eq!((e.line, e.column), (Some(4), Some(30)));
}

#[test]
fn unrecognised_flag_of_nix_2_8() {
    let out = parse(&fixture("build-unrecognised-flag.log"));
    assert_eq!(
        out.errors[0].raw_msg,
        "unrecognised flag '--allow-dirty-locks'"
    );
    assert_eq!(out.lines[1], "Try 'nix --help' for more information.");
    assert_eq!(out.progress.fraction(), 0.0);
}

#[test]
fn plain_stderr_lines_are_shown_verbatim() {
    let out = parse(&fixture("copy-ssh-refused.log"));
    assert_eq!(
        out.lines[0],
        "ssh: connect to host 127.0.0.1 port 1: Connection refused"
    );
    assert_eq!(
        out.errors[0].raw_msg,
        "cannot open connection to remote store 'ssh-ng://root@127.0.0.1': error: unexpected \
         end-of-file"
    );
}

// ---------------------------------------------------------------------------------------------
// Flake locking

#[test]
fn flake_lock_shows_only_the_warning() {
    for name in ["flake-lock-path-input.log", "flake-lock-create.log"] {
        let out = parse(&fixture(name));
        assert_eq!(out.lines.len(), 1, "{name}");
        assert!(out.lines[0].starts_with("\u{1b}[35;1mwarning:\u{1b}[0m creating lock file '"));
        assert!(out.errors.is_empty());
        assert_eq!(out.progress, NixProgress::default());
        assert_eq!(out.progress.fraction(), 0.0);
    }
}

#[test]
fn flake_lock_update_message_is_split_into_lines() {
    for name in ["flake-lock-update-input.log", "flake-update.log"] {
        let out = parse(&fixture(name));
        assert_eq!(out.lines.len(), 4, "{name}");
        assert_eq!(
            strip_ansi(&out.lines[0]),
            "warning: updating lock file '/tmp/thymis-nix-log-fixtures/lockdemo/flake.lock':"
        );
        assert_eq!(strip_ansi(&out.lines[1]), "• Updated input 'mylib':");
        assert!(out.lines[3].starts_with("  → 'path:./lib?lastModified=1&narHash=sha256-"));
    }
}

#[test]
fn flake_lock_of_a_missing_path_input() {
    let out = parse(&fixture("flake-lock-missing-input.log"));
    assert_eq!(
        out.errors[0].raw_msg,
        "getting status of '/tmp/thymis-nix-log-fixtures/does-not-exist': No such file or \
         directory"
    );
    assert_eq!(out.errors[0].file, None);
    assert_eq!(out.lines.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Copies and substitution

#[test]
fn substitution_counts_paths_and_bytes() {
    let data = fixture("substitute.log");
    let out = parse(&data);
    let copies: Vec<&String> = out
        .lines
        .iter()
        .filter(|l| l.starts_with("copying path '/nix/store/"))
        .collect();
    assert_eq!(copies.len(), 10);
    assert!(copies[0].ends_with("-step-1' from 'file:///tmp/thymis-nix-log-fixtures/cache'..."));
    assert_eq!(out.progress.activities["copyPaths"], counts(10, 10, 0, 0));
    assert_eq!(
        (out.progress.done, out.progress.expected),
        (10, 10),
        "{:?}",
        out.progress
    );

    // While substituting, the realise activity announces the download size (setExpected).
    let steps = progress_per_line(&data);
    let peak = steps
        .iter()
        .map(|p| p.download.expected_bytes)
        .max()
        .unwrap_or(0);
    assert_eq!(peak, 1700);
    let peak_copy = steps
        .iter()
        .map(|p| p.copy.expected_bytes)
        .max()
        .unwrap_or(0);
    assert_eq!(peak_copy, 1632);
    for p in &steps {
        assert!(p.done <= p.expected);
    }
}

#[test]
fn nix_copy_without_progress_results_is_counted_from_its_paths() {
    // Nix 2.8's `nix copy` sends no progress results, only "copying 10 paths" and one
    // copyPath activity per path.
    let data = fixture("copy-to-cache.log");
    let out = parse(&data);
    assert_eq!(out.lines[0], "copying 10 paths...");
    assert_eq!(out.lines.len(), 11);
    assert_eq!(out.progress.activities["copyPaths"], counts(10, 10, 0, 0));
    assert_eq!(out.progress.fraction(), 1.0);

    let steps = progress_per_line(&data);
    let mut dones: Vec<u64> = steps
        .iter()
        .filter(|p| p.expected > 0)
        .map(|p| p.done)
        .collect();
    dones.dedup();
    assert_eq!(dones, (0..=10).collect::<Vec<_>>());
    assert!(steps.iter().any(|p| p.running == 1));
}

// ---------------------------------------------------------------------------------------------
// Chunking

#[test]
fn one_byte_chunks_give_the_same_result_for_every_fixture() {
    for name in FIXTURES {
        let data = fixture(name);
        let whole = parse(&data);
        let bytewise = parse_chunks(data.chunks(1));
        assert_eq!(bytewise, whole, "{name}");
        assert_eq!(whole.progress.malformed_lines, 0, "{name}");
    }
}

#[test]
fn splitting_at_every_byte_gives_the_same_result() {
    for name in [
        "build-fail.log",
        "eval-throw-show-trace.log",
        "flake-lock-update-input.log",
        "build-invalid-utf8.log",
        "copy-ssh-refused.log",
    ] {
        let data = fixture(name);
        let whole = parse(&data);
        for at in 0..=data.len() {
            let (a, b) = data.split_at(at);
            assert_eq!(parse_chunks([a, b]), whole, "{name} split at {at}");
        }
    }
}

#[test]
fn odd_chunk_sizes_give_the_same_result() {
    let mut all = Vec::new();
    for name in FIXTURES {
        all.extend(fixture(name));
    }
    let whole = parse(&all);
    for size in [2, 3, 7, 64, 100, 1000, 4096, 65536] {
        assert_eq!(parse_chunks(all.chunks(size)), whole, "chunk size {size}");
    }
}

#[test]
fn a_utf8_character_split_across_chunks() {
    let line = "plain ✓ line\n@nix {\"action\":\"msg\",\"level\":1,\"msg\":\"warn ✓\"}\n";
    let bytes = line.as_bytes();
    let check = bytes.iter().position(|&b| b == 0xE2).expect("✓") + 1;
    let out = parse_chunks([&bytes[..check], &bytes[check..]]);
    assert_eq!(out.lines, ["plain ✓ line", "warn ✓"]);
}

#[test]
fn partial_line_waits_for_the_next_chunk_or_finish() {
    let mut parser = NixLogParser::new();
    assert!(parser
        .feed(b"@nix {\"action\":\"msg\",\"level\":0,")
        .is_empty());
    assert!(parser.feed(b"\"msg\":\"boom\"}").is_empty());
    assert_eq!(parser.feed(b"\nno newline"), ["boom"]);
    assert_eq!(parser.finish(), ["no newline"]);
    assert!(parser.finish().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Hostile and unexpected input

#[test]
fn malformed_events_are_counted_and_skipped() {
    let garbage = [
        "@nix ",
        "@nix {",
        "@nix {\"action\":\"msg\"",
        "@nix []",
        "@nix null",
        "@nix 42",
        "@nix \"start\"",
        "@nix {\"action\":5}",
        "@nix {\"no\":\"action\"}",
        "@nix {\"action\":\"start\",\"type\":105}",
        "@nix {\"action\":\"stop\"}",
        "@nix {\"action\":\"result\",\"type\":105,\"fields\":[1,2]}",
        "@nix {\"action\":\"start\",\"id\":-1}",
        "@nix {\"action\":\"start\",\"id\":1.5}",
        "@nix {\"action\":\"start\",\"id\":1,\"type\":99999999999}",
        "@nix {\"action\":\"msg\",\"msg\":7}",
        "@nix {\"action\":\"msg\",\"msg\":\"dup\",\"msg\":\"dup\"}",
        "@nix {\"action\":\"setPhase\"}",
        "@nix {\"action\":\"msg\",\"msg\":\"x\"} trailing",
    ];
    let input = garbage.join("\n") + "\n";
    let out = parse_str(&input);
    assert!(out.lines.is_empty(), "{:?}", out.lines);
    assert_eq!(out.progress.malformed_lines, garbage.len() as u64);
    assert!(out.errors.is_empty());
}

#[test]
fn unknown_actions_types_and_fields_are_tolerated() {
    let input = [
        r#"@nix {"action":"frobnicate","id":1}"#,
        r#"@nix {"action":"start","id":1,"level":3,"type":999,"text":"new activity","parent":0,"fields":[1.5,-3,null,true,{"a":[1]},[2],"s"],"new":{"x":1}}"#,
        r#"@nix {"action":"result","id":1,"type":999,"fields":[{"nested":true}]}"#,
        r#"@nix {"action":"result","id":1,"type":105,"fields":[1,"two",null]}"#,
        r#"@nix {"action":"result","id":77,"type":105,"fields":[1,2,3,4]}"#,
        r#"@nix {"action":"stop","id":12345}"#,
        r#"@nix {"action":"msg","level":7,"msg":"debug chatter"}"#,
        r#"@nix {"action":"start","id":2,"level":5,"type":0,"text":"hidden chatter"}"#,
        r#"@nix {"action":"start","id":3,"level":3,"type":0,"text":""}"#,
    ]
    .join("\n");
    let out = parse_str(&input);
    assert_eq!(out.lines, ["new activity..."]);
    assert_eq!(out.progress.malformed_lines, 0);
    // Type 999 reported done 1 of expected 0; expected is never below done.
    assert_eq!(out.progress.activities["type999"], counts(1, 1, 0, 0));
    assert_eq!(ActivityType::from(999).name(), "type999");
    assert_eq!(ActivityType::from(104).name(), "builds");
    assert_eq!(ActivityType::from(104).code(), 104);
}

#[test]
fn set_expected_raises_the_expected_total() {
    // Newer Nix announces the number of builds with setExpected on the realise activity
    // before the builds activity has found them all; upstream Thymis ignored it.
    let input = [
        r#"@nix {"action":"start","id":1,"level":0,"type":102,"text":""}"#,
        r#"@nix {"action":"start","id":2,"level":0,"type":104,"text":""}"#,
        r#"@nix {"action":"result","id":1,"type":106,"fields":[104,10]}"#,
        r#"@nix {"action":"result","id":2,"type":105,"fields":[1,1,0,0]}"#,
    ]
    .join("\n")
        + "\n";
    let out = parse_str(&input);
    assert_eq!((out.progress.done, out.progress.expected), (1, 10));
    assert_eq!(out.progress.fraction(), 0.1);
}

#[test]
fn file_transfer_bytes_are_the_download() {
    let input = [
        r#"@nix {"action":"start","id":1,"level":0,"type":102,"text":""}"#,
        r#"@nix {"action":"result","id":1,"type":106,"fields":[101,1000]}"#,
        r#"@nix {"action":"start","id":2,"level":4,"type":101,"text":"downloading 'https://cache/x.nar.xz'","fields":["https://cache/x.nar.xz"]}"#,
        r#"@nix {"action":"result","id":2,"type":105,"fields":[250,600,0,0]}"#,
    ]
    .join("\n")
        + "\n";
    let out = parse_str(&input);
    assert_eq!(out.progress.download.done_bytes, 250);
    assert_eq!(out.progress.download.expected_bytes, 1000);
    assert_eq!(
        out.progress.activities["fileTransfer"],
        counts(250, 1000, 0, 0)
    );
    // Bytes are not items: nothing item-counted is expected, so the fraction is the bytes'.
    assert_eq!((out.progress.done, out.progress.expected), (0, 0));
    assert_eq!(out.progress.fraction(), 0.25);
}

#[test]
fn remote_builder_activities_are_namespaced_by_machine() {
    let input = [
        r#"@nix {"action":"start","id":7,"level":3,"type":105,"text":"building local","fields":["/nix/store/00000000000000000000000000000000-local-1.drv","",1,1]}"#,
        r#"@nix {"action":"start","id":7,"level":3,"type":105,"text":"building remote","fields":["/nix/store/11111111111111111111111111111111-remote-2.drv","ssh-ng://b",1,1],"machine":"ssh-ng://b"}"#,
        r#"@nix {"action":"result","id":7,"type":101,"fields":["from b"],"machine":"ssh-ng://b"}"#,
        r#"@nix {"action":"result","id":7,"type":101,"fields":["from here"]}"#,
        r#"@nix {"action":"stop","id":7,"machine":"ssh-ng://b"}"#,
    ]
    .join("\n")
        + "\n";
    let mut parser = NixLogParser::new();
    let lines = parser.feed(input.as_bytes());
    assert_eq!(
        lines,
        [
            "building local...",
            "building remote...",
            "remote-2> from b",
            "local-1> from here"
        ]
    );
    assert_eq!(parser.progress().running_builds, ["local-1"]);
}

#[test]
fn position_only_in_the_message_text_is_extracted() {
    let msg = "\u{1b}[31;1merror:\u{1b}[0m value is null\n\n       \u{1b}[34;1mat \u{1b}[35;1m/nix/store/8izhn82vyafjmqxlk5pxf59c61b4qn1j-source/hosts/x/custom.nix:3:5\u{1b}[0m:\n\n            3|   x = null;";
    let event = serde_json::json!({
        "action": "msg", "level": 0, "msg": msg, "raw_msg": "value is null",
        "file": null, "line": null, "column": null,
    });
    let out = parse_str(&format!("@nix {event}\n"));
    let e = &out.errors[0];
    assert_eq!(e.source_relative_file(), Some("hosts/x/custom.nix"));
    assert_eq!((e.line, e.column), (Some(3), Some(5)));
}

#[test]
fn position_fields_of_another_shape_do_not_lose_the_error() {
    let input = r#"@nix {"action":"msg","level":0,"msg":"error: x","raw_msg":"x","file":{"path":"/a.nix"},"line":"3","column":[1],"trace":"no"}
@nix {"action":"msg","level":1,"msg":"warning: y","raw_msg":"y","file":"/b.nix","line":2,"trace":[{"raw_msg":"while z","file":7}]}
"#;
    let out = parse_str(input);
    assert_eq!(out.progress.malformed_lines, 0);
    assert_eq!(out.errors.len(), 2);
    assert_eq!(out.errors[0].file, None);
    assert_eq!(
        (
            out.errors[1].file.as_deref(),
            out.errors[1].line,
            out.errors[1].column
        ),
        (Some("/b.nix"), Some(2), None)
    );
    assert_eq!(out.errors[1].trace, ["while z"]);
    assert_eq!((out.progress.errors, out.progress.warnings), (1, 1));
}

#[test]
fn invalid_utf8_is_tolerated() {
    let mut input = b"plain \xff\xfe line\n".to_vec();
    input.extend_from_slice(b"@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"bad \xc3 byte\"}\n");
    input.extend_from_slice(b"\xc3\n");
    let out = parse(&input);
    assert_eq!(
        out.lines,
        [
            "plain \u{FFFD}\u{FFFD} line",
            "bad \u{FFFD} byte",
            "\u{FFFD}"
        ]
    );
    assert_eq!(out.progress.malformed_lines, 0);
}

#[test]
fn crlf_and_empty_lines() {
    let out = parse_str("a\r\n\r\n@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"\"}\r\nb");
    assert_eq!(out.lines, ["a", "", "", "b"]);
}

#[test]
fn huge_lines_are_cut_not_buffered_forever() {
    let huge_plain = vec![b'x'; MAX_LINE_BYTES * 2 + 17];
    let mut input = huge_plain.clone();
    input.push(b'\n');
    let mut huge_json = b"@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"".to_vec();
    huge_json.extend_from_slice(&vec![b'y'; MAX_LINE_BYTES + 1]);
    huge_json.extend_from_slice(b"\"}\n");
    input.extend_from_slice(&huge_json);
    input.extend_from_slice(b"after\n");

    let whole = parse(&input);
    assert_eq!(whole.lines.len(), 2);
    assert_eq!(whole.lines[0].len(), MAX_LINE_BYTES);
    assert_eq!(whole.lines[1], "after");
    assert_eq!(whole.progress.malformed_lines, 1);
    for size in [1 << 16, 1 << 20, MAX_LINE_BYTES - 1, MAX_LINE_BYTES + 1] {
        assert_eq!(parse_chunks(input.chunks(size)), whole, "chunks of {size}");
    }
    // A huge line at the end of the stream, without a newline.
    let out = parse(&huge_plain);
    assert_eq!(out.lines.len(), 1);
    assert_eq!(out.lines[0].len(), MAX_LINE_BYTES);
}

#[test]
fn garbage_never_panics() {
    // A deterministic pseudo-random mix of fixture bytes, JSON fragments and noise.
    let mut material = Vec::new();
    for name in FIXTURES {
        material.extend(fixture(name));
    }
    let fragments: &[&[u8]] = &[
        b"@nix ",
        b"{\"action\":\"",
        b"start",
        b"result",
        b"\",\"id\":",
        b"\"type\":10",
        b"\"fields\":[",
        b"\n",
        b"\xff",
        b"\x1b[",
        b"}",
        b"]",
        b"\"",
        b"\\u00",
        b"18446744073709551616",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..200 {
        let mut input = Vec::new();
        for _ in 0..(next() % 200) {
            match next() % 3 {
                0 => input.extend_from_slice(fragments[(next() as usize) % fragments.len()]),
                1 => {
                    let start = (next() as usize) % material.len();
                    let len = (next() as usize) % 200;
                    input.extend_from_slice(&material[start..(start + len).min(material.len())]);
                }
                _ => input.push(next() as u8),
            }
        }
        let whole = parse(&input);
        let size = 1 + (next() as usize) % 50;
        assert_eq!(parse_chunks(input.chunks(size)), whole);
        let p = &whole.progress;
        assert!((0.0..=1.0).contains(&p.fraction()));
        assert!(p.expected >= p.done);
    }
}

// ---------------------------------------------------------------------------------------------
// The model's contract

#[test]
fn enormous_counts_saturate() {
    let max = u64::MAX;
    let input = format!(
        "@nix {{\"action\":\"start\",\"id\":1,\"type\":104}}\n\
         @nix {{\"action\":\"result\",\"id\":1,\"type\":105,\"fields\":[{max},{max},{max},{max}]}}\n\
         @nix {{\"action\":\"start\",\"id\":2,\"type\":104}}\n\
         @nix {{\"action\":\"result\",\"id\":2,\"type\":105,\"fields\":[{max},{max},{max},{max}]}}\n\
         @nix {{\"action\":\"result\",\"id\":2,\"type\":106,\"fields\":[104,{max}]}}\n\
         @nix {{\"action\":\"stop\",\"id\":1}}\n\
         @nix {{\"action\":\"start\",\"id\":3,\"type\":103,\"text\":\"copying {max} paths\"}}\n"
    );
    let out = parse_str(&input);
    assert_eq!(out.progress.done, max);
    assert_eq!(out.progress.expected, max);
    assert!((0.0..=1.0).contains(&out.progress.fraction()));
}

#[test]
fn take_changed_reports_progress_and_error_changes_only() {
    let mut parser = NixLogParser::new();
    assert!(!parser.take_changed());
    parser.feed(b"plain line\n@nix {\"action\":\"msg\",\"level\":1,\"msg\":\"just a warning\"}\n");
    assert!(!parser.take_changed());
    parser.feed(
        b"@nix {\"action\":\"start\",\"id\":1,\"level\":3,\"type\":105,\"text\":\"b\",\"fields\":[\"/nix/store/00000000000000000000000000000000-x.drv\"]}\n",
    );
    assert!(parser.take_changed());
    assert!(!parser.take_changed());
    parser.feed(b"@nix {\"action\":\"result\",\"id\":1,\"type\":101,\"fields\":[\"log\"]}\n");
    assert!(!parser.take_changed());
    parser.feed(
        b"@nix {\"action\":\"result\",\"id\":1,\"type\":104,\"fields\":[\"installPhase\"]}\n",
    );
    assert!(parser.take_changed());
    assert_eq!(parser.progress().phase.as_deref(), Some("installPhase"));
    parser.feed(b"@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"error: e\",\"raw_msg\":\"e\"}\n");
    assert!(parser.take_changed());
    parser.feed(b"@nix {broken\n");
    assert!(parser.take_changed());
    assert_eq!(parser.progress().malformed_lines, 1);
}

#[test]
fn progress_and_errors_round_trip_through_json() {
    let mut parser = NixLogParser::new();
    parser.feed(&fixture("build-fail.log"));
    let progress = parser.progress();
    let json = serde_json::to_string(&progress).expect("serialize");
    assert_eq!(
        serde_json::from_str::<NixProgress>(&json).expect("deserialize"),
        progress
    );
    let errors = parser.errors().to_vec();
    let json = serde_json::to_string(&errors).expect("serialize");
    assert_eq!(
        serde_json::from_str::<Vec<NixErrorInfo>>(&json).expect("deserialize"),
        errors
    );
    // Stored progress from an older version still reads.
    assert_eq!(
        serde_json::from_str::<NixProgress>("{\"done\":1}").expect("partial"),
        NixProgress {
            done: 1,
            ..NixProgress::default()
        }
    );
}

#[test]
fn fraction_is_bounded() {
    assert_eq!(NixProgress::default().fraction(), 0.0);
    let odd = NixProgress {
        done: 5,
        expected: 2,
        ..NixProgress::default()
    };
    assert_eq!(odd.fraction(), 1.0);
    // A progress result claiming more done than expected is shown as complete, not 250%.
    let out = parse_str(
        "@nix {\"action\":\"start\",\"id\":1,\"type\":104}\n@nix {\"action\":\"result\",\"id\":1,\"type\":105,\"fields\":[5,2,0,0]}\n",
    );
    assert_eq!((out.progress.done, out.progress.expected), (5, 5));
}
