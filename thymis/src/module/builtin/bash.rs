//! The Bash module (`BashModule`): a user's shell script run as a systemd service, either on a
//! timer or as a daemon, with chosen nixpkgs packages on its `PATH`.

use serde_json::{Map, Value as Json};

use super::timer;
use crate::module::{Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, Text};
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
                timer::timer_setting("script", "das Skript"),
                timer::package_list(
                    "packages",
                    Text::en_de("Required Packages", "Benötigte Pakete"),
                    Text::en_de("Package", "Paket"),
                    Some(Text::en_de(
                        "Attribute name in nixpkgs, e.g. `curl` or `nodePackages.pnpm`.",
                        "Attributname in nixpkgs, z. B. `curl` oder `nodePackages.pnpm`.",
                    )),
                    Text::en_de(
                        "Programs the script calls, by their nixpkgs name (see https://search.nixos.org/packages).",
                        "Programme, die das Skript aufruft, mit ihrem nixpkgs-Namen (siehe https://search.nixos.org/packages).",
                    ),
                    20,
                ),
                timer::script_setting(
                    Text::en_de("Bash Script", "Bash-Skript"),
                    "bash",
                    Text::en_de(
                        "The commands to run; they run as root, and the script stops at the first failing command.",
                        "Die auszuführenden Befehle; sie laufen als root, und das Skript endet beim ersten fehlschlagenden Befehl.",
                    ),
                    30,
                ),
            ],
        ))
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
        let service = timer::Service::new("bash", ctx, &values)?;
        let mut unit = AttrSet::new();
        unit.set("script", timer::script(&values)?).set(
            "path",
            Expr::List(timer::packages(&values, "packages", "pkgs")?),
        );
        Ok(service.module(unit, AttrSet::new(), |unit| unit))
    }
}
