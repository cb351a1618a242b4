//! The Networking module (`NetworkingModule`): WiFi credentials, static addresses with default
//! gateways, and DNS nameservers.

use serde_json::{json, Map, Value as Json};

use crate::module::{
    list_of, select_values, Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, Setting,
    SettingType, SettingValues, Text,
};
use crate::nix::{mk_override, AttrSet, Expr};

/// Key-management protocols wpa_supplicant accepts (`key_mgmt`), in upstream's order.
pub const WIFI_AUTH_PROTOCOLS: [&str; 21] = [
    "WPA-PSK",
    "WPA-EAP",
    "IEEE8021X",
    "NONE",
    "WPA-NONE",
    "FT-PSK",
    "FT-EAP",
    "FT-EAP-SHA384",
    "WPA-PSK-SHA256",
    "WPA-EAP-SHA256",
    "SAE",
    "FT-SAE",
    "WPA-EAP-SUITE-B",
    "WPA-EAP-SUITE-B-192",
    "OSEN",
    "FILS-SHA256",
    "FILS-SHA384",
    "FT-FILS-SHA256",
    "FT-FILS-SHA384",
    "OWE",
    "DPP",
];

/// The protocol a list element without one stands for (the form shows it preselected).
const DEFAULT_PROTOCOL: &str = "WPA-PSK";

/// The Networking module.
pub struct Networking(ModuleInfo);

impl Networking {
    /// The module with its settings schema.
    pub fn new() -> Self {
        Networking(super::info(
            "thymis_controller.modules.networking.NetworkingModule",
            Text::en_de("Networking", "Netzwerk"),
            Text::en_de(
                "Connect to WiFi, give interfaces fixed addresses and choose DNS servers.",
                "Mit WLAN verbinden, Schnittstellen feste Adressen geben und DNS-Server wählen.",
            ),
            Some(Text::en_de("Connectivity", "Konnektivität")),
            super::icons::glyph::NETWORK,
            vec![
                Setting::new(
                    "wifi_ssid",
                    Text::en_de("WiFi SSID", "WiFi SSID"),
                    SettingType::String,
                )
                .description(Text::en_de(
                    "Name of the wireless network to join.",
                    "Name des WLANs, mit dem sich das Gerät verbindet.",
                ))
                .default_value(json!(""))
                .example("")
                .order(10)
                .nix_attr("thymis.config.wifi-ssid"),
                Setting::new(
                    "wifi_password",
                    Text::en_de("WiFi Password", "WiFi Passwort"),
                    SettingType::String,
                )
                .description(Text::en_de(
                    "Pre-shared key of the wireless network. It is stored in the configuration as plain text.",
                    "Pre-Shared Key des WLANs. Er wird als Klartext in der Konfiguration gespeichert.",
                ))
                .default_value(json!(""))
                .example("")
                .order(20)
                .nix_attr("thymis.config.wifi-password"),
                Setting::new(
                    "wifi_auth",
                    Text::en_de(
                        "WiFi Auth (wpa_supplicant config)",
                        "WiFi Auth (wpa_supplicant config)",
                    ),
                    SettingType::Textarea,
                )
                .description(Text::en_de(
                    "Lines for the wpa_supplicant network block, for networks that need more than a password \
                     (WPA2-Enterprise: `eap=`, `identity=`, `password=`, `ca_file=` …). Use either this or the password.",
                    "Zeilen für den wpa_supplicant-Netzwerkblock, für Netze, die mehr als ein Passwort brauchen \
                     (WPA2-Enterprise: `eap=`, `identity=`, `password=`, `ca_file=` …). Entweder dies oder das Passwort verwenden.",
                ))
                .default_value(json!(""))
                .example("")
                .order(30)
                .nix_attr("thymis.config.wifi-auth"),
                Setting::new(
                    "wifi_auth_protocols",
                    Text::en_de("WiFi Auth Protocols", "WiFi Auth Protokolle"),
                    list_of(
                        vec![Setting::new(
                            "protocol",
                            Text::en_de("Protocol", "Protokoll"),
                            select_values(&WIFI_AUTH_PROTOCOLS),
                        )
                        .description(Text::en_de(
                            "One key-management method.",
                            "Ein Schlüsselverwaltungsverfahren.",
                        ))
                        .default_value(json!(DEFAULT_PROTOCOL))
                        .example("")],
                        Some(Text::en_de("Protocol", "Protokoll")),
                    ),
                )
                .description(Text::en_de(
                    "Key-management methods the network offers (wpa_supplicant's `key_mgmt`). Empty lets wpa_supplicant choose.",
                    "Schlüsselverwaltungsverfahren, die das Netz anbietet (`key_mgmt` von wpa_supplicant). Leer lässt wpa_supplicant wählen.",
                ))
                .default_value(json!([]))
                .example("")
                .order(40)
                .nix_attr("thymis.config.wifi-auth-protocols"),
                Setting::new(
                    "static_networks",
                    Text::en_de("Static Network", "Statisches Netzwerk"),
                    list_of(static_network_fields(), Some(Text::en_de("Network", "Netzwerk"))),
                )
                .description(Text::en_de(
                    "Fixed addresses per interface. The first entry marked as default gateway provides the default routes.",
                    "Feste Adressen je Schnittstelle. Der erste als Standard-Gateway markierte Eintrag liefert die Standardrouten.",
                ))
                .default_value(Json::Null)
                .example("")
                .order(50),
                Setting::new(
                    "nameservers",
                    Text::en_de("Nameservers", "Nameserver"),
                    list_of(
                        vec![Setting::new(
                            "nameserver",
                            Text::en_de("Nameserver", "Nameserver"),
                            SettingType::String,
                        )
                        .description(Text::en_de(
                            "Address of a DNS server.",
                            "Adresse eines DNS-Servers.",
                        ))
                        .default_value(json!(""))
                        .example("")],
                        Some(Text::en_de("Nameserver", "Nameserver")),
                    ),
                )
                .description(Text::en_de(
                    "DNS servers the device asks, replacing those learned from DHCP.",
                    "DNS-Server, die das Gerät fragt; sie ersetzen die per DHCP erhaltenen.",
                ))
                .default_value(Json::Null)
                .example("")
                .order(60),
            ],
        ))
    }
}

