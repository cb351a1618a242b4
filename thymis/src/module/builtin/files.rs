//! The Files module (`FilesModule`): places secrets and artifacts (files uploaded to the
//! project) on the device. Artifacts travel in the Nix store and are copied into place by
//! systemd-tmpfiles; secrets never enter Nix and are written by the agent instead.

use serde_json::{json, Map, Value as Json};

use crate::module::{
    list_of, Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, SecretKind,
    SecretProcessing, SecretRequirement, SecretSetting, Setting, SettingType, Text,
};
use crate::nix::{AttrSet, BinOp, Expr, NixString};

/// The Files module.
pub struct Files(ModuleInfo);

impl Files {
    /// The module with its settings schema.
    pub fn new() -> Self {
        Files(super::info(
            "thymis_controller.modules.files.FilesModule",
            Text::en_de("Files", "Dateien"),
            Text::en_de(
                "Put secrets and uploaded artifacts at chosen paths on the device.",
                "Secrets und hochgeladene Artifacts an gewählten Pfaden auf dem Gerät ablegen.",
            ),
            Some(Text::en_de("Files", "Dateien")),
            super::icons::glyph::FILES,
            vec![
                Setting::new(
                    "secrets",
                    Text::en_de("Secrets", "Secrets"),
                    list_of(
                        placement_fields(
                            Setting::new(
                                "secret",
                                Text::en_de("Secret", "Secret"),
                                SettingType::Secret(SecretSetting {
                                    allowed_types: SecretKind::ALL.to_vec(),
                                    default_processing: SecretProcessing::None,
                                    default_save_to_image: false,
                                    // Each list element says where its secret goes.
                                    on_device: None,
                                }),
                            )
                            .description(Text::en_de(
                                "The secret to place.",
                                "Das abzulegende Secret.",
                            )),
                            (
                                Text::en_de("Secret Path", "Secret-Pfad"),
                                "Secret Path",
                            ),
                            "secret",
                        ),
                        Some(Text::en_de("Secret", "Secret")),
                    ),
                )
                .description(Text::en_de(
                    "Secrets such as passwords, private keys or TLS certificates, each written to its path \
                     with the given owner, group and mode. They are encrypted for the device and never stored in the configuration.",
                    "Secrets wie Passwörter, private Schlüssel oder TLS-Zertifikate, jeweils mit Besitzer, Gruppe \
                     und Modus an ihren Pfad geschrieben. Sie werden für das Gerät verschlüsselt und nie in der Konfiguration gespeichert.",
                ))
                .default_value(json!([]))
                .example("")
                .order(10),
                Setting::new(
                    "artifacts",
                    Text::en_de("Artifacts", "Artifacts"),
                    list_of(
                        placement_fields(
                            Setting::new(
                                "artifact",
                                Text::en_de("Artifact", "Artifact"),
                                SettingType::Artifact,
                            )
                            .description(Text::en_de(
                                "The uploaded file to place.",
                                "Die abzulegende hochgeladene Datei.",
                            )),
                            (Text::en_de("Path", "Pfad"), "Path"),
                            "artifact",
                        ),
                        Some(Text::en_de("Artifact", "Artifact")),
                    ),
                )
                .description(Text::en_de(
                    "Uploaded files copied to their paths at every boot and switch, replacing what is there. \
                     They are not encrypted.",
                    "Hochgeladene Dateien, die bei jedem Start und Wechsel an ihre Pfade kopiert werden und \
                     Vorhandenes ersetzen. Sie werden nicht verschlüsselt.",
                ))
                .default_value(json!([]))
                .example("")
                .order(20),
            ],
        ))
    }
}

