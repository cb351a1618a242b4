//! The Bash module (`BashModule`): a user's shell script run as a systemd service, either on a
//! timer or as a daemon, with chosen nixpkgs packages on its `PATH`.

use serde_json::{json, Map, Value as Json};

use super::timer;
use crate::module::{
    list_of, Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, Setting, SettingType,
    Text, TimerDefaults,
};
use crate::nix::{AttrSet, Expr};

/// The Bash module.
pub struct BashModule(ModuleInfo);

impl BashModule {
    /// The module with its settings schema.
    pub fn new() -> Self {
        BashModule(super::info(
            "thymis_controller.modules.bash.BashModule",
            Text::plain("Bash Module"),
            Text::en_de(
                "Runs your own shell script on the device, permanently or on a schedule.",
                "Führt ein eigenes Shell-Skript auf dem Gerät aus, dauerhaft oder nach Zeitplan.",
            ),
            Some(Text::en_de("Advanced", "Erweitert")),
            super::icons::glyph::SHELL,
            vec![
                Setting::new(
                    "timer_config",
                    Text::en_de("Timer Configuration", "Timer Konfiguration"),
                    SettingType::SystemdTimer(TimerDefaults::default()),
                )
                .description(Text::en_de(
                    "When the script runs. Without a timer (or with a continuous one) it runs as a service that is restarted whenever it exits.",
                    "Wann das Skript läuft. Ohne Timer (oder mit einem durchgehenden) läuft es als Dienst, der nach jedem Beenden neu gestartet wird.",
                ))
                .default_value(Json::Null)
                .example("")
                .order(10),
                Setting::new(
                    "packages",
                    Text::en_de("Required Packages", "Benötigte Pakete"),
                    list_of(
                        vec![Setting::new(
                            "package",
                            Text::en_de("Package", "Paket"),
                            SettingType::String,
                        )
                        .description(Text::en_de(
                            "Attribute name in nixpkgs, e.g. `curl` or `nodePackages.pnpm`.",
                            "Attributname in nixpkgs, z. B. `curl` oder `nodePackages.pnpm`.",
                        ))],
                        Some(Text::en_de("Package", "Paket")),
                    ),
                )
                .description(Text::en_de(
                    "Programs the script calls, by their nixpkgs name (see https://search.nixos.org/packages).",
                    "Programme, die das Skript aufruft, mit ihrem nixpkgs-Namen (siehe https://search.nixos.org/packages).",
                ))
                .default_value(json!([]))
                .order(20),
                Setting::new(
                    "script",
                    Text::en_de("Bash Script", "Bash-Skript"),
                    SettingType::TextareaCode {
                        language: Some("bash".to_owned()),
                    },
                )
                .description(Text::en_de(
                    "The commands to run; they run as root, and the script stops at the first failing command.",
                    "Die auszuführenden Befehle; sie laufen als root, und das Skript endet beim ersten fehlschlagenden Befehl.",
                ))
                .default_value(json!(""))
                .example("")
                .order(30),
            ],
        ))
    }
}

impl Default for BashModule {
    fn default() -> Self {
        Self::new()
    }
}

impl Module for BashModule {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// `systemd.services.<name>` with the script (NixOS wraps it in a `set -e` shell script)
    /// and the packages as its `path`, plus `systemd.timers.<name>` when a timer is set.
    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let values = self.0.values(settings);
        let schedule = timer::schedule(&values, "timer_config")?;
        let mut unit = AttrSet::new();
        unit.set("script", timer::script(&values, "script")?).set(
            "path",
            Expr::List(timer::packages(&values, "packages", "pkgs")?),
        );
        let mut body = AttrSet::new();
        timer::add_service(
            &mut body,
            &timer::service_name("bash", ctx),
            unit,
            AttrSet::new(),
            schedule,
            |unit| unit,
        );
        Ok(ModuleOutput::module(body))
    }
}
