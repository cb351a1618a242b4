//! Images: which secrets a config needs and which of them an image carries, the boot files,
//! where images are found, and their clean-up after the retention period.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::json;
use thymis::image::{self, BootFiles};
use thymis::module::{ModuleRegistry, SecretKind, SecretProcessing};
use thymis::secrets::{decrypt_with_passphrase, SecretBox, SecretInput, Vault};
use thymis::ssh::ControllerKey;
use thymis::state::{Config, ModuleSettings, State, Tag, DEVICE_MODULE_TYPE};
use thymis::store::SqliteStore;

const SECURITY: &str = "thymis_controller.modules.security.SecurityAccessModule";

fn vault(dir: &std::path::Path) -> Vault {
    let key = ControllerKey::load_or_create(dir).unwrap();
    Vault::new(
        Arc::new(SqliteStore::open_in_memory().unwrap()),
        SecretBox::new(&key).unwrap(),
    )
}

fn secret(vault: &Vault, name: &str, value: &str, include_in_image: bool) -> String {
    vault
        .create(SecretInput {
            display_name: name.into(),
            kind: SecretKind::SingleLine,
            value: value.as_bytes().to_vec(),
            filename: None,
            include_in_image,
            processing: SecretProcessing::None,
        })
        .unwrap()
        .id
        .to_string()
}

fn state(config_secret: &str, tag_secret: &str) -> State {
    let mut state = State::default();
    state.tags.push(Tag {
        display_name: "Base".into(),
        identifier: "base".into(),
        priority: 50,
        modules: vec![ModuleSettings::new(SECURITY).with("password_secret", json!(tag_secret))],
        extra: Default::default(),
    });
    state.configs.push(Config {
        display_name: "Pi".into(),
        identifier: "pi".into(),
        modules: vec![
            ModuleSettings::new(DEVICE_MODULE_TYPE).with("device_type", json!("raspberry-pi-4")),
            ModuleSettings::new(SECURITY).with("password_secret", json!(config_secret)),
        ],
        tags: vec!["base".into()],
        extra: Default::default(),
    });
    state
}

#[test]
fn the_config_wins_over_its_tags_and_only_included_secrets_enter_the_image() {
    let dir = tempfile::tempdir().unwrap();
    let vault = vault(dir.path());
    let own = secret(&vault, "own", "pi-password", true);
    let from_tag = secret(&vault, "tag", "tag-password", true);
    let registry = ModuleRegistry::with_builtins();

    let needed = image::secret_requirements(&state(&own, &from_tag), &registry, "pi");
    assert_eq!(
        needed.len(),
        1,
        "one path, the config's own secret: {needed:?}"
    );
    assert_eq!(needed[0].secret_id, own);
    assert_eq!(needed[0].mode.as_deref(), Some("0400"));
    // Without its own, the config gets the tag's.
    let inherited = image::secret_requirements(&state("", &from_tag), &registry, "pi");
    assert_eq!(inherited[0].secret_id, from_tag);
    assert!(image::secret_requirements(&state(&own, &from_tag), &registry, "nope").is_empty());

    let token = thymis::store::new_agent_token();
    let sealed = image::initial_secrets(&vault, &token, &needed).unwrap();
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(sealed["secrets"][&own].as_str().unwrap())
        .unwrap();
    assert_eq!(
        decrypt_with_passphrase(&token, &ciphertext).unwrap(),
        b"pi-password"
    );
    assert_eq!(sealed["secret_infos"][0]["path"], needed[0].path.as_str());

    let kept_out = secret(&vault, "online only", "not-in-images", false);
    let needed = image::secret_requirements(&state(&kept_out, ""), &registry, "pi");
    let sealed = image::initial_secrets(&vault, &token, &needed).unwrap();
    assert_eq!(sealed, json!({"secrets": {}, "secret_infos": []}));
}

#[test]
fn image_format_defaults_from_the_device_type() {
    let state = state("", "");
    assert_eq!(
        image::image_format(&state, "pi").as_deref(),
        Some("sd-card-image")
    );
    assert_eq!(image::image_format(&state, "nope"), None);
}

#[test]
fn boot_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot");
    BootFiles {
        token: "thymis-abc".into(),
        metadata: image::metadata("pi", "0123456789012345678901234567890123456789"),
        controller_public_key: "ssh-ed25519 AAAA controller".into(),
        initial_secrets: json!({"secrets": {}, "secret_infos": []}),
    }
    .write(&boot)
    .unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&boot), 0o700);
    for name in [
        "thymis-token.txt",
        "thymis-metadata.json",
        "thymis-controller-ssh-pubkey.txt",
        "thymis-secrets-initial.json",
    ] {
        assert_eq!(mode(&boot.join(name)), 0o600, "{name}");
    }
    assert_eq!(
        std::fs::read_to_string(boot.join("thymis-token.txt")).unwrap(),
        "thymis-abc"
    );
    let metadata: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(boot.join("thymis-metadata.json")).unwrap())
            .unwrap();
    assert_eq!(metadata["configuration_id"], "pi");
}

#[test]
fn images_are_found_replaced_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path();
    assert_eq!(image::find_image(images, "pi"), None);
    std::fs::write(images.join("pi.img"), b"image").unwrap();
    std::fs::write(images.join("vm.qcow2"), b"disk").unwrap();
    std::fs::write(images.join("vm.start-vm"), b"#!/bin/sh").unwrap();
    std::fs::write(images.join("notes.txt"), b"not an image").unwrap();
    assert_eq!(image::find_image(images, "pi"), Some(images.join("pi.img")));

    image::remove_images(images, "vm").unwrap();
    assert!(!images.join("vm.qcow2").exists() && !images.join("vm.start-vm").exists());

    // Two hours old: expired after one hour of retention, unless just downloaded.
    std::fs::write(images.join("old.iso"), b"old").unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for name in ["pi.img", "old.iso", "notes.txt"] {
        std::fs::File::options()
            .write(true)
            .open(images.join(name))
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }
    image::touch(&images.join("pi.img")).unwrap();
    let removed = image::remove_expired(images, Duration::from_secs(3600)).unwrap();
    assert_eq!(removed, vec![images.join("old.iso")]);
    assert!(images.join("pi.img").exists() && images.join("notes.txt").exists());
    assert_eq!(
        image::remove_expired(&images.join("missing"), Duration::ZERO).unwrap(),
        Vec::<std::path::PathBuf>::new()
    );
}
