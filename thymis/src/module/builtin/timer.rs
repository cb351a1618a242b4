//! What the Bash and Python modules share: their timer, package and script settings, the
//! systemd service name of an instance, and the service (plus timer) units they render to.

use serde_json::{json, Value as Json};

use crate::module::{
    list_of, ModuleOutput, RenderContext, RenderError, Setting, SettingType, SettingValues, Text,
    TimerDefaults,
};
use crate::nix::{AttrSet, Expr};

/// The setting holding when the service runs.
const TIMER_KEY: &str = "timer_config";

/// The `timer_config` setting of a module running a script or program, called `what` in
/// English and `what_de` (with its article) in German.
pub fn timer_setting(what: &str, what_de: &str) -> Setting {
    Setting::new(
        TIMER_KEY,
        Text::en_de("Timer Configuration", "Timer Konfiguration"),
        SettingType::SystemdTimer(TimerDefaults::default()),
    )
    .description(Text::en_de(
        &format!("When the {what} runs. Without a timer (or with a continuous one) it runs as a service that is restarted whenever it exits."),
        &format!("Wann {what_de} läuft. Ohne Timer (oder mit einem durchgehenden) läuft es als Dienst, der nach jedem Beenden neu gestartet wird."),
    ))
    .default_value(Json::Null)
    .example("")
    .order(10)
}

/// A list setting of package names, elements `{package: "…"}`, read by [`packages`].
pub fn package_list(
    key: &str,
    display: Text,
    element: Text,
    element_description: Option<Text>,
    description: Text,
    order: i64,
) -> Setting {
    let mut package = Setting::new("package", element.clone(), SettingType::String);
    package.description = element_description;
    Setting::new(key, display, list_of(vec![package], Some(element)))
        .description(description)
        .default_value(json!([]))
        .order(order)
}

