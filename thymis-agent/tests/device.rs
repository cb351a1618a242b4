//! Boot files, hardware ids, the controller key, hostname and identity, on real files.

mod common;

use common::*;
use ssh_key::PublicKey;
use thymis_agent::device::{Device, Metadata};
use thymis_agent::hostname::{self, HostnameError};
use thymis_agent::identity::{self, HostKey};

#[test]
fn data_dir_prefers_boot_firmware_with_a_token() {
    let dev = TestDevice::new();
    assert_eq!(dev.device.data_dir(), Some(dev.path("boot")));
    // boot/firmware without a token does not count.
    std::fs::create_dir_all(dev.path("boot/firmware")).unwrap();
    assert_eq!(dev.device.data_dir(), Some(dev.path("boot")));
    dev.write("boot/firmware/thymis-token.txt", "thymis-pi\n");
    assert_eq!(dev.device.data_dir(), Some(dev.path("boot/firmware")));
    assert_eq!(dev.device.token().unwrap().as_deref(), Some("thymis-pi"));
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(Device::new(empty.path()).token().unwrap(), None);
    assert_eq!(Device::new(empty.path()).data_dir(), None);
}

#[test]
fn metadata_falls_back_to_new_then_old() {
    let dev = TestDevice::new();
    assert_eq!(dev.device.metadata().unwrap(), None);
    dev.write(
        "boot/thymis-metadata.json.old",
        r#"{"configuration_id":"old"}"#,
    );
    assert_eq!(
        dev.device
            .metadata()
            .unwrap()
            .unwrap()
            .configuration_id
            .as_deref(),
        Some("old")
    );
    dev.write(
        "boot/thymis-metadata.json.new",
        r#"{"configuration_id":"new","configuration_commit":"abc","datetime":"2024-05-01 12:00:00"}"#,
    );
    assert_eq!(
        dev.device.metadata().unwrap().unwrap(),
        Metadata {
            configuration_id: Some("new".into()),
            configuration_commit: Some("abc".into()),
            datetime: Some("2024-05-01 12:00:00".into()),
        }
    );
    dev.write(
        "boot/thymis-metadata.json",
        r#"{"configuration_id":"current","datetime":null}"#,
    );
    let current = dev.device.metadata().unwrap().unwrap();
    assert_eq!(current.configuration_id.as_deref(), Some("current"));
    assert_eq!(
        (current.configuration_commit, current.datetime),
        (None, None)
    );
    // Not an object: empty metadata, like upstream.
    dev.write("boot/thymis-metadata.json", "[1, 2]");
    assert_eq!(dev.device.metadata().unwrap().unwrap(), Metadata::default());
    dev.write("boot/thymis-metadata.json", "{broken");
    let err = dev.device.metadata().unwrap_err();
    assert!(err.to_string().contains("thymis-metadata.json"), "{err}");
}

#[test]
fn hardware_ids_follow_the_upstream_value_rules() {
    let dev = TestDevice::new();
    assert!(dev.device.hardware_ids().is_empty());
    // Devicetree strings end in NUL, which Python's strip() keeps.
    dev.write(
        "sys/firmware/devicetree/base/serial-number",
        b"10000000abcdef12\0",
    );
    dev.write("sys/class/dmi/id/board_serial", " \tBSN-1\n\n");
    dev.write("sys/class/dmi/id/product_uuid", "\n  \n");
    let ids = dev.device.hardware_ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids["pi-serial-number"], "10000000abcdef12\0");
    assert_eq!(ids["dmi-board-serial"], "BSN-1");
    dev.write(
        "sys/class/dmi/id/product_uuid",
        "4c4c4544-0035-4b10-8052-b4c04f4d4d32\n",
    );
    assert_eq!(
        dev.device.hardware_ids()["dmi-product-uuid"],
        "4c4c4544-0035-4b10-8052-b4c04f4d4d32"
    );
}

