//! The Localization & Time module (`LocalizationModule`): the system time zone and the NTP
//! servers.

use serde_json::{json, Map, Value as Json};

use crate::module::{
    list_of, Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, Setting, SettingType,
    Text,
};
use crate::nix::{mk_override, AttrSet, Expr};

/// The time zone of a device whose configs and tags set none.
pub const DEFAULT_TIMEZONE: &str = "Europe/Berlin";

/// Priority of the default time zone: that of a plain NixOS definition, so any value a config
/// or tag sets (80, 90) wins over it.
const DEFAULT_PRIORITY: i64 = 100;

/// The Localization & Time module.
pub struct Localization(ModuleInfo);

impl Localization {
    /// The module with its settings schema.
    pub fn new() -> Self {
        Localization(super::info(
            "thymis_controller.modules.localization.LocalizationModule",
            Text::en_de("Localization & Time", "Lokalisierung & Zeit"),
            Text::en_de(
                "Time zone of the device and the servers it synchronises its clock with.",
                "Zeitzone des Geräts und die Server, mit denen es seine Uhr abgleicht.",
            ),
            Some(Text::en_de("System", "System")),
            super::icons::glyph::CLOCK,
            vec![
                Setting::new(
                    "timezone",
                    Text::en_de("Timezone", "Zeitzone"),
                    SettingType::String,
                )
                .description(Text::en_de(
                    "A tz database name such as `Europe/Berlin` or `America/New_York`.",
                    "Ein Name aus der tz-Datenbank wie `Europe/Berlin` oder `America/New_York`.",
                ))
                .default_value(json!(DEFAULT_TIMEZONE))
                .example(DEFAULT_TIMEZONE)
                .order(10),
                Setting::new(
                    "time_servers",
                    Text::en_de("Time Servers", "Zeitserver"),
                    list_of(
                        vec![Setting::new(
                            "server",
                            Text::en_de("Server", "Server"),
                            SettingType::String,
                        )
                        .description(Text::en_de(
                            "Host name or address of an NTP server.",
                            "Hostname oder Adresse eines NTP-Servers.",
                        ))
                        .default_value(json!(""))
                        .example("")],
                        Some(Text::en_de("Server", "Server")),
                    ),
                )
                .description(Text::en_de(
                    "NTP servers to use instead of the NixOS pool servers.",
                    "NTP-Server, die statt der NixOS-Pool-Server verwendet werden.",
                ))
                .default_value(Json::Null)
                .example("")
                .order(20),
            ],
        ))
    }
}

impl Module for Localization {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// Set values carry the target's priority, so configs beat tags and the lower tag priority
    /// wins (upstream wrote plain definitions, which conflicted between a tag and a config).
    /// An unset or empty time zone falls back to the default at priority 100, which any set
    /// value overrides.
    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let values = self.0.values(settings);
        let mut body = AttrSet::new();

        let servers: Vec<Expr> = values
            .item_strings("time_servers", "server")?
            .into_iter()
            .map(|server| Expr::str(server.trim()))
            .collect();
        if !servers.is_empty() {
            body.set(
                "networking.timeServers",
                mk_override(ctx.priority, Expr::List(servers)),
            );
        }

        // Not the schema's default: an unset time zone is rendered at DEFAULT_PRIORITY, so that
        // a time zone set on any tag wins over it.
        let timezone = if values.is_set("timezone") {
            values.str("timezone")?.trim()
        } else {
            ""
        };
        let timezone = if timezone.is_empty() {
            mk_override(DEFAULT_PRIORITY, DEFAULT_TIMEZONE)
        } else {
            mk_override(ctx.priority, timezone)
        };
        body.set("time.timeZone", timezone);

        Ok(ModuleOutput::module(body))
    }
}