/// The `script` setting: code in `language`, read by [`script`].
pub fn script_setting(display: Text, language: &str, description: Text, order: i64) -> Setting {
    Setting::new(
        "script",
        display,
        SettingType::TextareaCode {
            language: Some(language.to_owned()),
        },
    )
    .description(description)
    .default_value(json!(""))
    .example("")
    .order(order)
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

/// The systemd service of a Bash or Python instance: its unit name and when it runs.
pub struct Service {
    /// The unit name, from [`service_name`].
    pub name: String,
    /// `timerConfig` attributes for a timed service, `None` for a daemon.
    timer: Option<AttrSet>,
}

impl Service {
    /// The service of an instance in `language`, scheduled by its `timer_config` setting.
    /// `null`, a `continuous` timer and a timer that yields no `timerConfig` attribute all
    /// mean a daemon, as upstream decides.
    pub fn new(
        language: &str,
        ctx: &RenderContext,
        values: &SettingValues,
    ) -> Result<Self, RenderError> {
        let timer = match values.object(TIMER_KEY)? {
            Some(timer) => timer_config(&timer)?,
            None => None,
        };
        Ok(Service {
            name: service_name(language, ctx),
            timer,
        })
    }

    /// The module: `systemd.services.<name>` (the unit, plus `wantedBy` and the
    /// `serviceConfig` type settings of the schedule) and, for a timer, `systemd.timers.<name>`.
    ///
    /// `unit` is the service attribute set without `serviceConfig`; `wrap` may put it into a
    /// `let` (Python binds its script there). A timed service is a plain oneshot: upstream also
    /// set `RemainAfterExit = true`, which keeps the unit active after the first run so the
    /// timer never starts it again; that is deliberately left out.
    pub fn module(
        self,
        mut unit: AttrSet,
        mut service_config: AttrSet,
        wrap: impl FnOnce(Expr) -> Expr,
    ) -> ModuleOutput {
        match &self.timer {
            Some(_) => {
                service_config.set("Type", "oneshot");
            }
            None => {
                unit.set("wantedBy", Expr::List(vec![Expr::str("multi-user.target")]));
                service_config
                    .set("Type", "simple")
                    .set("Restart", "always")
                    .set("RestartSec", "10s");
            }
        }
        unit.set("serviceConfig", service_config);
        let mut body = AttrSet::new();
        body.set_path(unit_path("services", &self.name), wrap(Expr::Attrs(unit)));
        if let Some(timer_config) = self.timer {
            let mut timer_unit = AttrSet::new();
            timer_unit
                .set("wantedBy", Expr::List(vec![Expr::str("timers.target")]))
                .set("timerConfig", timer_config);
            body.set_path(unit_path("timers", &self.name), timer_unit);
        }
        ModuleOutput::module(body)
    }
}

fn unit_path(kind: &str, name: &str) -> Vec<String> {
    vec!["systemd".to_owned(), kind.to_owned(), name.to_owned()]
}

/// The `timerConfig` attributes of a timer object, or `None` for a daemon.
///
/// Unlike upstream, several `on_calendar` entries become one `OnCalendar` list (upstream
/// defined the attribute once per entry, which Nix rejects); a single entry stays a string.
fn timer_config(timer: &SettingValues) -> Result<Option<AttrSet>, RenderError> {
    // A blank field is unset, as the timer form leaves cleared fields blank.
    let text = |field: &str| -> Result<Option<&str>, RenderError> {
        let value = timer.str(field)?;
        Ok((!value.trim().is_empty()).then_some(value))
    };
    // A missing timer type means upstream's default, `realtime`.
    let timer_type = text("timer_type")?.unwrap_or("realtime");
    let mut config = AttrSet::new();
    match timer_type {
        "continuous" => return Ok(None),
        "realtime" => {
            match timer.strings("on_calendar")?.as_slice() {
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
            if timer.bool("persistent")? {
                config.set("Persistent", true);
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
            return Err(timer.invalid(
                "timer_type",
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

/// The packages of list setting `key` (see [`package_list`]) as `base.<name>` expressions.
/// Empty entries are skipped; a leading `pkgs.` is dropped when `base` is `pkgs` (upstream
/// Python accepted it, and `pkgs.pkgs.x` would only be confusing); dotted names such as
/// `nodePackages.pnpm` select nested attributes; other characters end up quoted, so a name can
/// never inject Nix.
pub fn packages(values: &SettingValues, key: &str, base: &str) -> Result<Vec<Expr>, RenderError> {
    let mut found = Vec::new();
    for name in values.item_strings(key, "package")? {
        let name = name.trim();
        let name = match base {
            "pkgs" => name.strip_prefix("pkgs.").unwrap_or(name),
            _ => name,
        };
        if !name.is_empty() {
            found.push(Expr::var(base).select(name.split('.').map(str::to_owned).collect()));
        }
    }
    Ok(found)
}

/// The `script` setting, trimmed as upstream does, ending in a newline unless empty (so it
/// prints as an indented string and ends like a file should).
pub fn script(values: &SettingValues) -> Result<String, RenderError> {
    let text = values.str("script")?.trim();
    Ok(if text.is_empty() {
        String::new()
    } else {
        format!("{text}\n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{RenderEnv, TargetKind};

    /// The `timerConfig` of a timer value, as Nix.
    fn read(timer: Json) -> Result<Option<String>, RenderError> {
        let info = super::super::info("test", Text::plain(""), Text::plain(""), None, "", vec![]);
        let settings = json!({ "timer_config": timer });
        let values = info.values(settings.as_object().unwrap());
        let timer = values.object("timer_config")?.unwrap();
        Ok(timer_config(&timer)?.map(|c| Expr::Attrs(c).to_nix()))
    }

    fn config(timer: Json) -> Option<String> {
        read(timer).unwrap()
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
    fn wrong_types_are_reported_with_their_key() {
        for (bad, key) in [
            (json!({"timer_type": "hourly"}), "timer_type"),
            (json!({"on_calendar": "daily"}), "on_calendar"),
            (json!({"on_calendar": [1]}), "on_calendar[0]"),
            (json!({"persistent": "yes"}), "persistent"),
            (
                json!({"timer_type": "monotonic", "on_boot_sec": 5}),
                "on_boot_sec",
            ),
        ] {
            match read(bad.clone()) {
                Err(RenderError::InvalidSetting { key: found, .. }) => {
                    assert_eq!(found, format!("timer_config.{key}"), "{bad}")
                }
                other => panic!("{bad}: expected InvalidSetting, got {other:?}"),
            }
        }
    }
}
