//! What the Bash and Python modules share: the systemd service name of an instance, the
//! `systemd-timer` setting rendered as `systemd.timers.<name>`, the service/daemon unit
//! settings, and the reading of their package lists and script text.

use serde_json::{Map, Value as Json};

use crate::module::{RenderContext, RenderError, SettingValues};
use crate::nix::{AttrSet, Expr};

/// When a Bash or Python service runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Started by a timer with these `timerConfig` attributes.
    Timer(AttrSet),
    /// Runs permanently and is restarted when it exits.
    Daemon,
}

/// The systemd unit name of an instance: `thymis-<language>-service-<folder>-<identifier>`,
/// e.g. `thymis-bash-service-hosts-lobby-pi-1`.
///
/// The first instance keeps upstream's name (its path relative to the repository with `/` and
/// `.` replaced by `-`), so `journalctl -u …` and existing monitoring keep working after a
/// migration; later instances of the same module get `-2`, `-3`, … so they stay separate units.
pub fn service_name(language: &str, ctx: &RenderContext) -> String {
    let relative = format!("{}/{}", ctx.kind.folder(), ctx.identifier);
    let base = format!(
        "thymis-{language}-service-{}",
        relative.replace(['/', '.'], "-")
    );
    match ctx.instance {
        0 => base,
        n => format!("{base}-{}", n + 1),
    }
}

fn invalid(key: &str, message: impl Into<String>) -> RenderError {
    RenderError::InvalidSetting {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Reads the timer setting `key`. `null`, a `continuous` timer and a timer that yields no
/// `timerConfig` attribute all mean a daemon, as upstream decides.
pub fn schedule(values: &SettingValues, key: &str) -> Result<Schedule, RenderError> {
    match values.get(key) {
        Json::Null => Ok(Schedule::Daemon),
        Json::Object(timer) => Ok(timer_config(timer, key)?
            .map(Schedule::Timer)
            .unwrap_or(Schedule::Daemon)),
        _ => Err(invalid(key, "expected a timer object")),
    }
}

/// The `timerConfig` attributes of a timer object, or `None` for a daemon.
///
/// Unlike upstream, several `on_calendar` entries become one `OnCalendar` list (upstream
/// defined the attribute once per entry, which Nix rejects); a single entry stays a string.
pub fn timer_config(timer: &Map<String, Json>, key: &str) -> Result<Option<AttrSet>, RenderError> {
    let text = |field: &str| -> Result<Option<&str>, RenderError> {
        match timer.get(field) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(invalid(
                key,
                format!("timer field `{field}` must be a string"),
            )),
        }
    };
    // A missing or null timer type means upstream's default, `realtime`.
    let timer_type = text("timer_type")?.unwrap_or("realtime");
    let mut config = AttrSet::new();
    match timer_type {
        "continuous" => return Ok(None),
        "realtime" => {
            let calendar = calendar_entries(timer, key)?;
            match calendar.as_slice() {
                [] => {}
                [one] => {
                    config.set("OnCalendar", *one);
                }
                many => {
                    config.set(
                        "OnCalendar",
                        Expr::List(many.iter().map(|e| Expr::str(e)).collect()),
                    );
                }
            }
            match timer.get("persistent") {
                None | Some(Json::Null) | Some(Json::Bool(false)) => {}
                Some(Json::Bool(true)) => {
                    config.set("Persistent", true);
                }
                Some(_) => {
                    return Err(invalid(
                        key,
                        "timer field `persistent` must be true or false",
                    ))
                }
            }
        }
        "monotonic" => {
            for (field, attr) in [
                ("on_boot_sec", "OnBootSec"),
                ("on_unit_active_sec", "OnUnitActiveSec"),
            ] {
                if let Some(value) = text(field)? {
                    config.set(attr, value);
                }
            }
        }
        other => {
            return Err(invalid(
                key,
                format!(
                    "unknown timer type `{other}` (expected realtime, monotonic or continuous)"
                ),
            ))
        }
    }
    for (field, attr) in [
        ("accuracy_sec", "AccuracySec"),
        ("randomized_delay_sec", "RandomizedDelaySec"),
    ] {
        if let Some(value) = text(field)? {
            config.set(attr, value);
        }
    }
    Ok((!config.is_empty()).then_some(config))
}

fn calendar_entries<'a>(
    timer: &'a Map<String, Json>,
    key: &str,
) -> Result<Vec<&'a str>, RenderError> {
    let entries = match timer.get("on_calendar") {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(entries)) => entries,
        Some(_) => return Err(invalid(key, "timer field `on_calendar` must be a list")),
    };
    let mut found = Vec::new();
    for entry in entries {
        match entry {
            Json::String(s) if !s.trim().is_empty() => found.push(s.as_str()),
            Json::String(_) | Json::Null => {}
            _ => {
                return Err(invalid(
                    key,
                    "timer field `on_calendar` must be a list of strings",
                ))
            }
        }
    }
    Ok(found)
}

