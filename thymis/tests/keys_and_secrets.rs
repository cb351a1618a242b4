//! The controller key pair and age secrets, checked against the real OpenSSH and age tools.
//!
//! Needs `ssh-keygen` (Debian `openssh-client`) and `age` (Debian `age`) on `PATH`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use base64::Engine as _;
use thymis::module::{SecretKind, SecretProcessing};
use thymis::secrets::{
    decrypt_with_controller_key, decrypt_with_passphrase, decrypt_with_ssh_identity,
    encrypt_for_device, encrypt_for_image, encrypt_to_ssh_recipient, encrypt_with_passphrase,
    validate_secret_value, SecretBox, SecretError, MAX_FILE_SECRET_BYTES, MAX_TEXT_SECRET_BYTES,
    TOKEN_PASSPHRASE_WORK_FACTOR,
};
use thymis::ssh::{ControllerKey, KeyError, CONTROLLER_KEY_COMMENT};

// ---------------------------------------------------------------------------------------------
// helpers

/// Runs a tool that the test needs; a missing tool fails the test with the package to install.
fn run(program: &str, args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    let package = match program {
        "age" => "age",
        _ => "openssh-client",
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}); install the Debian package `{package}`")
        });
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn run_ok(program: &str, args: &[&str]) -> Vec<u8> {
    let out = run(program, args, None);
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `ssh-keygen -t ed25519` without passphrase; returns the private key path.
fn keygen_ed25519(dir: &Path, name: &str, comment: &str) -> PathBuf {
    let path = dir.join(name);
    run_ok(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            s(&path),
        ],
    );
    path
}

/// The first two fields (type and base64) of a public key line.
fn key_fields(line: &str) -> Vec<&str> {
    line.split_whitespace().take(2).collect()
}

/// The SHA256 fingerprint `ssh-keygen -l` prints for a key file.
fn keygen_fingerprint(path: &Path) -> String {
    let out =
        String::from_utf8(run_ok("ssh-keygen", &["-l", "-E", "sha256", "-f", s(path)])).unwrap();
    out.split_whitespace().nth(1).unwrap().to_owned()
}

fn image_token() -> String {
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).unwrap();
    format!("thymis-{}", hex::encode(bytes))
}

// ---------------------------------------------------------------------------------------------
// the controller key

#[test]
fn key_is_created_once_then_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data"); // does not exist yet
    let key = ControllerKey::load_or_create(&dir).unwrap();

    let private = dir.join("id_thymis");
    let public = dir.join("id_thymis.pub");
    assert_eq!(key.path(), private);
    assert_eq!(key.public_key_path(), public);
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&public), 0o644);

    let line = key.public_key_openssh();
    assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
    assert!(
        line.ends_with(&format!(" {CONTROLLER_KEY_COMMENT}")),
        "{line}"
    );
    assert_eq!(fs::read_to_string(&public).unwrap(), format!("{line}\n"));
    assert!(key.fingerprint().starts_with("SHA256:"));
    let pem = fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));

    // Only the two key files; no temporary file left behind.
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["id_thymis", "id_thymis.pub"]);

    let again = ControllerKey::load_or_create(&dir).unwrap();
    assert_eq!(again.fingerprint(), key.fingerprint());
    assert_eq!(again.public_key_openssh(), line);
    assert_eq!(
        fs::read_to_string(&private).unwrap(),
        pem,
        "key must not be rewritten"
    );

    // Debug output names the key but shows none of it.
    let debug = format!("{again:?}");
    assert!(debug.contains(&key.fingerprint()));
    for pem_line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!debug.contains(pem_line));
    }
    let b64 = line.split_whitespace().nth(1).unwrap();
    assert!(!debug.contains(b64));
}

#[test]
fn ssh_keygen_reads_the_generated_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = ControllerKey::load_or_create(tmp.path()).unwrap();

    // ssh-keygen also refuses a private key with loose permissions, so this checks the mode too.
    let derived = String::from_utf8(run_ok("ssh-keygen", &["-y", "-f", s(key.path())])).unwrap();
    let derived = derived.trim();
    let on_disk = fs::read_to_string(key.public_key_path()).unwrap();
    let on_disk = on_disk.trim();
    assert_eq!(key_fields(derived), key_fields(on_disk));
    if derived.split_whitespace().count() == 3 {
        // OpenSSH 8.2+ prints the comment stored in the private key as well.
        assert_eq!(derived, on_disk);
    }
    assert_eq!(keygen_fingerprint(key.public_key_path()), key.fingerprint());
    assert_eq!(keygen_fingerprint(key.path()), key.fingerprint());
}

