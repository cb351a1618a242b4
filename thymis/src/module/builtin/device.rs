//! The Device module (`ThymisDevice`): hardware type, image format, hostname, state version and
//! the controller URL the agent connects to. Every config has exactly one.

use serde_json::{json, Map, Value as Json};

use crate::module::{
    select_labelled, select_values, Module, ModuleInfo, ModuleOutput, RenderContext, RenderError,
    Setting, SettingType, TargetKind, Text,
};
use crate::nix::{mk_override, AttrSet, Expr};

/// Device types offered to users: `(label, value)`.
pub const DEVICE_TYPES: [(&str, &str); 4] = [
    ("Generic x86-64", "generic-x86_64"),
    ("Raspberry Pi 3", "raspberry-pi-3"),
    ("Raspberry Pi 4", "raspberry-pi-4"),
    ("Raspberry Pi 5", "raspberry-pi-5"),
];

/// Image formats: `(label, value)`.
pub const IMAGE_FORMATS: [(&str, &str); 4] = [
    ("SD-Card Image", "sd-card-image"),
    ("Virtual Disk Image (qcow)", "qcow"),
    ("USB Stick Installer", "usb-stick-installer"),
    ("NixOS VM", "nixos-vm"),
];

/// The image formats a device type can be built as.
pub fn image_formats_for(device_type: &str) -> &'static [&'static str] {
    match device_type {
        "generic-x86_64" => &["nixos-vm", "usb-stick-installer"],
        "raspberry-pi-3" | "raspberry-pi-4" | "raspberry-pi-5" => &["sd-card-image"],
        _ => &[],
    }
}

/// The image format used when a config sets none: the first allowed one in option order.
pub fn default_image_format(device_type: &str) -> Option<&'static str> {
    let allowed = image_formats_for(device_type);
    IMAGE_FORMATS
        .iter()
        .map(|(_, value)| *value)
        .find(|value| allowed.contains(value))
}

/// The Device module.
pub struct Device(ModuleInfo);

impl Device {
    /// The module with its settings schema.
    pub fn new() -> Self {
        let restrictions: Map<String, Json> = DEVICE_TYPES
            .iter()
            .map(|(_, ty)| ((*ty).to_owned(), json!(image_formats_for(ty))))
            .collect();
        Device(super::info(
            crate::state::DEVICE_MODULE_TYPE,
            Text::en_de("Device", "Gerät"),
            Text::en_de(
                "What the device is: hardware type, image format, hostname and NixOS state version.",
                "Was das Gerät ist: Hardwaretyp, Image-Format, Hostname und NixOS-State-Version.",
            ),
            None,
            super::icons::glyph::DEVICE,
            vec![
                Setting::new(
                    "device_type",
                    Text::en_de("Device Type", "Gerätetyp"),
                    select_labelled(
                        &DEVICE_TYPES,
                        Some(json!({"only_editable_on_target_type": ["config"]})),
                    ),
                )
                .description(Text::en_de(
                    "The hardware this configuration runs on.",
                    "Die Hardware, auf der diese Konfiguration läuft.",
                ))
                .default_value(json!(""))
                .example("")
                .order(10)
                .nix_attr("thymis.config.device-type"),
                Setting::new(
                    "image_format",
                    Text::en_de("Image Format", "Image-Format"),
                    select_labelled(
                        &IMAGE_FORMATS,
                        Some(json!({
                            "restrict_values_on_other_key": {"device_type": restrictions},
                            "only_editable_on_target_type": ["config"],
                        })),
                    ),
                )
                .description(Text::en_de(
                    "The kind of image built for installing devices.",
                    "Die Art des Images, mit dem Geräte installiert werden.",
                ))
                .default_value(json!(""))
                .example("")
                .order(15)
                .nix_attr("thymis.config.image-format"),
                Setting::new(
                    "device_name",
                    Text::en_de("Default Hostname", "Standard-Hostname"),
                    SettingType::String,
                )
                .description(Text::en_de(
                    "Hostname of every device with this configuration until a device gets its own name. Empty means `thymis`.",
                    "Hostname aller Geräte mit dieser Konfiguration, bis ein Gerät einen eigenen Namen erhält. Leer bedeutet `thymis`.",
                ))
                .default_value(json!(""))
                .example("my-raspberry-pi")
                .order(20),
                Setting::new(
                    "nix_state_version",
                    Text::en_de("NixOS State Version", "NixOS-State-Version"),
                    select_values(&["24.05", "24.11", "25.05", "25.11", "26.05"]),
                )
                .description(Text::en_de(
                    "The NixOS release whose stateful defaults the device keeps.",
                    "Das NixOS-Release, dessen zustandsbehaftete Voreinstellungen das Gerät behält.",
                ))
                .default_value(json!("26.05"))
                .example("")
                .order(25)
                .nix_attr("system.stateVersion"),
                Setting::new(
                    "agent_controller_url",
                    Text::en_de("Thymis Controller URL", "Thymis-Controller-URL"),
                    SettingType::String,
                )
                .description(Text::en_de(
                    "URL the device agent connects to; empty means this controller's URL.",
                    "URL, mit der sich der Geräte-Agent verbindet; leer bedeutet die URL dieses Controllers.",
                ))
                .default_value(json!(""))
                .example("")
                .order(80),
            ],
        ))
    }
}

impl Module for Device {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let values = self.0.values(settings);
        let device_type = values.str("device_type")?;
        let image_format = values.str("image_format")?;
        let mut imports = Vec::new();
        if ctx.kind == TargetKind::Config {
            if !device_type.is_empty() {
                imports.push(thymis_module(&format!("thymis-device-{device_type}")));
            }
            let format = if image_format.is_empty() {
                default_image_format(device_type)
            } else {
                Some(image_format)
            };
            if let Some(format) = format {
                imports.push(thymis_module(&format!("thymis-image-{format}")));
            }
        }
        let mut body = AttrSet::new();
        body.set("imports", Expr::List(imports));
        let url = values.str("agent_controller_url")?;
        let controller_url = if url.is_empty() {
            let fallback = ctx
                .env
                .agent_access_url
                .as_deref()
                .or(ctx.env.base_url.as_deref())
                .unwrap_or_default();
            mk_override(100, fallback)
        } else {
            mk_override(ctx.priority, url)
        };
        body.set("thymis.config.agent.controller-url", controller_url);
        let device_name = values.str("device_name")?;
        if !device_name.is_empty() {
            body.set(
                "thymis.config.device-name",
                mk_override(ctx.priority, device_name),
            );
        }
        self.0.emit_nix_attrs(settings, ctx.priority, &mut body);
        Ok(ModuleOutput::module(body))
    }
}

fn thymis_module(name: &str) -> Expr {
    Expr::var("inputs.thymis.nixosModules").select(vec![name.to_owned()])
}
