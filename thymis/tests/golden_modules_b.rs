//! Golden-file tests of the OCI Containers, Kiosk, Bash and Python modules.
//!
//! Each module is rendered for a config (`lobby-pi-1`, priority 80), a tag (`lobby-screens`,
//! priority 90) and further variants, and compared with
//! `tests/golden/modules/<module>.<variant>.nix`; `UPDATE_GOLDEN=1` rewrites the golden files
//! after an intended change. Every rendered text must be accepted by our parser and by
//! `nix-instantiate --parse`, and the interesting ones are evaluated for real with stand-ins for
//! `pkgs` and `lib`, so escaping is checked by Nix and by bash rather than by eye.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Map, Value};
use thymis::module::{ModuleRegistry, RenderContext, RenderEnv, RenderError, TargetKind};

const OCI: &str = "thymis_controller.modules.oci_container.OCIContainers";
const KIOSK: &str = "thymis_controller.modules.kiosk.Kiosk";
const BASH: &str = "thymis_controller.modules.bash.BashModule";
const PYTHON: &str = "thymis_controller.modules.python.PythonModule";

const CONFIG: (TargetKind, &str, i64) = (TargetKind::Config, "lobby-pi-1", 80);
const TAG: (TargetKind, &str, i64) = (TargetKind::Tag, "lobby-screens", 90);

/// Stand-ins for the module arguments: packages are fake store paths, builders return their
/// text (so scripts can be inspected; shell scripts between `#>>>` and `#<<<` lines), `writePython3` returns its arguments as JSON, and
/// `lib.mkOverride` returns the value.
const STAND_INS: &str = r##"let
  named = names: builtins.listToAttrs (map (n: { name = n; value = "/nix/store/" + n; }) names);
in {
  lib = {
    mkOverride = priority: value: value;
    optionalString = cond: s: if cond then s else "";
  };
  pkgs = named [ "curl" "jq" "killall" "libxcvt" "pamixer" "pulseaudio" "tigervnc" "unclutter"
      "ungoogled-chromium" "ffmpeg" "git" ] // {
    xorg = named [ "xrandr" "xev" ];
    nodePackages = named [ "pnpm" ];
    python3Packages = named [ "requests" "paho-mqtt" ];
    stdenv.system = "aarch64-linux";
    writeText = name: text: text;
    writeShellScript = name: text: "/nix/store/" + name + "\n#>>>\n" + text + "#<<<\n";
    writers.writePython3 = name: args: text: {
      __toString = self: builtins.toJSON { inherit name text; inherit (args) libraries; };
    };
  };
  inputs = { };
  config = { };
}"##;

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
    let settings: Map<String, Value> = values.as_object().expect("settings object").clone();
    module
        .render(&ctx, &settings)
        .map(|output| output.to_text())
}

fn scratch_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("module.nix");
    std::fs::write(&path, text).expect("write temporary file");
    (dir, path)
}

/// Renders, checks that both parsers accept the text and compares it with its golden file.
fn golden(
    short: &str,
    variant: &str,
    module: &str,
    target: (TargetKind, &str, i64),
    values: Value,
) -> String {
    let text = render(module, target, &values)
        .unwrap_or_else(|e| panic!("rendering {short}.{variant} failed: {e}"));
    if let Err(error) = thymis::nix::check_syntax(&text) {
        panic!("check_syntax rejects {short}.{variant}: {error}\n{text}");
    }
    let (_dir, path) = scratch_file(&text);
    common::assert_nix_parses(&path);
    common::assert_golden(
        &common::tests_dir(&format!("golden/modules/{short}.{variant}.nix")),
        &text,
    );
    text
}

/// Applies the module in `text` to [`STAND_INS`] and returns the result as JSON.
fn evaluate(text: &str) -> Value {
    let (_dir, path) = scratch_file(text);
    common::nix_eval_json(&format!("import {} ({STAND_INS})", path.display()))
}

