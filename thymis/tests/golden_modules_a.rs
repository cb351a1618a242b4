//! Golden-file tests of the Networking, Localization & Time, Security & Access and Files modules.
//!
//! Each module is rendered for a config (`lobby-pi-1`, priority 80) and a tag (`lobby-screens`,
//! priority 90) and compared with `tests/golden/modules/<module>.<config|tag>.nix`. Run with
//! `UPDATE_GOLDEN=1` to rewrite the golden files after an intended change. Every rendered text
//! must also be accepted by `nix-instantiate --parse`, and some are evaluated for real with small
//! stand-ins for `lib`, `pkgs` and `inputs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Map, Value};
use thymis::module::{
    ModuleRegistry, RenderContext, RenderEnv, RenderError, SecretRequirement, TargetKind,
};

const NETWORKING: &str = "thymis_controller.modules.networking.NetworkingModule";
const LOCALIZATION: &str = "thymis_controller.modules.localization.LocalizationModule";
const SECURITY: &str = "thymis_controller.modules.security.SecurityAccessModule";
const FILES: &str = "thymis_controller.modules.files.FilesModule";

const CONFIG: (TargetKind, &str, i64) = (TargetKind::Config, "lobby-pi-1", 80);
const TAG: (TargetKind, &str, i64) = (TargetKind::Tag, "lobby-screens", 90);

/// Stand-ins for the module arguments: `lib.mkOverride` records its priority, and
/// `copyPathToStore` returns a fake store path named after the file.
const STAND_INS: &str = r#"{
  pkgs = { copyPathToStore = p: "/nix/store/00000000000000000000000000000000-" + baseNameOf p; };
  lib = { mkOverride = p: v: { _prio = p; value = v; }; };
  inputs = { self = "/flake"; };
  config = { };
}"#;

fn settings(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("settings must be an object, got {other}"),
    }
}

fn render(
    module: &str,
    (kind, identifier, priority): (TargetKind, &str, i64),
    values: &Value,
) -> Result<String, RenderError> {
    let registry = ModuleRegistry::with_builtins();
    let module = registry
        .get(module)
        .unwrap_or_else(|| panic!("{module} is not registered"));
    let env = RenderEnv::default();
    let ctx = RenderContext {
        kind,
        identifier,
        priority,
        instance: 0,
        env: &env,
    };
    module
        .render(&ctx, &settings(values.clone()))
        .map(|output| output.to_text())
}

fn render_ok(module: &str, target: (TargetKind, &str, i64), values: &Value) -> String {
    let text =
        render(module, target, values).unwrap_or_else(|e| panic!("rendering {module} failed: {e}"));
    assert_valid_nix(&text);
    text
}

fn secrets(module: &str, values: &Value) -> Vec<SecretRequirement> {
    let registry = ModuleRegistry::with_builtins();
    registry
        .get(module)
        .unwrap_or_else(|| panic!("{module} is not registered"))
        .secrets(&settings(values.clone()))
}

fn scratch_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("module.nix");
    std::fs::write(&path, text).expect("write temporary file");
    (dir, path)
}

