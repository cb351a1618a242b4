//! The controller's SSH client against a real OpenSSH server (Debian `openssh-server`), over real
//! TCP connections and over an in-memory byte stream standing in for a relay channel.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sshd::Sshd;
use thymis::ssh::{
    connect, parse_host_key_line, prove_host_key, ControllerKey, PtyChannel, PtyOutput, SshError,
    SshSession, SshTarget,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TIMEOUT: Duration = Duration::from_secs(20);

fn controller_key() -> (tempfile::TempDir, ControllerKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = ControllerKey::load_or_create(dir.path()).unwrap();
    (dir, key)
}

fn root_at(sshd: &Sshd) -> SshTarget {
    SshTarget {
        user: "root".into(),
        expected_host_key: parse_host_key_line(&sshd.host_key_line()).unwrap(),
    }
}

async fn login(sshd: &Sshd, key: &ControllerKey) -> SshSession {
    let stream = TcpStream::connect(sshd.addr()).await.unwrap();
    connect(stream, &root_at(sshd), key, TIMEOUT).await.unwrap()
}

/// A byte stream that is not a socket: one end of an in-memory pipe whose other end is bridged
/// to sshd, as a relay channel would be.
async fn relayed_stream(sshd: &Sshd) -> tokio::io::DuplexStream {
    let (ours, mut theirs) = tokio::io::duplex(16 * 1024);
    let mut tcp = TcpStream::connect(sshd.addr()).await.unwrap();
    tokio::spawn(async move {
        let _ = tokio::io::copy_bidirectional(&mut theirs, &mut tcp).await;
    });
    ours
}

/// Reads terminal output until it contains `needle`; returns everything read.
async fn read_until(pty: &mut PtyChannel, needle: &str) -> String {
    let mut seen = String::new();
    let read = async {
        while !seen.contains(needle) {
            match pty.read().await {
                Some(PtyOutput::Data(data)) => seen.push_str(&String::from_utf8_lossy(&data)),
                Some(other) => panic!("unexpected {other:?} while waiting for {needle:?}"),
                None => panic!("channel closed while waiting for {needle:?}"),
            }
        }
    };
    if tokio::time::timeout(TIMEOUT, read).await.is_err() {
        panic!("no {needle:?} in the terminal output: {seen:?}");
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_returns_output_and_exit_status() {
    let (_dir, key) = controller_key();
    let sshd = Sshd::start(&[&key.public_key_openssh()]);
    let session = login(&sshd, &key).await;

    let output = session
        .exec("echo out; echo err >&2; exit 3")
        .await
        .unwrap();
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");
    assert_eq!(output.exit_status, Some(3));
    assert!(!output.success());
    assert!(!output.truncated);

    let os_release = session.exec("cat /etc/os-release").await.unwrap();
    assert!(os_release.success());
    assert_eq!(
        os_release.stdout,
        std::fs::read("/etc/os-release").unwrap(),
        "the command ran on this machine's sshd"
    );

    // A command killed by a signal reports the signal, not a status.
    let killed = session.exec("kill -TERM $$").await.unwrap();
    assert_eq!(killed.exit_status, None);
    assert_eq!(killed.exit_signal.as_deref(), Some("TERM"));

    // Output beyond the limit is dropped, but the command still runs to its end.
    let big = session
        .exec_with_limit("head -c 1000000 /dev/zero; echo done >&2", 1000)
        .await
        .unwrap();
    assert_eq!(big.stdout.len(), 1000);
    assert_eq!(big.stderr, b"done\n");
    assert!(big.truncated);
    assert!(big.success());

    assert!(!session.is_closed());
    session.close().await;
    let log = sshd.wait_for_log("the logout", |log| {
        log.contains("Disconnected from user root")
    });
    assert!(log.contains("Accepted publickey for root from 127.0.0.1"));
    assert!(
        log.contains(&key.fingerprint()),
        "sshd saw the controller key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_over_any_byte_stream() {
    let (_dir, key) = controller_key();
    let sshd = Sshd::start(&[&key.public_key_openssh()]);
    let stream = relayed_stream(&sshd).await;
    let session = connect(stream, &root_at(&sshd), &key, TIMEOUT)
        .await
        .unwrap();
    let output = session.exec("echo over a pipe").await.unwrap();
    assert_eq!(output.stdout, b"over a pipe\n");
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_key_mismatch_is_refused_before_authentication() {
    let (_dir, key) = controller_key();
    let sshd = Sshd::start(&[&key.public_key_openssh()]);
    // Some other ed25519 key (here: another controller's) in place of the device's host key.
    let (_other_dir, other) = controller_key();
    let target = SshTarget {
        user: "root".into(),
        expected_host_key: other.public_key().clone(),
    };
    let stream = TcpStream::connect(sshd.addr()).await.unwrap();
    let client_port = stream.local_addr().unwrap().port();

    let err = connect(stream, &target, &key, TIMEOUT).await.unwrap_err();
    let actual_fingerprint = parse_host_key_line(&sshd.host_key_line())
        .unwrap()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string();
    match &err {
        SshError::HostKeyMismatch {
            expected,
            presented,
        } => {
            assert_eq!(expected, &other.fingerprint());
            assert_eq!(presented, &actual_fingerprint);
        }
        other => panic!("expected a host key mismatch, got {other:?}"),
    }
    assert!(!err.to_string().contains("AAAA"), "no key material: {err}");

    // sshd saw the connection end without any authentication attempt.
    let marker = format!("127.0.0.1 port {client_port}");
    let log = sshd.wait_for_log("the closed connection", |log| {
        log.lines()
            .any(|l| l.contains(&marker) && l.contains("Connection closed"))
    });
    let ours: Vec<&str> = log.lines().filter(|l| l.contains(&marker)).collect();
    assert!(
        ours.iter().all(|l| !l.contains("user root")),
        "authentication was attempted: {ours:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_key_not_authorized_is_refused() {
    let (_dir, authorized) = controller_key();
    let (_other_dir, stranger) = controller_key();
    let sshd = Sshd::start(&[&authorized.public_key_openssh()]);

    let stream = TcpStream::connect(sshd.addr()).await.unwrap();
    let err = connect(stream, &root_at(&sshd), &stranger, TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SshError::AuthRejected { user } if user == "root"),
        "{err:?}"
    );

    // Once the device authorises the key, the same login works.
    sshd.authorize_key(&stranger.public_key_openssh());
    let session = login(&sshd, &stranger).await;
    assert!(session.exec("true").await.unwrap().success());
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_garbled_streams_fail_cleanly() {
    let (_dir, key) = controller_key();
    let target = SshTarget {
        user: "root".into(),
        expected_host_key: key.public_key().clone(),
    };

    // A peer that accepts the connection and never says anything.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(socket);
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let err = connect(stream, &target, &key, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SshError::Timeout(t) if t == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    silent.abort();

    // A peer that is not an SSH server: lines before the version line are allowed (RFC 4253
    // §4.2), so one that keeps talking HTTP runs into the timeout, and one that hangs up fails.
    for hang_up in [false, true] {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let _ = theirs.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            if !hang_up {
                let mut sink = Vec::new();
                let _ = theirs.read_to_end(&mut sink).await;
            }
        });
        let err = connect(ours, &target, &key, Duration::from_millis(300))
            .await
            .unwrap_err();
        if hang_up {
            assert!(matches!(err, SshError::Protocol(_)), "{err:?}");
        } else {
            assert!(matches!(err, SshError::Timeout(_)), "{err:?}");
        }
    }

    // A peer with an SSH version line followed by garbage instead of packets.
    let (ours, mut theirs) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        let _ = theirs.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        let _ = theirs.write_all(&[0xff; 512]).await;
        let mut sink = Vec::new();
        let _ = theirs.read_to_end(&mut sink).await;
    });
    let err = connect(ours, &target, &key, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, SshError::Protocol(_)), "{err:?}");

    // A peer that hangs up at once.
    let (ours, theirs) = tokio::io::duplex(1024);
    drop(theirs);
    let err = connect(ours, &target, &key, TIMEOUT).await.unwrap_err();
    assert!(matches!(err, SshError::Protocol(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_shell_echoes_input_and_follows_resizes() {
    let (_dir, key) = controller_key();
    let sshd = Sshd::start(&[&key.public_key_openssh()]);
    let session = login(&sshd, &key).await;
    let mut pty = session.open_shell_pty("xterm", 80, 24).await.unwrap();

    // The terminal echoes what is typed, and the shell sees a terminal of the requested size.
    pty.write(b"tty; echo \"size=$(stty size)\"\n")
        .await
        .unwrap();
    let seen = read_until(&mut pty, "size=24 80").await;
    assert!(
        seen.contains("echo \"size=$(stty size)\""),
        "no echo: {seen:?}"
    );
    assert!(
        seen.contains("/dev/pts/"),
        "not a pseudo-terminal: {seen:?}"
    );

    pty.resize(132, 43).await.unwrap();
    pty.write(b"echo \"size=$(stty size)\"\n").await.unwrap();
    read_until(&mut pty, "size=43 132").await;

    // Exiting the shell ends the channel with its status.
    pty.write(b"exit 7\n").await.unwrap();
    let mut status = None;
    let drained = tokio::time::timeout(TIMEOUT, async {
        while let Some(output) = pty.read().await {
            if let PtyOutput::ExitStatus(s) = output {
                status = Some(s);
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the channel did not close after exit");
    assert_eq!(status, Some(7));
    assert_eq!(pty.read().await, None, "a closed channel stays closed");
    session.close().await;
}

/// Waits until process `pid` no longer exists.
async fn wait_until_gone(session: &SshSession, pid: u32) {
    let gone = async {
        while session
            .exec(&format!("kill -0 {pid}"))
            .await
            .unwrap()
            .success()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert!(
        tokio::time::timeout(TIMEOUT, gone).await.is_ok(),
        "the shell {pid} was not hung up"
    );
}

/// The shell's process id, read from the terminal after asking for it.
async fn shell_pid(pty: &mut PtyChannel) -> u32 {
    pty.write(b"echo \"pid=<$$>\"\n").await.unwrap();
    let seen = read_until(pty, ">\r\n").await;
    let start = seen.rfind("pid=<").unwrap() + "pid=<".len();
    let end = start + seen[start..].find('>').unwrap();
    seen[start..end].parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pty_halves_work_from_separate_tasks_and_closing_hangs_up() {
    let (_dir, key) = controller_key();
    let sshd = Sshd::start(&[&key.public_key_openssh()]);
    let session = login(&sshd, &key).await;
    let mut pty = session
        .open_shell_pty("xterm-256color", 80, 24)
        .await
        .unwrap();
    let pid = shell_pid(&mut pty).await;
    let (mut reader, writer) = pty.split();

    let output = tokio::spawn(async move {
        let mut seen = String::new();
        while let Some(out) = reader.read().await {
            if let PtyOutput::Data(data) = out {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains("term=xterm-256color") {
                    return reader;
                }
            }
        }
        panic!("closed before the answer: {seen:?}");
    });
    writer.write(b"echo \"term=$TERM\"\n").await.unwrap();
    let mut reader = tokio::time::timeout(TIMEOUT, output)
        .await
        .unwrap()
        .unwrap();

    // Closing from our side hangs up the shell and ends the reader.
    writer.close().await.unwrap();
    let end = tokio::time::timeout(TIMEOUT, async { while reader.read().await.is_some() {} }).await;
    assert!(end.is_ok(), "the reader did not end");
    wait_until_gone(&session, pid).await;

    // Dropping a terminal hangs up its shell too.
    let mut pty = session.open_shell_pty("xterm", 80, 24).await.unwrap();
    let pid = shell_pid(&mut pty).await;
    drop(pty);
    wait_until_gone(&session, pid).await;

    // The session itself is still usable.
    assert!(session.exec("true").await.unwrap().success());
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prove_host_key_admits_only_the_real_holder() {
    let (_dir, key) = controller_key();
    let sshd = Sshd::start(&[&key.public_key_openssh()]);
    let claimed = sshd.host_key_line();

    // Over TCP and over a relay-like pipe.
    let stream = TcpStream::connect(sshd.addr()).await.unwrap();
    prove_host_key(stream, &claimed, &key, TIMEOUT)
        .await
        .unwrap();
    prove_host_key(relayed_stream(&sshd).await, &claimed, &key, TIMEOUT)
        .await
        .unwrap();

    // Another key claimed than the device holds.
    let (_other_dir, other) = controller_key();
    let mut wrong = other.public_key().clone();
    wrong.set_comment("");
    let wrong = wrong.to_openssh().unwrap();
    let stream = TcpStream::connect(sshd.addr()).await.unwrap();
    let err = prove_host_key(stream, &wrong, &key, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::HostKeyMismatch { .. }), "{err:?}");

    // Upstream compares strings: the key with a comment, or garbage, is not a valid claim.
    for claim in [
        format!("{claimed} root@device"),
        format!(" {claimed}"),
        "ssh-ed25519".to_owned(),
        "ssh-ed25519 not-base64!".to_owned(),
        String::new(),
    ] {
        let stream = TcpStream::connect(sshd.addr()).await.unwrap();
        let err = prove_host_key(stream, &claim, &key, TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, SshError::InvalidHostKeyLine(_)),
            "{claim:?}: {err:?}"
        );
    }

    // The device does not accept this controller's key.
    let (_stranger_dir, stranger) = controller_key();
    let stream = TcpStream::connect(sshd.addr()).await.unwrap();
    let err = prove_host_key(stream, &claimed, &stranger, TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::AuthRejected { .. }), "{err:?}");

    // The login works but `cat /etc/os-release` does not succeed (a forced command fails).
    let (_forced_dir, forced) = controller_key();
    sshd.authorize_key(&format!(
        "command=\"exit 1\" {}",
        forced.public_key_openssh()
    ));
    let stream = TcpStream::connect(sshd.addr()).await.unwrap();
    let err = prove_host_key(stream, &claimed, &forced, TIMEOUT)
        .await
        .unwrap_err();
    match err {
        SshError::CommandFailed { command, status } => {
            assert_eq!(command, "cat /etc/os-release");
            assert_eq!(status, "exit status 1");
        }
        other => panic!("expected a failed command, got {other:?}"),
    }

    // A device that never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let _held = listener.accept().await.unwrap();
    let err = prove_host_key(stream, &claimed, &key, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, SshError::Timeout(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_and_commands() {
    let (_dir, key) = controller_key();
    let sshd = Arc::new(Sshd::start(&[&key.public_key_openssh()]));
    let key = Arc::new(key);

    // Several sessions at once, each running a command.
    let mut sessions = tokio::task::JoinSet::new();
    for i in 0..6 {
        let (sshd, key) = (sshd.clone(), key.clone());
        sessions.spawn(async move {
            let session = login(&sshd, &key).await;
            let output = session.exec(&format!("sleep 0.2; echo {i}")).await.unwrap();
            session.close().await;
            (i, output.stdout)
        });
    }
    let mut answered = Vec::new();
    while let Some(result) = sessions.join_next().await {
        let (i, stdout) = result.unwrap();
        assert_eq!(stdout, format!("{i}\n").into_bytes());
        answered.push(i);
    }
    answered.sort();
    assert_eq!(answered, (0..6).collect::<Vec<_>>());

    // Several commands at once on one session: they overlap rather than queue, so every one has
    // started before the first one ends.
    let session = Arc::new(login(&sshd, &key).await);
    let mut commands = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let session = session.clone();
        commands.spawn(async move {
            let output = session
                .exec("date +%s%N; sleep 1; date +%s%N")
                .await
                .unwrap();
            let text = String::from_utf8(output.stdout).unwrap();
            let times: Vec<u128> = text.lines().map(|l| l.parse().unwrap()).collect();
            (times[0], times[1])
        });
    }
    let mut spans = Vec::new();
    while let Some(result) = commands.join_next().await {
        spans.push(result.unwrap());
    }
    let last_start = spans.iter().map(|s| s.0).max().unwrap();
    let first_end = spans.iter().map(|s| s.1).min().unwrap();
    assert!(
        last_start < first_end,
        "commands ran one after another: {spans:?}"
    );
}

#[test]
fn host_key_lines_are_parsed_strictly() {
    let (_dir, key) = controller_key();
    let line = key.public_key_openssh();
    let parsed = parse_host_key_line(&line).unwrap();
    assert_eq!(parsed.key_data(), key.public_key().key_data());
    // Without a comment, with extra spaces, and with a trailing newline.
    let bare: String = line.split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(
        parse_host_key_line(&bare).unwrap().key_data(),
        parsed.key_data()
    );
    assert_eq!(
        parse_host_key_line(&format!("  {}\n", bare.replace(' ', "   ")))
            .unwrap()
            .key_data(),
        parsed.key_data()
    );

    let blob = bare.split(' ').nth(1).unwrap();
    for bad in [
        String::new(),
        "ssh-ed25519".into(),
        format!("ssh-ed25519 {}", &blob[..blob.len() - 4]),
        // The type in front must match the type inside the key.
        format!("ssh-rsa {blob}"),
        "ssh-ed25519 ****".into(),
    ] {
        let result = parse_host_key_line(&bad);
        assert!(
            matches!(result, Err(SshError::InvalidHostKeyLine(_))),
            "{bad:?}: {result:?}"
        );
    }
}

/// A host public key line freshly generated by ssh-keygen.
fn ssh_keygen_line(kind: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub")).unwrap()
}

#[tokio::test]
async fn host_key_types_other_than_ed25519_are_refused_up_front() {
    let (_dir, key) = controller_key();
    let ecdsa = ssh_keygen_line("ecdsa");
    assert!(
        matches!(
            parse_host_key_line(&ecdsa),
            Err(SshError::UnsupportedHostKeyType(t)) if t == "ecdsa-sha2-nistp256"
        ),
        "{ecdsa}"
    );

    // RSA keys parse (they are plain data to ssh-key) but cannot be verified without RSA support.
    let rsa = parse_host_key_line(&ssh_keygen_line("rsa")).unwrap();
    assert_eq!(rsa.algorithm().as_str(), "ssh-rsa");
    let target = SshTarget {
        user: "root".into(),
        expected_host_key: rsa,
    };
    // The peer never answers, so the refusal happens before any SSH traffic.
    let (ours, _theirs) = tokio::io::duplex(1024);
    let err = connect(ours, &target, &key, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SshError::UnsupportedHostKeyType(t) if t == "ssh-rsa"),
        "{err:?}"
    );
}