/// Adds `systemd.services.<name>` (the unit, plus `wantedBy` and the `serviceConfig` type
/// settings of the schedule) and, for a timer, `systemd.timers.<name>`.
///
/// `unit` is the service attribute set without `serviceConfig`; `wrap` may put it into a
/// `let` (Python binds its script there). A timed service is a plain oneshot: upstream also set
/// `RemainAfterExit = true`, which keeps the unit active after the first run so the timer
/// never starts it again; that is deliberately left out.
pub fn add_service(
    body: &mut AttrSet,
    name: &str,
    mut unit: AttrSet,
    mut service_config: AttrSet,
    schedule: Schedule,
    wrap: impl FnOnce(Expr) -> Expr,
) {
    let timer = match schedule {
        Schedule::Timer(timer_config) => {
            service_config.set("Type", "oneshot");
            Some(timer_config)
        }
        Schedule::Daemon => {
            unit.set("wantedBy", Expr::List(vec![Expr::str("multi-user.target")]));
            service_config
                .set("Type", "simple")
                .set("Restart", "always")
                .set("RestartSec", "10s");
            None
        }
    };
    unit.set("serviceConfig", service_config);
    body.set_path(unit_path("services", name), wrap(Expr::Attrs(unit)));
    if let Some(timer_config) = timer {
        let mut timer_unit = AttrSet::new();
        timer_unit
            .set("wantedBy", Expr::List(vec![Expr::str("timers.target")]))
            .set("timerConfig", timer_config);
        body.set_path(unit_path("timers", name), timer_unit);
    }
}

fn unit_path(kind: &str, name: &str) -> Vec<String> {
    vec!["systemd".to_owned(), kind.to_owned(), name.to_owned()]
}

/// The packages of list setting `key` (elements `{package: "git"}`) as `base.<name>`
/// expressions. Empty entries are skipped; a leading `pkgs.` is dropped when `base` is `pkgs`
/// (upstream Python accepted it, and `pkgs.pkgs.x` would only be confusing); dotted names such
/// as `nodePackages.pnpm` select nested attributes; other characters end up quoted, so a name
/// can never inject Nix.
pub fn packages(values: &SettingValues, key: &str, base: &str) -> Result<Vec<Expr>, RenderError> {
    let items = match values.get(key) {
        Json::Null => return Ok(Vec::new()),
        Json::Array(items) => items,
        _ => return Err(invalid(key, "expected a list")),
    };
    let mut found = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let name = match item {
            Json::Object(element) => match element.get("package") {
                None | Some(Json::Null) => continue,
                Some(Json::String(name)) => name.trim(),
                Some(_) => {
                    return Err(invalid(
                        key,
                        format!("element {i}: `package` must be a string"),
                    ))
                }
            },
            Json::Null => continue,
            _ => return Err(invalid(key, format!("element {i}: expected an object"))),
        };
        let name = match base {
            "pkgs" => name.strip_prefix("pkgs.").unwrap_or(name),
            _ => name,
        };
        if name.is_empty() {
            continue;
        }
        found.push(Expr::var(base).select(name.split('.').map(str::to_owned).collect()));
    }
    Ok(found)
}

/// The script setting `key`, trimmed as upstream does, ending in a newline unless empty (so it
/// prints as an indented string and ends like a file should).
pub fn script(values: &SettingValues, key: &str) -> Result<String, RenderError> {
    match values.get(key) {
        Json::Null => Ok(String::new()),
        Json::String(text) => {
            let text = text.trim();
            Ok(if text.is_empty() {
                String::new()
            } else {
                format!("{text}\n")
            })
        }
        _ => Err(invalid(key, "expected a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{RenderEnv, TargetKind};
    use serde_json::json;

    fn config(timer: Json) -> Option<String> {
        timer_config(timer.as_object().unwrap(), "timer_config")
            .unwrap()
            .map(|c| Expr::Attrs(c).to_nix())
    }

    #[test]
    fn service_names_follow_upstream() {
        let env = RenderEnv::default();
        let ctx = RenderContext {
            kind: TargetKind::Tag,
            identifier: "lobby.screens",
            priority: 90,
            instance: 0,
            env: &env,
        };
        assert_eq!(
            service_name("bash", &ctx),
            "thymis-bash-service-tags-lobby-screens"
        );
        let second = RenderContext { instance: 1, ..ctx };
        assert_eq!(
            service_name("bash", &second),
            "thymis-bash-service-tags-lobby-screens-2"
        );
    }

    #[test]
    fn calendar_entries_become_one_list() {
        assert_eq!(
            config(json!({"timer_type": "realtime", "on_calendar": ["daily", "", "weekly"]})),
            Some("{\n  OnCalendar = [\n    \"daily\"\n    \"weekly\"\n  ];\n}".to_owned())
        );
        assert_eq!(
            config(json!({"on_calendar": ["daily"], "persistent": false})),
            Some("{\n  OnCalendar = \"daily\";\n}".to_owned())
        );
    }

    #[test]
    fn continuous_and_empty_timers_are_daemons() {
        assert_eq!(
            config(json!({"timer_type": "continuous", "accuracy_sec": "1s"})),
            None
        );
        assert_eq!(config(json!({"timer_type": "monotonic"})), None);
    }

    #[test]
    fn wrong_types_are_reported() {
        for bad in [
            json!({"timer_type": "hourly"}),
            json!({"on_calendar": "daily"}),
            json!({"on_calendar": [1]}),
            json!({"persistent": "yes"}),
            json!({"timer_type": "monotonic", "on_boot_sec": 5}),
        ] {
            assert!(
                timer_config(bad.as_object().unwrap(), "t").is_err(),
                "{bad}"
            );
        }
    }
}