#[test]
fn key_made_by_ssh_keygen_is_loaded_and_its_public_key_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let private = keygen_ed25519(tmp.path(), "id_thymis", "admin@old-controller");
    let expected_fp = keygen_fingerprint(&private);
    let expected_line = fs::read_to_string(tmp.path().join("id_thymis.pub")).unwrap();
    fs::remove_file(tmp.path().join("id_thymis.pub")).unwrap();

    let key = ControllerKey::load_or_create(tmp.path()).unwrap();
    assert_eq!(key.fingerprint(), expected_fp);
    assert_eq!(key.public_key_openssh(), expected_line.trim());
    let rewritten = key.public_key_path();
    assert_eq!(fs::read_to_string(rewritten).unwrap(), expected_line);
    assert_eq!(mode(rewritten), 0o644);

    // An empty public key file is treated as missing too.
    fs::write(rewritten, "").unwrap();
    ControllerKey::load_or_create(tmp.path()).unwrap();
    assert_eq!(fs::read_to_string(rewritten).unwrap(), expected_line);

    // A different comment in the .pub is harmless.
    let b64 = expected_line.split_whitespace().nth(1).unwrap();
    fs::write(rewritten, format!("ssh-ed25519 {b64} renamed\n")).unwrap();
    assert_eq!(
        ControllerKey::load_or_create(tmp.path())
            .unwrap()
            .fingerprint(),
        expected_fp
    );
}

#[test]
fn garbled_private_key_gives_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("id_thymis");

    let expect_garbled = |contents: &[u8], why: &str| {
        fs::write(&private, contents).unwrap();
        let err = ControllerKey::load_or_create(tmp.path()).unwrap_err();
        assert!(matches!(err, KeyError::Garbled { .. }), "{why}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(s(&private)), "{why}: {msg}");
        assert!(
            msg.contains("not a valid OpenSSH private key"),
            "{why}: {msg}"
        );
        msg
    };

    expect_garbled(b"", "empty");
    let msg = expect_garbled(b"hello, I am not a key\n", "text");
    assert!(msg.contains("BEGIN OPENSSH PRIVATE KEY"), "{msg}");
    expect_garbled(&[0xff, 0x00, 0x13, 0x37], "binary");

    // A real key with damaged contents: the error must not quote any of it.
    let real = keygen_ed25519(tmp.path(), "real", "x");
    let pem = fs::read_to_string(real).unwrap();
    let mut lines: Vec<&str> = pem.lines().collect();
    let middle = lines.len() / 2;
    lines.remove(middle);
    let damaged = lines.join("\n") + "\n";
    let msg = expect_garbled(damaged.as_bytes(), "truncated");
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!msg.contains(line), "error quotes key material: {msg}");
    }

    // A garbled key is never replaced by a new one.
    assert_eq!(fs::read_to_string(&private).unwrap(), damaged);
    assert!(!tmp.path().join("id_thymis.pub").exists());
}

#[test]
fn encrypted_private_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("id_thymis");
    run_ok(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "correct horse",
            "-f",
            s(&private),
        ],
    );
    let err = ControllerKey::load_or_create(tmp.path()).unwrap_err();
    assert!(matches!(err, KeyError::Encrypted { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(s(&private)) && msg.contains("passphrase"),
        "{msg}"
    );
    assert!(!msg.contains("correct horse"));
}

#[test]
fn non_ed25519_private_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("id_thymis");
    run_ok(
        "ssh-keygen",
        &["-q", "-t", "ecdsa", "-N", "", "-f", s(&private)],
    );
    let err = ControllerKey::load_or_create(tmp.path()).unwrap_err();
    assert!(
        matches!(err, KeyError::UnsupportedAlgorithm { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(s(&private)), "{msg}");
    assert!(
        msg.contains("ecdsa-sha2-nistp256") && msg.contains("ssh-ed25519"),
        "{msg}"
    );
}

#[test]
fn mismatched_or_garbled_public_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let key = ControllerKey::load_or_create(tmp.path()).unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_key = ControllerKey::load_or_create(other.path()).unwrap();

    fs::write(key.public_key_path(), other_key.public_key_openssh() + "\n").unwrap();
    let err = ControllerKey::load_or_create(tmp.path()).unwrap_err();
    assert!(matches!(err, KeyError::PublicKeyMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains(s(key.public_key_path())), "{err}");

    fs::write(key.public_key_path(), "ssh-ed25519 !!!not-base64!!!\n").unwrap();
    let err = ControllerKey::load_or_create(tmp.path()).unwrap_err();
    assert!(matches!(err, KeyError::GarbledPublicKey { .. }), "{err:?}");
    assert!(err.to_string().contains(s(key.public_key_path())), "{err}");
}

#[test]
fn concurrent_first_start_agrees_on_one_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(tmp.path().join("data"));
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (dir, barrier) = (dir.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                ControllerKey::load_or_create(&dir).unwrap().fingerprint()
            })
        })
        .collect();
    let prints: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(prints.iter().all(|p| *p == prints[0]), "{prints:?}");
    let on_disk = ControllerKey::load_or_create(&dir).unwrap();
    assert_eq!(on_disk.fingerprint(), prints[0]);
    assert_eq!(keygen_fingerprint(on_disk.public_key_path()), prints[0]);
}