/// The fields of one static network. Upstream declares `""` as the default of the integer and
/// boolean fields too; kept for wire compatibility (the readers treat `""` as unset).
fn static_network_fields() -> Vec<Setting> {
    let field = |key: &str, en: &str, de: &str, ty: SettingType, help: (&str, &str), example| {
        Setting::new(key, Text::en_de(en, de), ty)
            .description(Text::en_de(help.0, help.1))
            .default_value(json!(""))
            .example(example)
    };
    vec![
        field(
            "interface",
            "Interface",
            "Schnittstelle",
            SettingType::String,
            ("Network interface name.", "Name der Netzwerkschnittstelle."),
            "ens3",
        ),
        field(
            "ipv4address",
            "IPv4",
            "IPv4",
            SettingType::String,
            (
                "IPv4 address of the interface.",
                "IPv4-Adresse der Schnittstelle.",
            ),
            "",
        ),
        field(
            "ipv4prefixLength",
            "IPv4 Prefix Length",
            "IPv4 Präfix Länge",
            SettingType::Int,
            (
                "Network prefix of the IPv4 address (0–32).",
                "Netzpräfix der IPv4-Adresse (0–32).",
            ),
            "",
        ),
        field(
            "ipv6address",
            "IPv6",
            "IPv6",
            SettingType::String,
            (
                "IPv6 address of the interface.",
                "IPv6-Adresse der Schnittstelle.",
            ),
            "",
        ),
        field(
            "ipv6prefixLength",
            "IPv6 Prefix Length",
            "IPv6 Präfix Länge",
            SettingType::Int,
            (
                "Network prefix of the IPv6 address (0–128).",
                "Netzpräfix der IPv6-Adresse (0–128).",
            ),
            "",
        ),
        field(
            "gateway",
            "Default Gateway IPv4",
            "Standard Gateway IPv4",
            SettingType::String,
            ("Router for IPv4 traffic.", "Router für IPv4-Verkehr."),
            "",
        ),
        field(
            "gateway6",
            "Default Gateway IPv6",
            "Standard Gateway IPv6",
            SettingType::String,
            ("Router for IPv6 traffic.", "Router für IPv6-Verkehr."),
            "",
        ),
        field(
            "isDefaultGateway",
            "Set as Default Gateway",
            "Setze als Standard Gateway",
            SettingType::Bool,
            (
                "Route all traffic through this entry's gateways.",
                "Den gesamten Verkehr über die Gateways dieses Eintrags leiten.",
            ),
            "",
        ),
    ]
}

/// One address of an interface.
struct Address<'a> {
    address: &'a str,
    prefix_length: i64,
}

/// The addresses of one interface, gathered from every list entry naming it.
#[derive(Default)]
struct Interface<'a> {
    ipv4: Vec<Address<'a>>,
    ipv6: Vec<Address<'a>>,
}

impl Module for Networking {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// Static networks, gateways and nameservers first (all at the target's priority), then the
    /// WiFi options through their `nix_attr_name`.
    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let values = self.0.values(settings);
        let mut body = AttrSet::new();
        render_static_networks(ctx.priority, &values, &mut body)?;

        let nameservers: Vec<Expr> = values
            .item_strings("nameservers", "nameserver")?
            .into_iter()
            .map(|ns| Expr::str(ns.trim()))
            .collect();
        // Upstream only wrote nameservers inside the static-network block; they matter on
        // DHCP networks just as much.
        if !nameservers.is_empty() {
            body.set(
                "networking.nameservers",
                mk_override(ctx.priority, Expr::List(nameservers)),
            );
        }

        self.0
            .emit_nix_attrs(&wifi_values(&values)?, ctx.priority, &mut body);
        Ok(ModuleOutput::module(body))
    }
}

