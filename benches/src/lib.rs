//! Generators of realistic projects for the benchmarks, and the controller they load.

pub mod controller;
pub mod device;

use serde_json::json;
use thymis::state::{Config, ModuleSettings, State, Tag, DEVICE_MODULE_TYPE};

/// A project of `configs` configs with 5 modules each and 3 tags.
pub fn fleet(configs: usize) -> State {
    let mut state = State::default();
    for (i, name) in ["kiosks", "office", "base"].iter().enumerate() {
        state.tags.push(Tag {
            display_name: name.to_string(),
            identifier: name.to_string(),
            priority: 90 + i as i64,
            modules: vec![
                ModuleSettings::new("thymis_controller.modules.localization.LocalizationModule")
                    .with("timezone", json!("Europe/Berlin")),
                ModuleSettings::new("thymis_controller.modules.security.SecurityAccessModule")
                    .with(
                        "authorized_keys",
                        json!([{"key": "ssh-ed25519 AAAAC3Nza admin"}]),
                    ),
            ],
            extra: Default::default(),
        });
    }
    for i in 0..configs {
        let id = format!("device-{i}");
        state.configs.push(Config {
            display_name: format!("Device {i}"),
            identifier: id.clone(),
            modules: vec![
                ModuleSettings::new(DEVICE_MODULE_TYPE)
                    .with("device_type", json!("raspberry-pi-4"))
                    .with("device_name", json!(id)),
                ModuleSettings::new("thymis_controller.modules.networking.NetworkingModule")
                    .with("wifi_ssid", json!("corp"))
                    .with("wifi_password", json!("secret-password")),
                ModuleSettings::new("thymis_controller.modules.kiosk.Kiosk")
                    .with(
                        "kiosk_url",
                        json!(format!("https://dashboard.example.com/{i}")),
                    )
                    .with("volume", json!(40)),
                ModuleSettings::new("thymis_controller.modules.bash.BashModule").with(
                    "script",
                    json!("echo \"hello from $(hostname)\"\nsleep 60\n"),
                ),
                ModuleSettings::new("thymis_controller.modules.whatever.WhateverModule")
                    .with("settings", json!("services.openssh.enable = true;")),
            ],
            tags: vec!["kiosks".into(), "base".into()],
            extra: Default::default(),
        });
    }
    state
}