// ---------------------------------------------------------------------------------------------
// secrets at rest

#[test]
fn secrets_round_trip_at_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let key = ControllerKey::load_or_create(tmp.path()).unwrap();
    let secrets = SecretBox::new(&key).unwrap();
    assert_eq!(secrets.fingerprint(), key.fingerprint());

    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for plaintext in [&b""[..], b"hunter2", "pässwörd\n".as_bytes(), &big] {
        let ciphertext = secrets.encrypt(plaintext).unwrap();
        assert!(ciphertext.starts_with(b"age-encryption.org/v1\n-> ssh-ed25519 "));
        assert_eq!(secrets.decrypt(&ciphertext).unwrap(), plaintext);
        assert_eq!(
            decrypt_with_controller_key(&key, &ciphertext).unwrap(),
            plaintext
        );
        if !plaintext.is_empty() {
            assert!(!ciphertext.windows(plaintext.len()).any(|w| w == plaintext));
        }
    }

    // Fresh file key every time; a reloaded key still decrypts.
    let a = secrets.encrypt(b"same").unwrap();
    let b = secrets.encrypt(b"same").unwrap();
    assert_ne!(a, b);
    let reloaded = SecretBox::new(&ControllerKey::load_or_create(tmp.path()).unwrap()).unwrap();
    assert_eq!(reloaded.decrypt(&a).unwrap(), b"same");

    // Tampering and garbage fail without panicking.
    let mut tampered = a.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        secrets.decrypt(&tampered),
        Err(SecretError::Decrypt { .. })
    ));
    assert!(matches!(
        secrets.decrypt(b"not age at all"),
        Err(SecretError::Decrypt { .. })
    ));
    assert!(matches!(
        secrets.decrypt(&a[..a.len() / 2]),
        Err(SecretError::Decrypt { .. })
    ));

    // Another controller's key cannot decrypt.
    let other = tempfile::tempdir().unwrap();
    let other_key = ControllerKey::load_or_create(other.path()).unwrap();
    assert!(matches!(
        decrypt_with_controller_key(&other_key, &a),
        Err(SecretError::NoMatchingKey)
    ));

    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SecretBox>();
    assert_send_sync::<ControllerKey>();
    assert!(!format!("{secrets:?}").contains("BEGIN"));
}

