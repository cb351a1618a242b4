//! Secret placement and decryption with real files and real age ciphertexts.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use common::*;
use thymis_agent::accounts::Accounts;
use thymis_agent::device::{INITIAL_SECRETS_FILE, SECRETS_MESSAGE_FILE};
use thymis_agent::identity::HostKey;
use thymis_agent::secrets::{self, Decryptor, SecretError};
use thymis_protocol::{SecretInfo, SecretsMessage};

fn info(
    id: &str,
    path: &str,
    owner: Option<&str>,
    group: Option<&str>,
    mode: Option<&str>,
) -> SecretInfo {
    SecretInfo {
        secret_id: id.into(),
        path: path.into(),
        owner: owner.map(Into::into),
        group: group.map(Into::into),
        mode: mode.map(Into::into),
    }
}

fn host_decryptor(dev: &TestDevice) -> Decryptor {
    let key = HostKey::load(&dev.device).unwrap();
    Decryptor::host_key(key.pem()).unwrap()
}

#[test]
fn host_key_secrets_are_placed_with_modes_and_owners() {
    let dev = TestDevice::new();
    let (uid, gid) = my_ids();
    dev.write(
        "etc/passwd",
        format!("root:x:0:0::/root:/bin/sh\nsvc:x:{uid}:{gid}::/:/bin/false\nother:x:4321:4321::/:/bin/false\n"),
    );
    dev.write(
        "etc/group",
        format!("root:x:0:\nsvc:x:{gid}:\nother:x:4321:\n"),
    );
    let key = dev.host_public_key();
    let mut secrets_map = BTreeMap::new();
    secrets_map.insert("a".to_owned(), encrypt_for_device(&key, b"alpha"));
    secrets_map.insert("b".to_owned(), encrypt_for_device(&key, b"bravo\n"));
    secrets_map.insert("c".to_owned(), encrypt_for_device(&key, b"charlie"));
    secrets_map.insert("d".to_owned(), encrypt_for_device(&key, b"delta"));
    let message = SecretsMessage {
        secrets: secrets_map,
        secret_infos: vec![
            info("a", "/run/thymis/a", None, None, None),
            info(
                "b",
                "/etc/app/deep/b.conf",
                Some("svc"),
                Some("svc"),
                Some("0640"),
            ),
            info("c", "/etc/c", Some("nobody-here"), None, Some("0644")),
            info("d", "/var/d", None, Some("other"), Some("o440")),
        ],
    };
    let report = secrets::place_all(&dev.device, &message, &host_decryptor(&dev));

    assert_eq!(std::fs::read(dev.path("run/thymis/a")).unwrap(), b"alpha");
    assert_eq!(mode_of(&dev.path("run/thymis/a")), 0o600, "default mode");
    let b = dev.path("etc/app/deep/b.conf");
    assert_eq!(std::fs::read(&b).unwrap(), b"bravo\n");
    assert_eq!(mode_of(&b), 0o640);
    let meta = std::fs::metadata(&b).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    // An unknown user fails that secret only; nothing is written for it.
    assert!(!dev.path("etc/c").exists());
    // "o440" is not octal.
    assert!(!dev.path("var/d").exists());
    assert_eq!(report.placed, ["/run/thymis/a", "/etc/app/deep/b.conf"]);
    assert_eq!(report.failed.len(), 2);
    assert!(matches!(&report.failed[0].2, SecretError::UnknownUser(u) if u == "nobody-here"));
    assert!(matches!(&report.failed[1].2, SecretError::BadMode(_)));

    if is_root() {
        let message = SecretsMessage {
            secrets: [("d".to_owned(), encrypt_for_device(&key, b"delta"))].into(),
            secret_infos: vec![info(
                "d",
                "/var/d",
                Some("other"),
                Some("other"),
                Some("0o440"),
            )],
        };
        let report = secrets::place_all(&dev.device, &message, &host_decryptor(&dev));
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let meta = std::fs::metadata(dev.path("var/d")).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), mode_of(&dev.path("var/d"))),
            (4321, 4321, 0o440)
        );
    }
}

#[test]
fn bad_paths_are_refused_and_nothing_escapes_the_root() {
    let dev = TestDevice::new();
    let accounts = Accounts::of(&dev.device).unwrap();
    for path in ["relative/x", "/etc/../../escape", "/", ""] {
        let err = secrets::place(
            &dev.device,
            &accounts,
            &info("x", path, None, None, None),
            b"s",
        )
        .unwrap_err();
        assert!(matches!(err, SecretError::BadPath(_)), "{path}: {err}");
    }
    assert!(!dev.root().parent().unwrap().join("escape").exists());
    // A secret the message has no ciphertext for, and one that is not base64.
    let message = SecretsMessage {
        secrets: [("bad".to_owned(), "not base64!".to_owned())].into(),
        secret_infos: vec![
            info("missing", "/m", None, None, None),
            info("bad", "/b", None, None, None),
        ],
    };
    let report = secrets::place_all(&dev.device, &message, &host_decryptor(&dev));
    assert!(matches!(report.failed[0].2, SecretError::Missing));
    assert!(matches!(report.failed[1].2, SecretError::NotBase64));
}