/// Both our parser and Nix itself accept the text.
fn assert_valid_nix(text: &str) {
    if let Err(error) = thymis::nix::check_syntax(text) {
        panic!("check_syntax rejects the output: {error}\n{text}");
    }
    let (_dir, path) = scratch_file(text);
    let output = Command::new("nix-instantiate")
        .arg("--parse")
        .arg(&path)
        .output()
        .expect("nix-instantiate must be installed (Debian package nix-bin)");
    assert!(
        output.status.success(),
        "nix-instantiate --parse rejects the output: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Applies the module function in `text` to [`STAND_INS`] and returns the result as JSON.
fn evaluate(text: &str) -> Value {
    let (_dir, path) = scratch_file(text);
    let expr = format!("(import {} {STAND_INS})", path.display());
    let output = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "--expr", &expr])
        .output()
        .expect("nix-instantiate must be installed (Debian package nix-bin)");
    assert!(
        output.status.success(),
        "evaluation failed: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("nix-instantiate prints JSON")
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/modules")
        .join(name)
}

/// Compares with the golden file, or rewrites it when `UPDATE_GOLDEN=1`.
fn check_golden(name: &str, text: &str) {
    let path = golden_path(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(path.parent().expect("golden directory")).expect("mkdir");
        std::fs::write(&path, text).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == text,
        "{name} differs from the golden file (UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{text}"
    );
}

/// Renders one case and checks it against its golden file, so the text returned is the golden
/// file's content (rendering instead of reading keeps `UPDATE_GOLDEN=1` runs free of races).
fn golden_case(
    short: &str,
    module: &str,
    target: (TargetKind, &str, i64),
    values: &Value,
) -> String {
    let variant = match target.0 {
        TargetKind::Config => "config",
        TargetKind::Tag => "tag",
    };
    let text = render_ok(module, target, values);
    check_golden(&format!("{short}.{variant}.nix"), &text);
    text
}

fn golden(short: &str, module: &str, config: &Value, tag: &Value) {
    golden_case(short, module, CONFIG, config);
    golden_case(short, module, TAG, tag);
}

// ---------------------------------------------------------------------------------------------
// Realistic settings

fn networking_config() -> Value {
    json!({
        "wifi_ssid": "Café \"Foyer\" ${guest}",
        "wifi_password": "pa\"ss\\word${x}",
        "wifi_auth": "eap=PEAP\nidentity=\"empfang@example.com\"\npassword=\"Grüße ${HOME}\"\nca_file=\"/etc/ssl/certs/ca-certificates.crt\"\n",
        "wifi_auth_protocols": [{"protocol": "WPA-EAP"}, {"protocol": "SAE"}, {}],
        "static_networks": [
            {
                "interface": "eth0",
                "ipv4address": "192.168.10.21",
                "ipv4prefixLength": 24,
                "ipv6address": "fd00:10::21",
                "ipv6prefixLength": 64,
                "gateway": "192.168.10.1",
                "gateway6": "fd00:10::1",
                "isDefaultGateway": true
            },
            {
                // Upstream's editor stores numbers as strings; `eth0.100` must stay one name.
                "interface": "eth0.100",
                "ipv4address": "10.100.0.5",
                "ipv4prefixLength": "16",
                "ipv6address": "",
                "ipv6prefixLength": "",
                "gateway": "10.100.0.1",
                "gateway6": "",
                "isDefaultGateway": ""
            },
            {
                "interface": "eth0",
                "ipv4address": "192.168.10.22",
                "ipv4prefixLength": 24
            },
            {"interface": "", "ipv4address": "", "isDefaultGateway": false}
        ],
        "nameservers": [
            {"nameserver": "192.168.10.1"},
            {"nameserver": "2606:4700:4700::1111"},
            {"nameserver": ""}
        ]
    })
}

fn networking_tag() -> Value {
    json!({
        "wifi_ssid": "Lobby-Gäste",
        "wifi_password": "",
        "nameservers": [{"nameserver": "1.1.1.1"}, {"nameserver": "9.9.9.9"}]
    })
}

fn localization_config() -> Value {
    json!({
        "timezone": "America/Argentina/Buenos_Aires",
        "time_servers": [
            {"server": "ntp.lobby.example"},
            {"server": ""},
            {"server": "ptbtime1.ptb.de"}
        ]
    })
}

fn localization_tag() -> Value {
    json!({
        "time_servers": [{"server": "0.de.pool.ntp.org"}, {"server": "1.de.pool.ntp.org"}]
    })
}

fn security_config() -> Value {
    json!({
        "password_secret": "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f",
        "authorized_keys": [
            {"key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx3mPDhX0p9Yd0lq6Rr1n7f1wVJw3bBzG2qvQnq5sZb jürgen@büro"},
            {"key": ""},
            {"key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFdM2fS5b4s8kQp2R0uC8C0xvR8m5n3rJ1yHq2w7pL4t \"ci ${runner}\""}
        ],
        "security_pki_certificates": [
            {"certificate": "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUUc2R0oFm1x1Sx5yHkJq0H3Vd6WgwCgYIKoZIzj0EAwIw\nLzEtMCsGA1UEAwwkTG9iYnkgUm9vdCBDQSDigJMgRsO2cnN0ZXIgJiBTw7ZobmUw\n-----END CERTIFICATE-----\n"}
        ]
    })
}

fn security_tag() -> Value {
    json!({
        "password_secret": "",
        "authorized_keys": [
            {"key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMq8yJf3c9Zt1pXo6Hq3v0Wb2Lr5sNd7eKa4Tg1uYc0p signage@lobby"}
        ],
        "security_pki_certificates": []
    })
}

fn files_config() -> Value {
    json!({
        "secrets": [
            {
                "secret": "7d1e4b2a-9c3f-4e8d-a6b5-0f1e2d3c4b5a",
                "path": "/etc/lobby/api-token",
                "owner": "kiosk",
                "group": "kiosk",
                "mode": "0600"
            },
            {"secret": "c0ffee00-1234-4abc-9def-0123456789ab", "path": "/var/lib/signage/wifi.env"},
            {"secret": "", "path": "/etc/lobby/unset"}
        ],
        "artifacts": [
            {
                "artifact": "welcome-screen.png",
                "path": "/var/lib/signage/Willkommen im Foyer.png",
                "owner": "kiosk",
                "group": "users",
                "mode": "0644"
            },
            {"artifact": "playlist.m3u", "path": "", "owner": "", "group": "", "mode": ""},
            {"artifact": "", "path": "/etc/ignored"}
        ]
    })
}

fn files_tag() -> Value {
    json!({
        "secrets": [],
        "artifacts": [
            {"artifact": "motd.txt", "path": "/etc/motd.d/50-lobby-100%", "mode": "0444"}
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// Golden files

#[test]
fn networking_golden() {
    golden(
        "networking",
        NETWORKING,
        &networking_config(),
        &networking_tag(),
    );
}

#[test]
fn localization_golden() {
    golden(
        "localization",
        LOCALIZATION,
        &localization_config(),
        &localization_tag(),
    );
}

#[test]
fn security_golden() {
    golden("security", SECURITY, &security_config(), &security_tag());
}

#[test]
fn files_golden() {
    golden("files", FILES, &files_config(), &files_tag());
}

// ---------------------------------------------------------------------------------------------
// Evaluation with Nix

#[test]
fn networking_golden_evaluates() {
    let v = evaluate(&golden_case(
        "networking",
        NETWORKING,
        CONFIG,
        &networking_config(),
    ));
    let net = &v["networking"];
    assert_eq!(
        net["interfaces"]["eth0"],
        json!({"_prio": 80, "value": {
            "ipv4": {"addresses": [
                {"address": "192.168.10.21", "prefixLength": 24},
                {"address": "192.168.10.22", "prefixLength": 24}
            ]},
            "ipv6": {"addresses": [{"address": "fd00:10::21", "prefixLength": 64}]}
        }})
    );
    assert_eq!(
        net["interfaces"]["eth0.100"]["value"]["ipv4"]["addresses"],
        json!([{"address": "10.100.0.5", "prefixLength": 16}])
    );
    assert_eq!(
        net["defaultGateway"],
        json!({"_prio": 80, "value": {"address": "192.168.10.1", "interface": "eth0"}})
    );
    assert_eq!(
        net["defaultGateway6"],
        json!({"_prio": 80, "value": {"address": "fd00:10::1", "interface": "eth0"}})
    );
    assert_eq!(
        net["nameservers"],
        json!({"_prio": 80, "value": ["192.168.10.1", "2606:4700:4700::1111"]})
    );
    let cfg = &v["thymis"]["config"];
    let original = networking_config();
    for (key, option) in [
        ("wifi_ssid", "wifi-ssid"),
        ("wifi_password", "wifi-password"),
        ("wifi_auth", "wifi-auth"),
    ] {
        assert_eq!(cfg[option], json!({"_prio": 80, "value": original[key]}));
    }
    assert_eq!(
        cfg["wifi-auth-protocols"],
        json!({"_prio": 80, "value": [
            {"protocol": "WPA-EAP"}, {"protocol": "SAE"}, {"protocol": "WPA-PSK"}
        ]})
    );
}

#[test]
fn localization_golden_evaluates() {
    let config = evaluate(&golden_case(
        "localization",
        LOCALIZATION,
        CONFIG,
        &localization_config(),
    ));
    assert_eq!(
        config,
        json!({
            "networking": {"timeServers": {"_prio": 80, "value": ["ntp.lobby.example", "ptbtime1.ptb.de"]}},
            "time": {"timeZone": {"_prio": 80, "value": "America/Argentina/Buenos_Aires"}}
        })
    );
    let tag = evaluate(&golden_case(
        "localization",
        LOCALIZATION,
        TAG,
        &localization_tag(),
    ));
    assert_eq!(
        tag["time"]["timeZone"],
        json!({"_prio": 100, "value": "Europe/Berlin"})
    );
    assert_eq!(tag["networking"]["timeServers"]["_prio"], json!(90));
}

#[test]
fn security_golden_evaluates() {
    let v = evaluate(&golden_case(
        "security",
        SECURITY,
        CONFIG,
        &security_config(),
    ));
    let original = security_config();
    let keys = [
        original["authorized_keys"][0]["key"].clone(),
        original["authorized_keys"][2]["key"].clone(),
    ];
    assert_eq!(
        v["users"]["users"]["root"],
        json!({
            "hashedPasswordFile": "/run/thymis/root_password_hash",
            "openssh": {"authorizedKeys": {"keys": keys}}
        })
    );
    assert_eq!(
        v["security"]["pki"]["certificates"],
        json!([original["security_pki_certificates"][0]["certificate"]])
    );
    assert_eq!(
        v["thymis"]["config"]["authorized-keys"],
        json!({"_prio": 80, "value": [{"key": keys[0]}, {"key": keys[1]}]})
    );
    let tag = evaluate(&golden_case("security", SECURITY, TAG, &security_tag()));
    assert!(
        tag["users"]["users"]["root"]
            .get("hashedPasswordFile")
            .is_none(),
        "no password file without a password secret: {tag}"
    );
    assert!(
        tag["security"].is_null(),
        "no empty certificate list: {tag}"
    );
}

#[test]
fn files_golden_evaluates() {
    let store = "/nix/store/00000000000000000000000000000000-";
    let v = evaluate(&golden_case("files", FILES, CONFIG, &files_config()));
    assert_eq!(
        v,
        json!({"systemd": {"tmpfiles": {"rules": [
            format!("C+ /var/lib/signage/Willkommen\\x20im\\x20Foyer.png 0644 kiosk users - {store}welcome-screen.png"),
            format!("C+ / - - - - {store}playlist.m3u"),
        ]}}})
    );
    let tag = evaluate(&golden_case("files", FILES, TAG, &files_tag()));
    assert_eq!(
        tag["systemd"]["tmpfiles"]["rules"],
        json!([format!(
            "C+ /etc/motd.d/50-lobby-100%% 0444 - - - {store}motd.txt"
        )])
    );
}

#[test]
fn timezone_with_quotes_round_trips() {
    let timezone = "Etc/\"Zürich\" ${tz} \\ $x\nline two\ttab";
    for target in [CONFIG, TAG] {
        let text = render_ok(LOCALIZATION, target, &json!({ "timezone": timezone }));
        let v = evaluate(&text);
        assert_eq!(
            v["time"]["timeZone"],
            json!({"_prio": target.2, "value": timezone})
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Behaviour

#[test]
fn nameservers_without_static_networks() {
    for target in [CONFIG, TAG] {
        let text = render_ok(
            NETWORKING,
            target,
            &json!({"nameservers": [{"nameserver": "9.9.9.9"}, {"nameserver": null}, null]}),
        );
        assert!(
            text.contains(&format!(
                "networking.nameservers = lib.mkOverride {} [",
                target.2
            )),
            "{text}"
        );
        let v = evaluate(&text);
        assert_eq!(
            v,
            json!({"networking": {"nameservers": {"_prio": target.2, "value": ["9.9.9.9"]}}})
        );
    }
    // Only empty entries: nothing to emit.
    let text = render_ok(
        NETWORKING,
        CONFIG,
        &json!({"nameservers": [{"nameserver": ""}]}),
    );
    assert!(!text.contains("nameservers"), "{text}");
}

#[test]
fn localization_default_and_set_at_both_priorities() {
    for target in [CONFIG, TAG] {
        for unset in [
            json!({}),
            json!({"timezone": null}),
            json!({"timezone": ""}),
        ] {
            let text = render_ok(LOCALIZATION, target, &unset);
            assert!(
                text.contains("time.timeZone = lib.mkOverride 100 \"Europe/Berlin\";"),
                "{unset}: {text}"
            );
            assert!(!text.contains("timeServers"), "{text}");
        }
        let text = render_ok(LOCALIZATION, target, &json!({"timezone": "Asia/Tokyo"}));
        assert!(
            text.contains(&format!(
                "time.timeZone = lib.mkOverride {} \"Asia/Tokyo\";",
                target.2
            )),
            "{text}"
        );
    }
}

#[test]
fn files_secret_requirements() {
    let found = secrets(FILES, &files_config());
    assert_eq!(
        found,
        vec![
            SecretRequirement {
                secret_id: "7d1e4b2a-9c3f-4e8d-a6b5-0f1e2d3c4b5a".into(),
                path: "/etc/lobby/api-token".into(),
                owner: Some("kiosk".into()),
                group: Some("kiosk".into()),
                mode: Some("0600".into()),
            },
            SecretRequirement {
                secret_id: "c0ffee00-1234-4abc-9def-0123456789ab".into(),
                path: "/var/lib/signage/wifi.env".into(),
                owner: None,
                group: None,
                mode: None,
            },
        ]
    );
    // Elements without a secret or path are skipped, and wrong types never panic or hide the
    // well-formed elements.
    let odd = json!({"secrets": [
        {"secret": "7d1e4b2a-9c3f-4e8d-a6b5-0f1e2d3c4b5a"},
        {"secret": "7d1e4b2a-9c3f-4e8d-a6b5-0f1e2d3c4b5a", "path": 5},
        {"secret": 7, "path": "/x"},
        "not an object",
        null,
        {"secret": "c0ffee00-1234-4abc-9def-0123456789ab", "path": "/etc/ok", "mode": 600}
    ]});
    assert_eq!(
        secrets(FILES, &odd),
        vec![SecretRequirement {
            secret_id: "c0ffee00-1234-4abc-9def-0123456789ab".into(),
            path: "/etc/ok".into(),
            owner: None,
            group: None,
            mode: None,
        }]
    );
    assert_eq!(secrets(FILES, &json!({"secrets": "nope"})), vec![]);
    assert_eq!(secrets(FILES, &json!({})), vec![]);
    // Secrets never reach the Nix text.
    let text = render_ok(
        FILES,
        CONFIG,
        &json!({"secrets": files_config()["secrets"]}),
    );
    assert!(!text.contains("7d1e4b2a"), "{text}");
    assert!(!text.contains("api-token"), "{text}");
}

#[test]
fn security_password_secret_requirement() {
    assert_eq!(
        secrets(SECURITY, &security_config()),
        vec![SecretRequirement {
            secret_id: "3f2c8a1e-5b7d-4c9a-8e6f-1a2b3c4d5e6f".into(),
            path: "/run/thymis/root_password_hash".into(),
            owner: Some("root".into()),
            group: Some("root".into()),
            mode: Some("0400".into()),
        }]
    );
    assert_eq!(secrets(SECURITY, &security_tag()), vec![]);
}

#[test]
fn empty_settings_render_valid_nix() {
    for module in [NETWORKING, LOCALIZATION, SECURITY, FILES] {
        for target in [CONFIG, TAG] {
            render_ok(module, target, &json!({}));
        }
    }
    let all_empty = [
        (
            NETWORKING,
            json!({"wifi_auth_protocols": [], "static_networks": null, "nameservers": null}),
        ),
        (
            SECURITY,
            json!({"password_secret": "", "authorized_keys": [], "security_pki_certificates": []}),
        ),
        (FILES, json!({"secrets": [], "artifacts": []})),
    ];
    for (module, values) in all_empty {
        let text = render_ok(module, CONFIG, &values);
        let v = evaluate(&text);
        // Only the pass-through attributes of empty lists may appear.
        let without_thymis: Map<String, Value> = settings(v)
            .into_iter()
            .filter(|(k, _)| k != "thymis")
            .collect();
        assert!(without_thymis.is_empty(), "{module}: {text}");
    }
}

#[test]
fn wrong_types_are_invalid_settings() {
    let cases = [
        (NETWORKING, json!({"wifi_ssid": 5}), "wifi_ssid"),
        (NETWORKING, json!({"wifi_auth": ["x"]}), "wifi_auth"),
        (
            NETWORKING,
            json!({"wifi_auth_protocols": [{"protocol": 1}]}),
            "wifi_auth_protocols[0].protocol",
        ),
        (
            NETWORKING,
            json!({"static_networks": "eth0"}),
            "static_networks",
        ),
        (
            NETWORKING,
            json!({"static_networks": [3]}),
            "static_networks[0]",
        ),
        (
            NETWORKING,
            json!({"static_networks": [{"interface": "eth0", "ipv4address": "10.0.0.2", "ipv4prefixLength": "abc"}]}),
            "static_networks[0].ipv4prefixLength",
        ),
        (
            NETWORKING,
            json!({"static_networks": [{"interface": "eth0", "ipv4address": "10.0.0.2", "ipv4prefixLength": 2.5}]}),
            "static_networks[0].ipv4prefixLength",
        ),
        (
            NETWORKING,
            json!({"static_networks": [{"interface": "eth0", "isDefaultGateway": "yes"}]}),
            "static_networks[0].isDefaultGateway",
        ),
        (
            NETWORKING,
            json!({"static_networks": [{"interface": {"name": "eth0"}}]}),
            "static_networks[0].interface",
        ),
        (
            NETWORKING,
            json!({"nameservers": [{"nameserver": 9}]}),
            "nameservers[0].nameserver",
        ),
        (
            LOCALIZATION,
            json!({"timezone": ["Europe/Berlin"]}),
            "timezone",
        ),
        (
            LOCALIZATION,
            json!({"time_servers": {"server": "x"}}),
            "time_servers",
        ),
        (
            LOCALIZATION,
            json!({"time_servers": [{"server": true}]}),
            "time_servers[0].server",
        ),
        (SECURITY, json!({"password_secret": 42}), "password_secret"),
        (SECURITY, json!({"authorized_keys": {}}), "authorized_keys"),
        (
            SECURITY,
            json!({"authorized_keys": [{"key": 1}]}),
            "authorized_keys[0].key",
        ),
        (
            SECURITY,
            json!({"security_pki_certificates": [{"certificate": false}]}),
            "security_pki_certificates[0].certificate",
        ),
        (
            FILES,
            json!({"artifacts": [{"artifact": 7}]}),
            "artifacts[0].artifact",
        ),
        (
            FILES,
            json!({"artifacts": [{"artifact": "x", "mode": 644}]}),
            "artifacts[0].mode",
        ),
        (
            FILES,
            json!({"secrets": [{"secret": "x", "path": false}]}),
            "secrets[0].path",
        ),
        (FILES, json!({"secrets": 1}), "secrets"),
    ];
    for (module, values, expected_key) in cases {
        match render(module, CONFIG, &values) {
            Err(RenderError::InvalidSetting { key, message }) => {
                assert_eq!(key, expected_key, "{values}: {message}");
                assert!(message.starts_with("expected "), "{values}: {message}");
            }
            other => panic!("{values}: expected InvalidSetting, got {other:?}"),
        }
    }
}

#[test]
fn unusable_values_are_invalid_settings() {
    let cases = [
        (
            NETWORKING,
            json!({"static_networks": [{"interface": "eth0", "ipv4address": "10.0.0.2"}]}),
            "static_networks[0].ipv4prefixLength",
        ),
        (
            NETWORKING,
            json!({"static_networks": [{"interface": "eth0", "ipv6address": "fd00::2", "ipv6prefixLength": 129}]}),
            "static_networks[0].ipv6prefixLength",
        ),
        (
            NETWORKING,
            json!({"static_networks": [{"interface": "", "ipv4address": "10.0.0.2", "ipv4prefixLength": 8}]}),
            "static_networks[0].interface",
        ),
        // An artifact name must not leave the artifacts folder.
        (
            FILES,
            json!({"artifacts": [{"artifact": "../flake.nix", "path": "/etc/x"}]}),
            "artifacts[0].artifact",
        ),
    ];
    for (module, values, expected_key) in cases {
        match render(module, CONFIG, &values) {
            Err(RenderError::InvalidSetting { key, .. }) => assert_eq!(key, expected_key),
            other => panic!("{values}: expected InvalidSetting, got {other:?}"),
        }
    }
}

#[test]
fn tmpfiles_fields_cannot_break_out() {
    // A newline in a path must not start a second tmpfiles rule.
    let text = render_ok(
        FILES,
        CONFIG,
        &json!({"artifacts": [{"artifact": "a.txt", "path": "/tmp/x\nR! / - - - -", "owner": "a b"}]}),
    );
    let v = evaluate(&text);
    let rule = v["systemd"]["tmpfiles"]["rules"][0]
        .as_str()
        .expect("one rule");
    assert!(!rule.contains('\n'), "{rule}");
    assert!(
        rule.starts_with("C+ /tmp/x\\x0aR!\\x20/\\x20-\\x20-\\x20-\\x20- - a\\x20b - - "),
        "{rule}"
    );
}

#[test]
fn registry_and_wire_models() {
    let registry = ModuleRegistry::with_builtins();
    let types: Vec<&str> = registry
        .iter()
        .map(|m| m.info().type_name.as_str())
        .collect();
    let position = |t: &str| types.iter().position(|x| *x == t).expect(t);
    assert!(position("thymis_controller.modules.thymis.ThymisDevice") < position(NETWORKING));
    assert!(position(NETWORKING) < position(LOCALIZATION));
    assert!(position(LOCALIZATION) < position(SECURITY));
    assert!(position(SECURITY) < position(FILES));
    assert!(position(FILES) < position("thymis_controller.modules.whatever.WhateverModule"));

    let wire = |module: &str, locale: &str| registry.get(module).unwrap().info().to_wire(locale);
    let summary = |module: &str| -> Vec<(String, Value, Value)> {
        let w = wire(module, "en");
        w["settings"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, s)| (k.clone(), s["order"].clone(), s["default"].clone()))
            .collect()
    };
    assert_eq!(
        summary(NETWORKING),
        vec![
            ("nameservers".into(), json!(60), Value::Null),
            ("static_networks".into(), json!(50), Value::Null),
            ("wifi_auth".into(), json!(30), json!("")),
            ("wifi_auth_protocols".into(), json!(40), json!([])),
            ("wifi_password".into(), json!(20), json!("")),
            ("wifi_ssid".into(), json!(10), json!("")),
        ]
    );
    assert_eq!(
        summary(LOCALIZATION),
        vec![
            ("time_servers".into(), json!(20), Value::Null),
            ("timezone".into(), json!(10), json!("Europe/Berlin")),
        ]
    );
    assert_eq!(
        summary(SECURITY),
        vec![
            ("authorized_keys".into(), json!(20), json!([])),
            ("password_secret".into(), json!(10), json!("")),
            ("security_pki_certificates".into(), json!(30), json!([])),
        ]
    );
    assert_eq!(
        summary(FILES),
        vec![
            ("artifacts".into(), json!(20), json!([])),
            ("secrets".into(), json!(10), json!([])),
        ]
    );

    let net = wire(NETWORKING, "de");
    assert_eq!(net["displayName"], "Netzwerk");
    assert_eq!(net["category"], "Konnektivität");
    let protocols = &net["settings"]["wifi_auth_protocols"]["type"];
    assert_eq!(protocols["type"], "list");
    assert_eq!(protocols["element-name"], "Protokoll");
    let options = protocols["list-of"]["protocol"]["type"]["select-one"]
        .as_array()
        .unwrap();
    assert_eq!(options.len(), 21);
    assert_eq!(options[0], json!(["WPA-PSK", "WPA-PSK"]));
    assert_eq!(options[20], json!(["DPP", "DPP"]));
    let static_fields: Vec<&String> = net["settings"]["static_networks"]["type"]["list-of"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        static_fields,
        [
            "gateway",
            "gateway6",
            "interface",
            "ipv4address",
            "ipv4prefixLength",
            "ipv6address",
            "ipv6prefixLength",
            "isDefaultGateway"
        ]
    );
    assert_eq!(
        net["settings"]["static_networks"]["type"]["list-of"]["ipv4prefixLength"]["type"],
        "int"
    );

    let loc = wire(LOCALIZATION, "de");
    assert_eq!(loc["displayName"], "Lokalisierung & Zeit");
    assert_eq!(loc["category"], "System");

    let sec = wire(SECURITY, "en");
    assert_eq!(sec["displayName"], "Security & Access");
    assert_eq!(
        sec["settings"]["password_secret"]["type"],
        json!({
            "type": "secret",
            "allowed-types": ["single_line"],
            "default-processing-type": "mkpasswd-yescrypt",
            "default-save-to-image": true
        })
    );
    assert_eq!(
        wire(SECURITY, "de")["settings"]["security_pki_certificates"]["displayName"],
        "Vertrauenswürdige Stammzertifikate"
    );

    let files = wire(FILES, "de");
    assert_eq!(files["displayName"], "Dateien");
    assert_eq!(files["category"], "Dateien");
    let secret_fields = &files["settings"]["secrets"]["type"]["list-of"];
    assert_eq!(
        secret_fields["secret"]["type"],
        json!({
            "type": "secret",
            "allowed-types": ["single_line", "multi_line", "env_list", "file"],
            "default-processing-type": "none",
            "default-save-to-image": false
        })
    );
    assert_eq!(secret_fields["path"]["displayName"], "Secret-Pfad");
    assert_eq!(secret_fields["mode"]["order"], 40);
    assert_eq!(
        files["settings"]["artifacts"]["type"]["list-of"]["artifact"]["type"],
        json!({"type": "artifact"})
    );
}