#[test]
fn age_cli_decrypts_with_id_thymis_and_encrypts_to_id_thymis_pub() {
    let tmp = tempfile::tempdir().unwrap();
    let key = ControllerKey::load_or_create(tmp.path()).unwrap();
    let secrets = SecretBox::new(&key).unwrap();
    let plaintext = b"root password: correct horse battery staple\n";

    let encrypted = tmp.path().join("secret.age");
    fs::write(&encrypted, secrets.encrypt(plaintext).unwrap()).unwrap();
    let decrypted = run_ok("age", &["-d", "-i", s(key.path()), s(&encrypted)]);
    assert_eq!(decrypted, plaintext);

    // And the other way: the CLI encrypts to id_thymis.pub, the library decrypts.
    let out = run(
        "age",
        &["-e", "-R", s(key.public_key_path())],
        Some(plaintext),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(secrets.decrypt(&out.stdout).unwrap(), plaintext);
}

// ---------------------------------------------------------------------------------------------
// delivery

#[test]
fn encrypts_to_a_device_host_key() {
    let tmp = tempfile::tempdir().unwrap();
    let host_key = keygen_ed25519(tmp.path(), "ssh_host_ed25519_key", "root@device");
    let host_pub = fs::read_to_string(tmp.path().join("ssh_host_ed25519_key.pub")).unwrap();
    let host_pem = fs::read(&host_key).unwrap();
    let plaintext = b"WIFI_PSK=s3cr3t\n";

    // With comment and trailing newline, exactly as the file holds it.
    let ciphertext = encrypt_to_ssh_recipient(&host_pub, plaintext).unwrap();
    assert_eq!(
        decrypt_with_ssh_identity(&host_pem, &ciphertext).unwrap(),
        plaintext
    );

    // The agent's view: base64 in `send_secrets`.
    let b64 = encrypt_for_device(&host_pub, plaintext).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(
        decrypt_with_ssh_identity(&host_pem, &bytes).unwrap(),
        plaintext
    );

    // The real age tool with the host key agrees.
    let file = tmp.path().join("for-device.age");
    fs::write(&file, &ciphertext).unwrap();
    assert_eq!(
        run_ok("age", &["-d", "-i", s(&host_key), s(&file)]),
        plaintext
    );

    // The controller key is not the device key.
    let key = ControllerKey::load_or_create(&tmp.path().join("ctl")).unwrap();
    assert!(matches!(
        decrypt_with_controller_key(&key, &ciphertext),
        Err(SecretError::NoMatchingKey)
    ));
    // The device key is not the controller key.
    let at_rest = SecretBox::new(&key).unwrap().encrypt(plaintext).unwrap();
    assert!(matches!(
        decrypt_with_ssh_identity(&host_pem, &at_rest),
        Err(SecretError::NoMatchingKey)
    ));
}

#[test]
fn bad_recipients_and_identities_are_refused() {
    for line in [
        "",
        "ssh-ed25519",
        "ssh-ed25519 AAAA",
        "hello world",
        "age1notssh",
    ] {
        let err = encrypt_to_ssh_recipient(line, b"x").unwrap_err();
        assert!(
            matches!(err, SecretError::InvalidRecipient { .. }),
            "{line:?}: {err:?}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let ecdsa = tmp.path().join("ecdsa");
    run_ok(
        "ssh-keygen",
        &["-q", "-t", "ecdsa", "-N", "", "-f", s(&ecdsa)],
    );
    let ecdsa_pub = fs::read_to_string(tmp.path().join("ecdsa.pub")).unwrap();
    let err = encrypt_to_ssh_recipient(&ecdsa_pub, b"x").unwrap_err();
    assert!(err.to_string().contains("ecdsa"), "{err}");

    let err = decrypt_with_ssh_identity(b"garbage", b"age").unwrap_err();
    assert!(
        matches!(err, SecretError::InvalidIdentity { .. }),
        "{err:?}"
    );
    let locked = tmp.path().join("locked");
    run_ok(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-N", "pw", "-f", s(&locked)],
    );
    let err = decrypt_with_ssh_identity(&fs::read(&locked).unwrap(), b"age").unwrap_err();
    assert!(err.to_string().contains("passphrase"), "{err}");
}

#[test]
fn passphrase_round_trip_and_wrong_passphrase() {
    let token = image_token();
    let plaintext = b"the initial secrets of an image";

    let ciphertext = encrypt_with_passphrase(&token, plaintext).unwrap();
    // One scrypt stanza with the low work factor chosen for random tokens.
    let header = String::from_utf8_lossy(&ciphertext[..ciphertext.len().min(200)]).into_owned();
    let stanza = header.lines().nth(1).unwrap();
    let fields: Vec<&str> = stanza.split(' ').collect();
    assert_eq!(fields[..2], ["->", "scrypt"], "{stanza}");
    assert_eq!(fields[3], TOKEN_PASSPHRASE_WORK_FACTOR.to_string());

    assert_eq!(
        decrypt_with_passphrase(&token, &ciphertext).unwrap(),
        plaintext
    );
    let err = decrypt_with_passphrase(&image_token(), &ciphertext).unwrap_err();
    assert!(matches!(err, SecretError::WrongPassphrase), "{err:?}");
    assert!(!err.to_string().contains(&token));

    let b64 = encrypt_for_image(&token, plaintext).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(decrypt_with_passphrase(&token, &bytes).unwrap(), plaintext);

    assert!(matches!(
        encrypt_with_passphrase("", plaintext),
        Err(SecretError::EmptyPassphrase)
    ));

    // Passphrase files and key files are not interchangeable.
    let tmp = tempfile::tempdir().unwrap();
    let key = ControllerKey::load_or_create(tmp.path()).unwrap();
    assert!(matches!(
        decrypt_with_controller_key(&key, &ciphertext),
        Err(SecretError::NoMatchingKey)
    ));
    let at_rest = SecretBox::new(&key).unwrap().encrypt(plaintext).unwrap();
    assert!(matches!(
        decrypt_with_passphrase(&token, &at_rest),
        Err(SecretError::NotPassphraseEncrypted)
    ));
}

// ---------------------------------------------------------------------------------------------
// kinds and values

#[test]
fn kinds_and_processing_parse_and_serialise() {
    for kind in SecretKind::ALL {
        assert_eq!(kind.as_str().parse::<SecretKind>().unwrap(), kind);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.as_str()));
        assert_eq!(serde_json::from_str::<SecretKind>(&json).unwrap(), kind);
    }
    let names: Vec<&str> = SecretKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["single_line", "multi_line", "env_list", "file"]);
    for processing in [SecretProcessing::None, SecretProcessing::MkpasswdYescrypt] {
        assert_eq!(
            processing.as_str().parse::<SecretProcessing>().unwrap(),
            processing
        );
        let json = serde_json::to_string(&processing).unwrap();
        assert_eq!(
            serde_json::from_str::<SecretProcessing>(&json).unwrap(),
            processing
        );
    }
    assert_eq!(
        "mkpasswd-yescrypt".parse::<SecretProcessing>().unwrap(),
        SecretProcessing::MkpasswdYescrypt
    );

    let err = "password".parse::<SecretKind>().unwrap_err();
    assert!(matches!(err, SecretError::UnknownKind(_)));
    assert!(err.to_string().contains("single_line"), "{err}");
    assert!("SINGLE_LINE".parse::<SecretKind>().is_err());
    assert!("mkpasswd".parse::<SecretProcessing>().is_err());
    assert!(serde_json::from_str::<SecretKind>("\"blob\"").is_err());
}