/// The fields of a secret or artifact element: the item itself, then path, owner, group, mode.
/// `noun` names the item in the English descriptions.
fn placement_fields(
    item: Setting,
    (path_label, path_example): (Text, &str),
    noun: &str,
) -> Vec<Setting> {
    let text_field = |key: &str, label: Text, help_en: String, help_de: &str| {
        Setting::new(key, label, SettingType::String)
            .description(Text::en_de(&help_en, help_de))
            .default_value(json!(""))
            .example("")
    };
    vec![
        item.default_value(json!("")).example("").order(0),
        text_field(
            "path",
            path_label,
            format!("Absolute path of the {noun} on the device."),
            "Absoluter Pfad der Datei auf dem Gerät.",
        )
        .example(path_example)
        .order(10),
        text_field(
            "owner",
            Text::en_de("Owner", "Besitzer"),
            format!("User owning the {noun}; empty keeps the default."),
            "Benutzer, dem die Datei gehört; leer lässt die Voreinstellung.",
        )
        .order(20),
        text_field(
            "group",
            Text::en_de("Group", "Gruppe"),
            format!("Group of the {noun}; empty keeps the default."),
            "Gruppe der Datei; leer lässt die Voreinstellung.",
        )
        .order(30),
        text_field(
            "mode",
            Text::en_de("Mode", "Modus"),
            format!("Octal permissions of the {noun}, for example 0600."),
            "Oktale Zugriffsrechte der Datei, zum Beispiel 0600.",
        )
        .order(40),
    ]
}

impl Module for Files {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// One `C+` tmpfiles rule per artifact (copy, replacing what is at the path). The rules are
    /// a plain list definition, so artifacts from tags and the config add up.
    fn render(
        &self,
        _ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let values = self.0.values(settings);
        // Secrets emit no Nix, but wrongly typed entries are still reported here.
        for item in values.items("secrets")? {
            for field in ["secret", "path", "owner", "group", "mode"] {
                item.str(field)?;
            }
        }

        let mut rules = Vec::new();
        for item in values.items("artifacts")? {
            let path = item.str("path")?.trim();
            let mode = item.str("mode")?.trim();
            let owner = item.str("owner")?.trim();
            let group = item.str("group")?.trim();
            let name = item.str("artifact")?;
            if name.is_empty() {
                continue;
            }
            crate::repository::check_artifact_name(name)
                .map_err(|message| item.invalid("artifact", message))?;
            let path = if path.is_empty() {
                "/".to_owned()
            } else {
                tmpfiles_field(path).replace('%', "%%")
            };
            let line = format!(
                "C+ {path} {} {} {} - ",
                field_or_dash(mode),
                field_or_dash(owner),
                field_or_dash(group),
            );
            // pkgs.copyPathToStore (inputs.self + "/artifacts/<name>")
            let source = Expr::BinOp(
                Box::new(Expr::var("inputs.self")),
                BinOp::Add,
                Box::new(Expr::str(&format!("/artifacts/{name}"))),
            );
            let store_path = Expr::var("pkgs.copyPathToStore").apply(vec![source]);
            rules.push(Expr::Str(NixString::new().text(&line).interp(store_path)));
        }

        let mut body = AttrSet::new();
        if !rules.is_empty() {
            body.set("systemd.tmpfiles.rules", Expr::List(rules));
        }
        Ok(ModuleOutput::module(body))
    }

    /// One requirement per secret element that names a secret and a path, placed as that
    /// element says (upstream's base class never registered secrets inside lists).
    fn secrets(&self, settings: &Map<String, Json>) -> Vec<SecretRequirement> {
        // Malformed elements and wrongly typed fields count as unset here, without dropping
        // the well-formed ones; `render` reports them.
        let elements = settings
            .get("secrets")
            .and_then(Json::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let text = |item: &Map<String, Json>, field: &str| {
            item.get(field)
                .and_then(Json::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        elements
            .iter()
            .filter_map(Json::as_object)
            .filter_map(|item| {
                Some(SecretRequirement {
                    secret_id: text(item, "secret")?,
                    path: text(item, "path")?,
                    owner: text(item, "owner"),
                    group: text(item, "group"),
                    mode: text(item, "mode"),
                })
            })
            .collect()
    }
}

/// `-` (systemd-tmpfiles' "default") for an empty field, else the escaped value.
fn field_or_dash(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        tmpfiles_field(value)
    }
}

/// A tmpfiles.d field is separated by whitespace and C-unescaped, so whitespace, quotes,
/// backslashes and control characters are written as `\xNN`: a path with a space then stays one
/// field, and a newline cannot start a rule of its own.
fn tmpfiles_field(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\') {
            let mut buf = [0; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}
