//! The Custom Nix module (`WhateverModule`): Nix written by the user, checked for syntax errors
//! before it reaches the repository.

use serde_json::{json, Map, Value as Json};

use crate::module::{
    Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, Setting, SettingType, Text,
};
use crate::nix::check_syntax;

const HEADER: &str = "{ pkgs, lib, inputs, config, ... }:";

/// The Custom Nix module.
pub struct CustomNix(ModuleInfo);

impl CustomNix {
    /// The module with its settings schema.
    pub fn new() -> Self {
        CustomNix(super::info(
            "thymis_controller.modules.whatever.WhateverModule",
            Text::en_de("Custom Nix", "Eigenes Nix"),
            Text::en_de(
                "Any NixOS configuration, written in Nix: either attribute definitions or a whole module.",
                "Beliebige NixOS-Konfiguration in Nix: Attributdefinitionen oder ein ganzes Modul.",
            ),
            Some(Text::en_de("Advanced", "Erweitert")),
            super::icons::glyph::CODE,
            vec![Setting::new(
                "settings",
                Text::en_de("Settings", "Einstellungen"),
                SettingType::TextareaCode {
                    language: Some("nix".to_owned()),
                },
            )
            .description(Text::en_de(
                "Attribute definitions such as `services.openssh.enable = true;`, or a whole module starting with `{` or `args:`.",
                "Attributdefinitionen wie `services.openssh.enable = true;` oder ein ganzes Modul, das mit `{` oder `args:` beginnt.",
            ))
            .default_value(json!(""))
            .example("services.openssh.enable = true;")
            .order(10)],
        ))
    }
}

impl Module for CustomNix {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// A text that starts like a function or attribute set is a whole module and is written
    /// verbatim; otherwise it is a list of definitions, wrapped in the standard module function.
    /// Unlike upstream this recognises `inputs@{ … }:` and `args: …` modules too.
    fn render(
        &self,
        _ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let text = self.0.values(settings).str("settings")?;
        if text.trim().is_empty() {
            return Ok(ModuleOutput::Verbatim(format!("{HEADER}\n{{\n}}\n")));
        }
        let syntax_error = |error| RenderError::NixSyntax {
            key: "settings".to_owned(),
            error,
        };
        if looks_like_whole_module(text) {
            check_syntax(text).map_err(syntax_error)?;
            return Ok(ModuleOutput::Verbatim(text.to_owned()));
        }
        let wrapped = format!("{HEADER}\n{{\n{text}\n}}\n");
        check_syntax(&wrapped).map_err(|mut error| {
            // Report positions in the user's own text: it starts on line 3 of the wrapper.
            let last_line = text.lines().count().max(1);
            error.line = error.line.saturating_sub(2).clamp(1, last_line);
            syntax_error(error)
        })?;
        Ok(ModuleOutput::Verbatim(wrapped))
    }
}

/// A whole module starts (after comments) with `{`, `name@{…}` or `name:`.
fn looks_like_whole_module(text: &str) -> bool {
    let code = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with('#'))
        .unwrap_or_default();
    code.starts_with('{')
        || code
            .split_once([':', '@'])
            .is_some_and(|(head, _)| crate::nix::is_identifier(head.trim()))
}