/// Runs `script` with bash and returns its stdout.
fn bash(script: &str) -> String {
    let output = Command::new("bash")
        .args(["-c", script])
        .output()
        .expect("bash must be installed");
    assert!(
        output.status.success(),
        "bash failed: {}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

// ---------------------------------------------------------------------------------------------
// Settings of the cases

const TRICKY_URL: &str =
    "https://intranet.example.com/board?team=O'Brien&title=\"Lobby ${floor}\"&x=''&lang=Grüße $(id)";
const TRICKY_PASSWORD: &str = "pa''ss\"w'ord ${HOME} $(reboot)";
const TRICKY_SINK: &str = "HDMI 'A\"";
const TRICKY_ENV: &str = "${HOME}/data \"quoted\" ''two'' \\backslash\nsecond line — ünïcode";

fn oci_config() -> Value {
    json!({"containers": [
        {
            "container_name": "web",
            "image": "docker.io/library/nginx:1.27",
            "ports": [
                {"host": "8080", "container": "80"},
                {"host": "127.0.0.1:9443", "container": "443"},
                {"host": "", "container": "8081"},
                {"host": "1234", "container": ""}
            ],
            "volumes": [
                {"host": "/var/lib/web", "container": "/usr/share/nginx/html"},
                {"host": "", "container": "/cache"}
            ],
            "environment": [
                {"key": "GREETING", "value": TRICKY_ENV},
                {"key": "my.dotted-key", "value": "Grüezi"},
                {"key": "", "value": "ignored"}
            ],
            "labels": [
                {"key": "traefik.http.routers.web.rule", "value": "Host(`lobby.example.com`)"}
            ]
        },
        {
            "container_name": "db.main",
            "image": "docker.io/library/postgres:16",
            "ports": [],
            "volumes": [],
            "environment": [{"key": "POSTGRES_PASSWORD", "value": "s3cr\"et'"}],
            "labels": []
        },
        {"container_name": "", "image": "incomplete"}
    ]})
}

fn oci_tag() -> Value {
    json!({"containers": [{"container_name": "signage", "image": "ghcr.io/example/signage:latest"}]})
}

fn kiosk_config() -> Value {
    json!({
        "kiosk_url": TRICKY_URL,
        "xrandr_mode": "1280x720@50",
        "xrandr_rotation": "left",
        "volume": 150,
        "audio_sink_fuzzy": TRICKY_SINK,
        "enable_vnc": true,
        "vnc_password": TRICKY_PASSWORD
    })
}

fn kiosk_tag() -> Value {
    json!({
        "kiosk_url": "https://signage.example.com/lobby",
        "xrandr_mode": "1360x768_59.94",
        "xrandr_rotation": "inverted",
        "volume": -5,
        "audio_sink_fuzzy": "",
        "enable_vnc": false
    })
}

const BASH_SCRIPT: &str = "\n  #!/usr/bin/env bash\necho \"Hallo ${USER:-niemand}, Grüße!\"\nprintf '%s\\n' ''double'' 'single'\ncurl -fsS https://example.com | jq '.items[]'\n\n";

fn bash_config() -> Value {
    json!({
        "timer_config": {
            "type": "systemd-timer",
            "timer_type": "realtime",
            "on_calendar": ["Mon..Fri *-*-* 08:00:00", "", "Sat,Sun *-*-* 10:00:00"],
            "persistent": true,
            "randomized_delay_sec": "5min",
            "on_boot_sec": "ignored for realtime"
        },
        "packages": [{"package": "curl"}, {"package": "pkgs.jq"}, {"package": " "}, {"package": "nodePackages.pnpm"}],
        "script": BASH_SCRIPT
    })
}

fn bash_tag() -> Value {
    json!({
        "timer_config": {
            "timer_type": "monotonic",
            "on_boot_sec": "5min",
            "on_unit_active_sec": "1h",
            "accuracy_sec": "1s",
            "on_calendar": ["ignored for monotonic"]
        },
        "packages": [],
        "script": "logger -t lobby \"tag ${TAG:-lobby-screens} check\""
    })
}

fn bash_daemon() -> Value {
    json!({
        "timer_config": {"timer_type": "continuous", "on_calendar": ["daily"]},
        "packages": [{"package": "git"}],
        "script": "while true; do\n  date >> /var/log/heartbeat\n  sleep 60\ndone"
    })
}

const PYTHON_SCRIPT: &str = "import requests\n\n\ndef main():\n    print(f\"Grüße {requests.__version__}\")\n    print('''triple ${x} \"quoted\"''')\n\n\nmain()\n";

fn python_config() -> Value {
    json!({
        "timer_config": {
            "timer_type": "realtime",
            "on_calendar": ["*-*-* 06:00:00", "*-*-* 18:00:00"],
            "accuracy_sec": "1min"
        },
        "python_packages": [{"package": "requests"}, {"package": "paho-mqtt"}, {"package": ""}],
        "system_packages": [{"package": "ffmpeg"}, {"package": "pkgs.git"}],
        "script": PYTHON_SCRIPT
    })
}

fn python_tag() -> Value {
    json!({
        "timer_config": {"timer_type": "monotonic", "on_boot_sec": "30s", "on_unit_active_sec": "15min"},
        "python_packages": [],
        "system_packages": [],
        "script": "print('tag')"
    })
}

fn python_daemon() -> Value {
    json!({
        "timer_config": null,
        "python_packages": [{"package": "paho-mqtt"}],
        "system_packages": [],
        "script": "import time\n\nwhile True:\n    time.sleep(1)\n"
    })
}

// ---------------------------------------------------------------------------------------------
// Golden files

#[test]
fn oci_containers_goldens() {
    golden("oci_containers", "config", OCI, CONFIG, oci_config());
    golden("oci_containers", "tag", OCI, TAG, oci_tag());
    golden("oci_containers", "defaults", OCI, CONFIG, json!({}));
}

#[test]
fn kiosk_goldens() {
    golden("kiosk", "config", KIOSK, CONFIG, kiosk_config());
    golden("kiosk", "tag", KIOSK, TAG, kiosk_tag());
    golden("kiosk", "defaults", KIOSK, CONFIG, json!({}));
}

#[test]
fn bash_goldens() {
    golden("bash", "config", BASH, CONFIG, bash_config());
    golden("bash", "tag", BASH, TAG, bash_tag());
    golden("bash", "daemon", BASH, CONFIG, bash_daemon());
    golden("bash", "defaults", BASH, TAG, json!({}));
}

#[test]
fn python_goldens() {
    golden("python", "config", PYTHON, CONFIG, python_config());
    golden("python", "tag", PYTHON, TAG, python_tag());
    golden("python", "daemon", PYTHON, CONFIG, python_daemon());
    golden("python", "defaults", PYTHON, TAG, json!({}));
}

// ---------------------------------------------------------------------------------------------
// Evaluation

#[test]
fn oci_values_round_trip_through_nix() {
    let text = render(OCI, CONFIG, &oci_config()).unwrap();
    let result = evaluate(&text);
    let oci = &result["virtualisation"]["oci-containers"];
    assert_eq!(oci["backend"], "podman");
    let web = &oci["containers"]["web"];
    assert_eq!(web["environment"]["GREETING"], TRICKY_ENV);
    assert_eq!(web["environment"]["my.dotted-key"], "Grüezi");
    assert_eq!(
        web["environment"].as_object().unwrap().len(),
        2,
        "empty keys are skipped"
    );
    assert_eq!(
        web["ports"],
        json!(["8080:80", "127.0.0.1:9443:443", "8081"])
    );
    assert_eq!(
        web["volumes"],
        json!(["/var/lib/web:/usr/share/nginx/html", "/cache"])
    );
    assert_eq!(
        web["labels"]["traefik.http.routers.web.rule"],
        "Host(`lobby.example.com`)"
    );
    assert_eq!(web["log-driver"], "journald");
    let db = &oci["containers"]["db.main"];
    assert_eq!(db["environment"]["POSTGRES_PASSWORD"], "s3cr\"et'");
    assert!(db.get("ports").is_none(), "empty lists are left out");
    assert_eq!(oci["containers"].as_object().unwrap().len(), 2);
    assert_eq!(
        result["virtualisation"]["podman"]["defaultNetwork"]["settings"]["dns_enabled"],
        true
    );
}

#[test]
fn kiosk_values_are_shell_quoted_in_the_session() {
    let text = render(KIOSK, CONFIG, &kiosk_config()).unwrap();
    let result = evaluate(&text);
    let i3 = result["services"]["xserver"]["windowManager"]["i3"]["configFile"]
        .as_str()
        .expect("i3 config text");
    assert!(i3.starts_with("# i3 config file (v4)\n"), "{i3}");

    // The URL assignment, run by bash, yields the URL unchanged.
    let url_line = i3
        .lines()
        .find(|line| line.starts_with("url="))
        .expect("url assignment");
    assert_eq!(bash(&format!("{url_line}\nprintf %s \"$url\"")), TRICKY_URL);
    assert!(i3.contains("--app=\"$url\" --disable-gpu --disable-features=Translate"));

    // The VNC password reaches vncpasswd unchanged.
    let password_line = i3
        .lines()
        .find(|line| line.contains("vncpasswd"))
        .expect("vncpasswd line");
    let (feed, _) = password_line.split_once(" | ").expect("pipeline");
    assert_eq!(bash(feed), format!("{TRICKY_PASSWORD}\n"));

    // The sink pattern is one grep argument.
    let sink_line = i3
        .lines()
        .find(|line| line.starts_with("sink="))
        .expect("sink selection");
    let pattern = sink_line
        .split_once(" -e ")
        .and_then(|(_, rest)| rest.split_once(" | cut"))
        .expect("grep pattern")
        .0;
    assert_eq!(bash(&format!("printf %s {pattern}")), TRICKY_SINK);

    // Every generated script is valid bash.
    let scripts: Vec<&str> = i3
        .split("#>>>\n")
        .skip(1)
        .map(|rest| rest.split_once("#<<<\n").expect("script end").0)
        .collect();
    assert_eq!(scripts.len(), 4);
    for script in scripts {
        let (_dir, path) = scratch_file(script);
        let status = Command::new("bash").arg("-n").arg(&path).status().unwrap();
        assert!(status.success(), "bash -n rejects:\n{script}");
    }

    assert!(i3.contains("/nix/store/pamixer/bin/pamixer --set-volume 100\n"));
    assert!(i3.contains("/nix/store/libxcvt/bin/cvt 1280 720 50 "));
    assert!(i3.contains("--rotate 'left' "));
    assert!(i3.contains("x0vncserver -display :0"));

    let display_manager = &result["systemd"]["services"]["display-manager"];
    let nonce = display_manager["environment"]["NONCE"].as_str().unwrap();
    assert_eq!(nonce.len(), 64);
    assert_eq!(display_manager["restartIfChanged"], true);
    assert_eq!(
        result["services"]["displayManager"]["autoLogin"]["user"],
        "thymiskiosk"
    );
    assert_eq!(
        result["users"]["users"]["thymiskiosk"]["isNormalUser"],
        true
    );
    assert!(
        result["system"]["activationScripts"]["restart-display-manager-thymis"]["text"]
            .as_str()
            .unwrap()
            .contains(">> /run/nixos/activation-restart-list")
    );
}

#[test]
fn kiosk_tag_clamps_volume_and_leaves_out_vnc_and_sink() {
    let text = render(KIOSK, TAG, &kiosk_tag()).unwrap();
    let i3 = evaluate(&text)["services"]["xserver"]["windowManager"]["i3"]["configFile"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(i3.contains("--set-volume 0\n"));
    assert!(i3.contains("cvt 1360 768 59 "));
    assert!(!i3.contains("vnc"));
    assert!(!i3.contains("pactl"));
}

#[test]
fn kiosk_nonce_follows_the_settings() {
    let nonce = |values: &Value| {
        let text = render(KIOSK, CONFIG, values).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("NONCE"))
            .unwrap()
            .to_owned();
        line
    };
    let a = json!({"kiosk_url": "https://a.example", "volume": 10});
    let a_reordered = json!({"volume": 10, "kiosk_url": "https://a.example"});
    let b = json!({"kiosk_url": "https://b.example", "volume": 10});
    assert_eq!(nonce(&a), nonce(&a_reordered));
    assert_ne!(nonce(&a), nonce(&b));
}

#[test]
fn bash_timer_with_two_calendar_entries_evaluates_to_a_list() {
    let text = render(BASH, CONFIG, &bash_config()).unwrap();
    let result = evaluate(&text);
    let name = "thymis-bash-service-hosts-lobby-pi-1";
    let timer = &result["systemd"]["timers"][name];
    assert_eq!(
        timer["timerConfig"],
        json!({
            "OnCalendar": ["Mon..Fri *-*-* 08:00:00", "Sat,Sun *-*-* 10:00:00"],
            "Persistent": true,
            "RandomizedDelaySec": "5min"
        })
    );
    assert_eq!(timer["wantedBy"], json!(["timers.target"]));
    let service = &result["systemd"]["services"][name];
    assert_eq!(
        service["script"].as_str().unwrap(),
        format!("{}\n", BASH_SCRIPT.trim())
    );
    assert_eq!(
        service["path"],
        json!(["/nix/store/curl", "/nix/store/jq", "/nix/store/pnpm"])
    );
    assert_eq!(service["serviceConfig"], json!({"Type": "oneshot"}));
    assert!(service.get("wantedBy").is_none());
}

#[test]
fn bash_monotonic_and_daemon_variants() {
    let result = evaluate(&render(BASH, TAG, &bash_tag()).unwrap());
    let name = "thymis-bash-service-tags-lobby-screens";
    assert_eq!(
        result["systemd"]["timers"][name]["timerConfig"],
        json!({"OnBootSec": "5min", "OnUnitActiveSec": "1h", "AccuracySec": "1s"})
    );
    assert_eq!(
        result["systemd"]["services"][name]["script"],
        "logger -t lobby \"tag ${TAG:-lobby-screens} check\"\n"
    );

    let result = evaluate(&render(BASH, CONFIG, &bash_daemon()).unwrap());
    let name = "thymis-bash-service-hosts-lobby-pi-1";
    assert!(result["systemd"].get("timers").is_none());
    let service = &result["systemd"]["services"][name];
    assert_eq!(service["wantedBy"], json!(["multi-user.target"]));
    assert_eq!(
        service["serviceConfig"],
        json!({"Type": "simple", "Restart": "always", "RestartSec": "10s"})
    );
}

#[test]
fn python_script_and_libraries_reach_the_writer() {
    let result = evaluate(&render(PYTHON, CONFIG, &python_config()).unwrap());
    let name = "thymis-python-service-hosts-lobby-pi-1";
    let service = &result["systemd"]["services"][name];
    let exec: Value =
        serde_json::from_str(service["serviceConfig"]["ExecStart"].as_str().unwrap()).unwrap();
    assert_eq!(
        exec,
        json!({
            "name": format!("{name}-script"),
            "libraries": ["/nix/store/requests", "/nix/store/paho-mqtt"],
            "text": PYTHON_SCRIPT,
        })
    );
    assert_eq!(
        service["path"],
        json!(["/nix/store/ffmpeg", "/nix/store/git"])
    );
    assert_eq!(service["serviceConfig"]["Type"], "oneshot");
    assert_eq!(
        result["systemd"]["timers"][name]["timerConfig"],
        json!({"OnCalendar": ["*-*-* 06:00:00", "*-*-* 18:00:00"], "AccuracySec": "1min"})
    );

    let result = evaluate(&render(PYTHON, TAG, &python_tag()).unwrap());
    let name = "thymis-python-service-tags-lobby-screens";
    assert_eq!(
        result["systemd"]["timers"][name]["timerConfig"],
        json!({"OnBootSec": "30s", "OnUnitActiveSec": "15min"})
    );

    let result = evaluate(&render(PYTHON, CONFIG, &python_daemon()).unwrap());
    let service = &result["systemd"]["services"]["thymis-python-service-hosts-lobby-pi-1"];
    assert_eq!(service["wantedBy"], json!(["multi-user.target"]));
    assert_eq!(service["serviceConfig"]["Restart"], "always");
}

#[test]
fn defaults_evaluate() {
    for (module, target) in [(OCI, CONFIG), (KIOSK, TAG), (BASH, CONFIG), (PYTHON, TAG)] {
        let result = evaluate(&render(module, target, &json!({})).unwrap());
        assert!(result.is_object(), "{module}: {result}");
    }
    let kiosk = evaluate(&render(KIOSK, CONFIG, &json!({})).unwrap());
    let i3 = kiosk["services"]["xserver"]["windowManager"]["i3"]["configFile"]
        .as_str()
        .unwrap();
    assert!(i3.contains("url='https://example.com'\n"));
    assert!(i3.contains("cvt 1920 1080 60 "));
    assert!(i3.contains("--rotate 'normal' "));
}

// ---------------------------------------------------------------------------------------------
// Errors and registration

fn invalid_key(module: &str, values: Value) -> String {
    match render(module, CONFIG, &values) {
        Err(RenderError::InvalidSetting { key, .. }) => key,
        other => panic!("{module} with {values}: expected InvalidSetting, got {other:?}"),
    }
}

#[test]
fn wrong_json_types_are_reported_not_panicked() {
    assert_eq!(invalid_key(OCI, json!({"containers": "web"})), "containers");
    assert_eq!(
        invalid_key(OCI, json!({"containers": [1]})),
        "containers[0]"
    );
    assert_eq!(
        invalid_key(OCI, json!({"containers": [{"container_name": ["x"]}]})),
        "containers[0].container_name"
    );
    assert_eq!(
        invalid_key(
            OCI,
            json!({"containers": [{"container_name": "a", "ports": {"host": "1"}}]})
        ),
        "containers[0].ports"
    );
    assert_eq!(
        invalid_key(
            OCI,
            json!({"containers": [{"container_name": "a", "environment": [{"key": "K", "value": true}]}]})
        ),
        "containers[0].environment[0].value"
    );
    assert_eq!(
        invalid_key(OCI, json!({"containers": [{"container_name": "a b"}]})),
        "containers[0].container_name"
    );
    assert_eq!(
        invalid_key(
            OCI,
            json!({"containers": [{"container_name": "a"}, {"container_name": "a"}]})
        ),
        "containers[1].container_name"
    );
    assert_eq!(
        invalid_key(
            OCI,
            json!({"containers": [{"container_name": "a", "labels": [{"key": "k"}, {"key": "k"}]}]})
        ),
        "containers[0].labels[1].key"
    );
    assert_eq!(invalid_key(KIOSK, json!({"kiosk_url": 5})), "kiosk_url");
    assert_eq!(
        invalid_key(KIOSK, json!({"vnc_password": "a\0b"})),
        "vnc_password"
    );
    assert_eq!(invalid_key(KIOSK, json!({"volume": "loud"})), "volume");
    assert_eq!(invalid_key(KIOSK, json!({"volume": 50.5})), "volume");
    assert_eq!(
        invalid_key(KIOSK, json!({"enable_vnc": "yes"})),
        "enable_vnc"
    );
    assert_eq!(invalid_key(BASH, json!({"script": ["echo"]})), "script");
    assert_eq!(invalid_key(BASH, json!({"packages": "curl"})), "packages");
    assert_eq!(
        invalid_key(BASH, json!({"packages": [{"package": 1}]})),
        "packages[0].package"
    );
    assert_eq!(
        invalid_key(BASH, json!({"timer_config": "daily"})),
        "timer_config"
    );
    assert_eq!(
        invalid_key(BASH, json!({"timer_config": {"timer_type": "hourly"}})),
        "timer_config.timer_type"
    );
    assert_eq!(
        invalid_key(PYTHON, json!({"timer_config": {"on_calendar": "daily"}})),
        "timer_config.on_calendar"
    );
    assert_eq!(
        invalid_key(PYTHON, json!({"python_packages": [["requests"]]})),
        "python_packages[0]"
    );
}

#[test]
fn nulls_mean_defaults() {
    let text = render(
        KIOSK,
        CONFIG,
        &json!({"kiosk_url": null, "volume": null, "enable_vnc": null}),
    )
    .unwrap();
    assert!(text.contains("url='https://example.com'"));
    for module in [OCI, BASH, PYTHON] {
        let values = match module {
            OCI => json!({"containers": null}),
            _ => json!({"timer_config": null, "script": null}),
        };
        let text = render(module, TAG, &values).unwrap();
        thymis::nix::check_syntax(&text).unwrap();
    }
}

#[test]
fn registered_in_upstream_order_with_upstream_schema() {
    let registry = ModuleRegistry::with_builtins();
    let order: Vec<String> = registry
        .iter()
        .map(|m| m.info().type_name.clone())
        .collect();
    let position = |name: &str| {
        order
            .iter()
            .position(|t| t.ends_with(name))
            .unwrap_or_else(|| panic!("{name} missing in {order:?}"))
    };
    let expected = [
        ".ThymisDevice",
        ".OCIContainers",
        ".Kiosk",
        ".WhateverModule",
        ".BashModule",
        ".PythonModule",
    ];
    let positions: Vec<usize> = expected.iter().map(|n| position(n)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{order:?}");

    // Keys, orders, defaults and types of the wire model, as upstream serves them.
    let wire = registry.to_wire("de");
    let module = |ty: &str| {
        wire.as_array()
            .unwrap()
            .iter()
            .find(|m| m["type"] == ty)
            .unwrap()
            .clone()
    };
    let kiosk = module(KIOSK);
    assert_eq!(kiosk["displayName"], "Kiosk");
    assert_eq!(kiosk["category"], "Anwendungen");
    let settings = &kiosk["settings"];
    for (key, order, default) in [
        ("kiosk_url", 10, json!("https://example.com")),
        ("xrandr_mode", 40, json!("1920x1080")),
        ("xrandr_rotation", 50, json!("normal")),
        ("volume", 55, json!(100)),
        ("audio_sink_fuzzy", 57, json!("")),
        ("enable_vnc", 60, json!(false)),
        ("vnc_password", 70, json!("password")),
    ] {
        assert_eq!(settings[key]["order"], order, "{key}");
        assert_eq!(settings[key]["default"], default, "{key}");
    }
    assert_eq!(
        settings["xrandr_rotation"]["type"]["select-one"],
        json!([
            ["normal", "normal"],
            ["left", "left"],
            ["right", "right"],
            ["inverted", "inverted"]
        ])
    );
    assert_eq!(settings["volume"]["type"], "int");
    assert_eq!(settings["xrandr_mode"]["displayName"], "Bildschirmmodus");

    let oci = module(OCI);
    assert_eq!(oci["displayName"], "OCI Container");
    let container = &oci["settings"]["containers"]["type"]["list-of"];
    for (key, order) in [
        ("container_name", 10),
        ("image", 15),
        ("ports", 25),
        ("volumes", 30),
        ("environment", 35),
        ("labels", 40),
    ] {
        assert_eq!(container[key]["order"], order, "{key}");
    }
    assert_eq!(container["environment"]["default"], Value::Null);
    assert_eq!(container["labels"]["example"], "[\"\"]");
    assert_eq!(container["ports"]["type"]["element-name"], "Port");

    for (ty, name, language, keys) in [
        (
            BASH,
            "Bash Module",
            "bash",
            vec![("timer_config", 10), ("packages", 20), ("script", 30)],
        ),
        (
            PYTHON,
            "Python Module",
            "python",
            vec![
                ("timer_config", 10),
                ("python_packages", 20),
                ("system_packages", 30),
                ("script", 40),
            ],
        ),
    ] {
        let module = module(ty);
        assert_eq!(module["displayName"], name);
        assert_eq!(module["category"], "Erweitert");
        for (key, order) in keys {
            assert_eq!(module["settings"][key]["order"], order, "{ty} {key}");
        }
        assert_eq!(module["settings"]["script"]["type"]["language"], language);
        assert_eq!(
            module["settings"]["timer_config"]["type"]["type"],
            "systemd-timer"
        );
        assert_eq!(
            module["settings"]["timer_config"]["type"]["timer_type"],
            "realtime"
        );
        assert_eq!(module["settings"]["timer_config"]["default"], Value::Null);
    }
}