#[test]
fn values_are_validated_by_kind() {
    use SecretKind::*;
    let ok = |kind, value: &[u8]| validate_secret_value(kind, value).unwrap();
    let err = |kind, value: &[u8]| validate_secret_value(kind, value).unwrap_err();

    ok(SingleLine, b"correct horse battery staple");
    ok(SingleLine, b"");
    assert!(matches!(
        err(SingleLine, b"line one\nline two"),
        SecretError::LineBreak
    ));
    assert!(matches!(
        err(SingleLine, b"trailing newline\n"),
        SecretError::LineBreak
    ));
    assert!(matches!(
        err(SingleLine, b"carriage\rreturn"),
        SecretError::LineBreak
    ));

    ok(
        MultiLine,
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    assert!(matches!(
        err(MultiLine, &[0xff, 0xfe]),
        SecretError::NotText { kind: "multi_line" }
    ));

    ok(
        EnvList,
        b"# database\nDB_USER=thymis\n\n  DB_PASSWORD=p=ss word#1\r\n_X1=\n   \nlower_case=ok",
    );
    ok(EnvList, b"");
    for (value, line) in [
        (&b"GOOD=1\n1BAD=SECRETVALUE"[..], 2),
        (b"NO_EQUALS_SECRETVALUE", 1),
        (b"A=1\nB=2\n=SECRETVALUE", 3),
        (b"WITH SPACE=SECRETVALUE", 1),
        (b"KEY =SECRETVALUE", 1),
        (b"K-Y=SECRETVALUE", 1),
        ("ÜBER=SECRETVALUE".as_bytes(), 1),
    ] {
        let e = err(EnvList, value);
        assert!(
            matches!(e, SecretError::EnvList { line: l, .. } if l == line),
            "{:?}: {e:?}",
            String::from_utf8_lossy(value)
        );
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("env_list line {line}: ")), "{msg}");
        assert!(!msg.contains("SECRETVALUE"), "error leaks the value: {msg}");
    }

    // Sizes.
    ok(MultiLine, &vec![b'a'; MAX_TEXT_SECRET_BYTES]);
    let e = err(MultiLine, &vec![b'a'; MAX_TEXT_SECRET_BYTES + 1]);
    assert!(
        matches!(
            e,
            SecretError::TooLarge {
                kind: "multi_line",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(&MAX_TEXT_SECRET_BYTES.to_string()));
    assert!(matches!(
        err(SingleLine, &vec![b'a'; MAX_TEXT_SECRET_BYTES + 1]),
        SecretError::TooLarge { .. }
    ));
    ok(File, &vec![0u8; MAX_FILE_SECRET_BYTES]);
    assert!(matches!(
        err(File, &vec![0u8; MAX_FILE_SECRET_BYTES + 1]),
        SecretError::TooLarge { kind: "file", .. }
    ));
    ok(File, &[0xff, 0x00, 0xfe]);
}