#[test]
fn controller_key_is_authorised_once() {
    let dev = TestDevice::new();
    assert!(
        !dev.device.authorize_controller_key().unwrap(),
        "no key file, nothing to do"
    );
    let controller = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx0cXUcbpH1vp3a3lHZJgAqJ8dF/xs7gfHtR0p5Kd4Y thymis-controller";
    dev.write(
        "boot/thymis-controller-ssh-pubkey.txt",
        format!("{controller}\n"),
    );
    // An existing file without a trailing newline keeps its line intact.
    dev.write(
        "root/.ssh/authorized_keys",
        "ssh-ed25519 AAAAexisting admin",
    );
    assert!(dev.device.authorize_controller_key().unwrap());
    assert!(!dev.device.authorize_controller_key().unwrap());
    let text = std::fs::read_to_string(dev.path("root/.ssh/authorized_keys")).unwrap();
    assert_eq!(
        text,
        format!("ssh-ed25519 AAAAexisting admin\n{controller}\n")
    );
    assert_eq!(mode_of(&dev.path("root/.ssh")), 0o700);
    assert_eq!(mode_of(&dev.path("root/.ssh/authorized_keys")), 0o600);
    // The same key with another comment counts as present.
    std::fs::write(
        dev.path("root/.ssh/authorized_keys"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx0cXUcbpH1vp3a3lHZJgAqJ8dF/xs7gfHtR0p5Kd4Y other\n",
    )
    .unwrap();
    assert!(!dev.device.authorize_controller_key().unwrap());
    // A fresh device gets the directory and file created.
    let fresh = TestDevice::new();
    fresh.write("boot/thymis-controller-ssh-pubkey.txt", controller);
    assert!(fresh.device.authorize_controller_key().unwrap());
    assert_eq!(
        std::fs::read_to_string(fresh.path("root/.ssh/authorized_keys")).unwrap(),
        format!("{controller}\n")
    );
    fresh.write("boot/thymis-controller-ssh-pubkey.txt", "\n");
    assert!(fresh.device.authorize_controller_key().is_err());
}

#[test]
fn hostnames_are_validated_and_written() {
    assert_eq!(hostname::validate("pi-kitchen-01"), Ok(()));
    assert_eq!(hostname::validate(&"a".repeat(63)), Ok(()));
    assert_eq!(
        hostname::validate(&"a".repeat(64)),
        Err(HostnameError::TooLong(64))
    );
    assert_eq!(hostname::validate(""), Err(HostnameError::Empty));
    assert_eq!(hostname::validate("-pi"), Err(HostnameError::EdgeHyphen));
    assert_eq!(hostname::validate("pi-"), Err(HostnameError::EdgeHyphen));
    assert_eq!(
        hostname::validate("pi.local"),
        Err(HostnameError::BadCharacter('.'))
    );
    assert_eq!(
        hostname::validate("pi kitchen"),
        Err(HostnameError::BadCharacter(' '))
    );
    assert_eq!(
        hostname::validate("pi\n"),
        Err(HostnameError::BadCharacter('\n'))
    );
    assert_eq!(
        hostname::validate("piñata"),
        Err(HostnameError::BadCharacter('ñ'))
    );

    let dev = TestDevice::new();
    assert!(hostname::apply(&dev.device, "kiosk-1").unwrap());
    assert_eq!(
        std::fs::read_to_string(dev.path("etc/hostname")).unwrap(),
        "kiosk-1\n"
    );
    assert_eq!(mode_of(&dev.path("etc/hostname")), 0o644);
    assert!(
        !hostname::apply(&dev.device, "kiosk-1").unwrap(),
        "unchanged"
    );
    assert!(hostname::apply(&dev.device, "bad/name").is_err());
    assert_eq!(
        std::fs::read_to_string(dev.path("etc/hostname")).unwrap(),
        "kiosk-1\n"
    );
}

#[test]
fn the_proof_verifies_with_the_host_public_key() {
    let dev = TestDevice::new();
    let key = HostKey::load(&dev.device).unwrap();
    let line = key.public_key_line();
    assert!(line.starts_with("ssh-ed25519 AAAA"));
    assert_eq!(line.split(' ').count(), 2, "no comment: {line}");
    assert!(dev.host_public_key().starts_with(&line));

    let nonce = [7u8; thymis_protocol::CHALLENGE_NONCE_BYTES];
    let nonce_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, nonce);
    let pem = key.sign_challenge(&nonce_b64).unwrap();
    let signature: ssh_key::SshSig = pem.parse().unwrap();
    let public = PublicKey::from_openssh(&line).unwrap();
    public
        .verify(thymis_protocol::PROOF_NAMESPACE, &nonce, &signature)
        .unwrap();
    assert!(public
        .verify("other-namespace", &nonce, &signature)
        .is_err());
    assert!(public
        .verify(thymis_protocol::PROOF_NAMESPACE, &[8u8; 32], &signature)
        .is_err());
    assert!(key.sign_challenge("%%%").is_err());
}

#[test]
fn an_unusable_host_key_is_a_clear_error() {
    let dev = TestDevice::new();
    std::fs::remove_file(dev.path(identity::HOST_KEY)).unwrap();
    let err = HostKey::load(&dev.device).unwrap_err().to_string();
    assert!(err.contains("ssh_host_ed25519_key"), "{err}");
    dev.write(identity::HOST_KEY, "garbage");
    let err = HostKey::load(&dev.device).unwrap_err().to_string();
    assert!(err.contains("unusable"), "{err}");
}

#[test]
fn rekey_keeps_old_keys_and_makes_a_new_openssh_key() {
    let dev = TestDevice::new();
    let before = HostKey::load(&dev.device).unwrap().public_key_line();
    dev.write(identity::RSA_HOST_KEY, "rsa private");
    // .old.0 is taken for one of the files, so all go to .old.1.
    dev.write(&format!("{}.pub.old.0", identity::HOST_KEY), "taken");
    identity::rekey(&dev.device, std::time::Duration::from_secs(1)).unwrap();
    let after = HostKey::load(&dev.device).unwrap().public_key_line();
    assert_ne!(before, after);
    assert_eq!(
        std::fs::read_to_string(dev.path(&format!("{}.old.1", identity::RSA_HOST_KEY))).unwrap(),
        "rsa private"
    );
    let old_pub =
        std::fs::read_to_string(dev.path(&format!("{}.pub.old.1", identity::HOST_KEY))).unwrap();
    assert!(old_pub.starts_with(&before));
    assert!(dev.path(&format!("{}.old.1", identity::HOST_KEY)).exists());
    assert_eq!(mode_of(&dev.path(identity::HOST_KEY)), 0o600);
    // OpenSSH itself reads the generated key.
    let derived = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(dev.path(identity::HOST_KEY))
        .output();
    if let Ok(output) = derived {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).starts_with(&after));
    }
    identity::rekey(&dev.device, std::time::Duration::from_secs(1)).unwrap();
    assert!(dev.path(&format!("{}.old.2", identity::HOST_KEY)).exists());
}