/// `networking.interfaces.<name>`, `defaultGateway` and `defaultGateway6`.
fn render_static_networks(
    priority: i64,
    values: &SettingValues,
    body: &mut AttrSet,
) -> Result<(), RenderError> {
    // Entries naming the same interface are merged: defining `interfaces.<name>` twice in one
    // attribute set would be a Nix error.
    let mut interfaces: Vec<(&str, Interface)> = Vec::new();
    let mut gateway4 = None;
    let mut gateway6 = None;
    let mut gateway_chosen = false;
    for item in values.items("static_networks")? {
        let name = item.str("interface")?.trim();
        let ipv4 = address(&item, "ipv4address", "ipv4prefixLength", 32)?;
        let ipv6 = address(&item, "ipv6address", "ipv6prefixLength", 128)?;
        let is_default = item.bool("isDefaultGateway")?;
        if name.is_empty() {
            if ipv4.is_some() || ipv6.is_some() || is_default {
                return Err(item.invalid(
                    "interface",
                    "an interface name is required for a static network",
                ));
            }
            // A freshly added, still empty entry.
            continue;
        }
        // The first entry marked as default gateway decides, even where its gateway is empty,
        // as upstream does.
        if is_default && !gateway_chosen {
            gateway_chosen = true;
            let v4 = item.str("gateway")?.trim();
            if ipv4.is_some() && !v4.is_empty() {
                gateway4 = Some((v4, name));
            }
            let v6 = item.str("gateway6")?.trim();
            if ipv6.is_some() && !v6.is_empty() {
                gateway6 = Some((v6, name));
            }
        }
        let index = match interfaces.iter().position(|(n, _)| *n == name) {
            Some(index) => index,
            None => {
                interfaces.push((name, Interface::default()));
                interfaces.len() - 1
            }
        };
        let entry = &mut interfaces[index].1;
        entry.ipv4.extend(ipv4);
        entry.ipv6.extend(ipv6);
    }

    for (name, interface) in interfaces {
        let mut value = AttrSet::new();
        for (family, addresses) in [("ipv4", interface.ipv4), ("ipv6", interface.ipv6)] {
            if addresses.is_empty() {
                continue;
            }
            let list = addresses
                .into_iter()
                .map(|a| {
                    Expr::Attrs(
                        AttrSet::new()
                            .with("address", a.address)
                            .with("prefixLength", a.prefix_length),
                    )
                })
                .collect();
            value.set_path(
                vec![family.to_owned(), "addresses".to_owned()],
                Expr::List(list),
            );
        }
        body.set_path(
            vec![
                "networking".to_owned(),
                "interfaces".to_owned(),
                name.to_owned(),
            ],
            mk_override(priority, value),
        );
    }
    for (option, gateway) in [("defaultGateway", gateway4), ("defaultGateway6", gateway6)] {
        if let Some((address, interface)) = gateway {
            body.set_path(
                vec!["networking".to_owned(), option.to_owned()],
                mk_override(
                    priority,
                    AttrSet::new()
                        .with("address", address)
                        .with("interface", interface),
                ),
            );
        }
    }
    Ok(())
}

/// An address with its prefix length; `None` when the address is empty.
fn address<'a>(
    item: &SettingValues<'a>,
    address_field: &str,
    prefix_field: &str,
    max_prefix: i64,
) -> Result<Option<Address<'a>>, RenderError> {
    let address = item.str(address_field)?.trim();
    let prefix = item.int(prefix_field)?;
    if address.is_empty() {
        return Ok(None);
    }
    let Some(prefix_length) = prefix else {
        return Err(item.invalid(
            prefix_field,
            format!("a prefix length is required for the address `{address}`"),
        ));
    };
    if !(0..=max_prefix).contains(&prefix_length) {
        return Err(item.invalid(
            prefix_field,
            format!("prefix length {prefix_length} is not between 0 and {max_prefix}"),
        ));
    }
    Ok(Some(Address {
        address,
        prefix_length,
    }))
}

/// The WiFi settings, checked and normalised for [`ModuleInfo::emit_nix_attrs`]: `null` counts
/// as unset, and a protocol entry without a protocol stands for the preselected default.
fn wifi_values(values: &SettingValues) -> Result<Map<String, Json>, RenderError> {
    let mut wifi = Map::new();
    for key in ["wifi_ssid", "wifi_password", "wifi_auth"] {
        if values.is_set(key) {
            wifi.insert(key.to_owned(), json!(values.str(key)?));
        }
    }
    let key = "wifi_auth_protocols";
    if values.is_set(key) {
        let mut protocols = Vec::new();
        for item in values.items(key)? {
            let protocol = match item.str("protocol")?.trim() {
                "" => DEFAULT_PROTOCOL,
                protocol => protocol,
            };
            protocols.push(json!({ "protocol": protocol }));
        }
        wifi.insert(key.to_owned(), Json::Array(protocols));
    }
    Ok(wifi)
}
