//! The Python module (`PythonModule`): a user's Python 3 script, built with the chosen
//! `python3Packages` libraries, run as a systemd service on a timer or as a daemon.

use serde_json::{Map, Value as Json};

use super::timer;
use crate::module::{Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, Text};
use crate::nix::{AttrSet, Binding, Expr, NixString};

/// The Python module.
pub struct PythonModule(ModuleInfo);

impl PythonModule {
    /// The module with its settings schema.
    pub fn new() -> Self {
        PythonModule(super::info(
            "thymis_controller.modules.python.PythonModule",
            Text::plain("Python Module"),
            Text::en_de(
                "Runs your own Python program on the device, permanently or on a schedule.",
                "Führt ein eigenes Python-Programm auf dem Gerät aus, dauerhaft oder nach Zeitplan.",
            ),
            Some(Text::en_de("Advanced", "Erweitert")),
            super::icons::glyph::PYTHON,
            vec![
                timer::timer_setting("program", "das Programm"),
                timer::package_list(
                    "python_packages",
                    Text::en_de("Python Packages", "Python-Pakete"),
                    Text::en_de("Python Package", "Python-Paket"),
                    None,
                    Text::en_de(
                        "Libraries the program imports, by their name in nixpkgs' `python3Packages` (such as `requests` or `paho-mqtt`).",
                        "Bibliotheken, die das Programm importiert, mit ihrem Namen in `python3Packages` von nixpkgs (etwa `requests` oder `paho-mqtt`).",
                    ),
                    20,
                ),
                timer::package_list(
                    "system_packages",
                    Text::en_de("System Packages", "System-Pakete"),
                    Text::en_de("System Package", "System-Paket"),
                    None,
                    Text::en_de(
                        "Programs the script runs as commands, by their nixpkgs name (such as `ffmpeg`).",
                        "Programme, die das Skript als Befehle aufruft, mit ihrem nixpkgs-Namen (etwa `ffmpeg`).",
                    ),
                    30,
                ),
                timer::script_setting(
                    Text::en_de("Python Script", "Python-Skript"),
                    "python",
                    Text::en_de(
                        "The program. It is checked with flake8 when the configuration is built, so style errors fail the build.",
                        "Das Programm. Es wird beim Bauen der Konfiguration mit flake8 geprüft; Stilfehler lassen den Build scheitern.",
                    ),
                    40,
                ),
            ],
        ))
    }
}

impl Module for PythonModule {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// `systemd.services.<name> = let pythonScript = pkgs.writers.writePython3 … in { … }`
    /// starting the script, plus `systemd.timers.<name>` when a timer is set.
    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let values = self.0.values(settings);
        let service = timer::Service::new("python", ctx, &values)?;
        let mut writer_args = AttrSet::new();
        writer_args.set(
            "libraries",
            Expr::List(timer::packages(
                &values,
                "python_packages",
                "pkgs.python3Packages",
            )?),
        );
        let program = Expr::var("pkgs.writers.writePython3").apply(vec![
            Expr::str(&format!("{}-script", service.name)),
            Expr::Attrs(writer_args),
            Expr::str(&timer::script(&values)?),
        ]);
        let mut unit = AttrSet::new();
        unit.set(
            "path",
            Expr::List(timer::packages(&values, "system_packages", "pkgs")?),
        );
        let mut service_config = AttrSet::new();
        service_config.set(
            "ExecStart",
            NixString::new().interp(Expr::var("pythonScript")),
        );
        Ok(service.module(unit, service_config, |unit| {
            Expr::Let(
                vec![Binding::Assign(vec!["pythonScript".to_owned()], program)],
                Box::new(unit),
            )
        }))
    }
}