#[test]
fn placing_replaces_atomically() {
    let dev = TestDevice::new();
    let accounts = Accounts::of(&dev.device).unwrap();
    let secret = info("s", "/run/secret", None, None, Some("0400"));
    secrets::place(&dev.device, &accounts, &secret, b"old").unwrap();
    // Hold the old file open: a rename leaves it intact, an in-place rewrite would not.
    let old = std::fs::File::open(dev.path("run/secret")).unwrap();
    secrets::place(&dev.device, &accounts, &secret, b"new value").unwrap();
    let mut old_text = String::new();
    std::io::Read::read_to_string(&mut &old, &mut old_text).unwrap();
    assert_eq!(old_text, "old");
    assert_eq!(std::fs::read(dev.path("run/secret")).unwrap(), b"new value");
    assert_eq!(mode_of(&dev.path("run/secret")), 0o400);
    let names: Vec<_> = std::fs::read_dir(dev.path("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["secret"], "no temporary files remain");
}

#[test]
fn decryption_with_the_wrong_key_or_passphrase_fails_cleanly() {
    let dev = TestDevice::new();
    let other = TestDevice::new();
    let for_other = encrypt_for_device(&other.host_public_key(), b"x");
    let err = host_decryptor(&dev).decrypt(&for_other).unwrap_err();
    assert!(matches!(err, SecretError::Decrypt(_)), "{err}");
    let image = encrypt_for_image(TOKEN, b"image secret");
    assert_eq!(
        Decryptor::Passphrase(TOKEN.into()).decrypt(&image).unwrap(),
        b"image secret"
    );
    let err = Decryptor::Passphrase("thymis-wrong".into())
        .decrypt(&image)
        .unwrap_err();
    assert!(matches!(err, SecretError::Decrypt(_)), "{err}");
    // A host-key ciphertext given to the passphrase path and vice versa.
    assert!(Decryptor::Passphrase(TOKEN.into())
        .decrypt(&encrypt_for_device(&dev.host_public_key(), b"x"))
        .is_err());
    assert!(host_decryptor(&dev).decrypt(&image).is_err());
    assert!(Decryptor::host_key(b"not a key").is_err());
}

fn initial_file(secrets: &[(&str, &str, &[u8])]) -> String {
    let message = SecretsMessage {
        secrets: secrets
            .iter()
            .map(|(id, _, plain)| (id.to_string(), encrypt_for_image(TOKEN, plain)))
            .collect(),
        secret_infos: secrets
            .iter()
            .map(|(id, path, _)| info(id, path, None, None, None))
            .collect(),
    };
    serde_json::to_string(&message).unwrap()
}

#[test]
fn start_places_initial_secrets_with_the_token() {
    let dev = TestDevice::new();
    assert!(secrets::place_on_start(&dev.device, Some(TOKEN))
        .unwrap()
        .is_none());
    dev.write(
        &format!("boot/{INITIAL_SECRETS_FILE}"),
        initial_file(&[("i", "/run/thymis/wifi", b"psk")]),
    );
    let (source, report) = secrets::place_on_start(&dev.device, Some(TOKEN))
        .unwrap()
        .unwrap();
    assert_eq!(source, INITIAL_SECRETS_FILE);
    assert!(report.failed.is_empty());
    assert_eq!(std::fs::read(dev.path("run/thymis/wifi")).unwrap(), b"psk");
    // Without a token the initial secrets cannot be read.
    let err = secrets::place_on_start(&dev.device, None).unwrap_err();
    assert!(err.to_string().contains("token"), "{err}");
}

#[test]
fn a_saved_message_wins_over_initial_secrets_and_is_stored_privately() {
    let dev = TestDevice::new();
    dev.write(
        &format!("boot/{INITIAL_SECRETS_FILE}"),
        initial_file(&[("i", "/run/s", b"from image")]),
    );
    let message = SecretsMessage {
        secrets: [(
            "i".to_owned(),
            encrypt_for_device(&dev.host_public_key(), b"from controller"),
        )]
        .into(),
        secret_infos: vec![info("i", "/run/s", None, None, Some("0600"))],
    };
    let saved = secrets::persist_message(&dev.device, &message)
        .unwrap()
        .unwrap();
    assert_eq!(saved, dev.path(&format!("boot/{SECRETS_MESSAGE_FILE}")));
    assert_eq!(mode_of(&saved), 0o600);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(
        stored["kind"], "send_secrets",
        "stored like upstream agents store it"
    );
    let (source, report) = secrets::place_on_start(&dev.device, Some(TOKEN))
        .unwrap()
        .unwrap();
    assert_eq!(source, SECRETS_MESSAGE_FILE);
    assert!(report.failed.is_empty());
    assert_eq!(
        std::fs::read(dev.path("run/s")).unwrap(),
        b"from controller"
    );
    // A corrupt saved message is a clear error naming the file.
    dev.write(&format!("boot/{SECRETS_MESSAGE_FILE}"), "{");
    let err = secrets::place_on_start(&dev.device, Some(TOKEN)).unwrap_err();
    assert!(err.to_string().contains(SECRETS_MESSAGE_FILE), "{err}");
}

#[test]
fn without_a_data_dir_the_message_is_not_persisted() {
    let dev = TestDevice::new();
    std::fs::remove_file(dev.path("boot/thymis-token.txt")).unwrap();
    assert!(
        secrets::persist_message(&dev.device, &SecretsMessage::default())
            .unwrap()
            .is_none()
    );
}

#[test]
fn modes_parse_like_python_int_base_8() {
    assert_eq!(secrets::parse_mode("0600").unwrap(), 0o600);
    assert_eq!(secrets::parse_mode("644").unwrap(), 0o644);
    assert_eq!(secrets::parse_mode("0o4755").unwrap(), 0o4755);
    for bad in ["", "0o", "rw", "0800", "77777"] {
        assert!(secrets::parse_mode(bad).is_err(), "{bad}");
    }
}
