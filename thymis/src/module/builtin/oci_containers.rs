//! The OCI Containers module (`OCIContainers`): containers run by podman through NixOS'
//! `virtualisation.oci-containers`, each with ports, volumes, environment and labels.

use std::collections::HashSet;

use serde_json::{json, Map, Value as Json};

use crate::module::{
    list_of, Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, Setting, SettingType,
    SettingValues, Text,
};
use crate::nix::{mk_override, AttrSet, Expr};

const KEY: &str = "containers";

/// The OCI Containers module.
pub struct OciContainers(ModuleInfo);

/// A `{host, container}` pair list (ports, volumes).
fn mapping_list(key: &str, display: Text, element: Text, description: Text, order: i64) -> Setting {
    Setting::new(
        key,
        display,
        list_of(
            vec![
                Setting::new("host", Text::en_de("Host", "Host"), SettingType::String),
                Setting::new(
                    "container",
                    Text::en_de("Container", "Container"),
                    SettingType::String,
                ),
            ],
            Some(element),
        ),
    )
    .description(description)
    .default_value(json!([]))
    .order(order)
}

impl OciContainers {
    /// The module with its settings schema.
    pub fn new() -> Self {
        let container = vec![
            Setting::new(
                "container_name",
                Text::en_de("Container Name", "Container Name"),
                SettingType::String,
            )
            .description(Text::en_de(
                "Unique name of the container; its service is called `podman-<name>`.",
                "Eindeutiger Name des Containers; sein Dienst heißt `podman-<Name>`.",
            ))
            .order(10),
            Setting::new("image", Text::en_de("Image", "Image"), SettingType::String)
                .description(Text::en_de(
                    "Image reference to pull, such as `docker.io/library/nginx:1.27`.",
                    "Zu ladende Image-Referenz, etwa `docker.io/library/nginx:1.27`.",
                ))
                .order(15),
            mapping_list(
                "ports",
                Text::en_de("Ports", "Ports"),
                Text::en_de("Port", "Port"),
                Text::en_de(
                    "Published ports: a host port (optionally `address:port`) and the container port.",
                    "Veröffentlichte Ports: ein Host-Port (optional `Adresse:Port`) und der Container-Port.",
                ),
                25,
            ),
            mapping_list(
                "volumes",
                Text::en_de("Volumes", "Volumes"),
                Text::en_de("Volume", "Volume"),
                Text::en_de(
                    "Mounts: a host path or volume name and the path inside the container.",
                    "Einbindungen: ein Host-Pfad oder Volume-Name und der Pfad im Container.",
                ),
                30,
            ),
            Setting::new(
                "environment",
                Text::en_de("Environment Variables", "Umgebungsvariablen"),
                list_of(
                    vec![
                        Setting::new(
                            "key",
                            Text::en_de("Key/Name", "Schlüssel/Name"),
                            SettingType::String,
                        ),
                        Setting::new("value", Text::en_de("Value", "Wert"), SettingType::String),
                    ],
                    Some(Text::en_de("Environment Variable", "Umgebungsvariable")),
                ),
            )
            .description(Text::en_de(
                "Variables set for the container's process; values are passed literally.",
                "Variablen für den Prozess des Containers; Werte werden wörtlich übergeben.",
            ))
            .order(35),
            Setting::new(
                "labels",
                Text::en_de("Labels", "Labels"),
                list_of(
                    vec![
                        Setting::new("key", Text::en_de("Key", "Schlüssel"), SettingType::String)
                            .description(Text::en_de("Label name.", "Name des Labels."))
                            .default_value(json!(""))
                            .example(""),
                        Setting::new("value", Text::en_de("Value", "Wert"), SettingType::String)
                            .description(Text::en_de("Label value.", "Wert des Labels."))
                            .default_value(json!(""))
                            .example(""),
                    ],
                    Some(Text::en_de("Label", "Label")),
                ),
            )
            .description(Text::en_de(
                "Container labels, e.g. for a reverse proxy or monitoring.",
                "Labels des Containers, etwa für einen Reverse-Proxy oder das Monitoring.",
            ))
            .default_value(json!([]))
            .example("[\"\"]")
            .order(40),
        ];
        OciContainers(super::info(
            "thymis_controller.modules.oci_container.OCIContainers",
            Text::en_de("OCI Containers", "OCI Container"),
            Text::en_de(
                "Runs Docker/OCI container images as services, managed by podman.",
                "Führt Docker-/OCI-Container-Images als Dienste aus, verwaltet von podman.",
            ),
            Some(Text::en_de("Applications", "Anwendungen")),
            super::icons::glyph::CONTAINERS,
            vec![Setting::new(
                KEY,
                Text::en_de("Containers", "Container"),
                list_of(container, Some(Text::en_de("Container", "Container"))),
            )
            .description(Text::en_de(
                "The containers this device runs.",
                "Die Container, die dieses Gerät ausführt.",
            ))
            .default_value(json!([]))
            .order(10)],
        ))
    }
}

/// A text field; a number is accepted too (a port typed as `8080`). Unset means "".
fn text(item: &SettingValues, field: &str) -> Result<String, RenderError> {
    match item.get(field) {
        Json::Number(n) => Ok(n.to_string()),
        _ => item.str(field).map(str::to_owned),
    }
}

/// `host:container` entries (`container` alone when no host part is given, which podman
/// reads as "any host port" or an anonymous volume); entries without a container side are
/// incomplete and skipped.
fn mappings(container: &SettingValues, list: &str) -> Result<Expr, RenderError> {
    let mut entries = Vec::new();
    for item in container.items(list)? {
        let host = text(&item, "host")?;
        let inside = text(&item, "container")?;
        if inside.is_empty() {
            continue;
        }
        entries.push(Expr::str(&if host.is_empty() {
            inside
        } else {
            format!("{host}:{inside}")
        }));
    }
    Ok(Expr::List(entries))
}

/// `{ "<key>" = "<value>"; … }`; a key given twice would be a Nix evaluation error, so it is
/// reported instead.
fn key_values(container: &SettingValues, list: &str) -> Result<AttrSet, RenderError> {
    let mut attrs = AttrSet::new();
    let mut seen = HashSet::new();
    for item in container.items(list)? {
        let key = text(&item, "key")?;
        if key.is_empty() {
            continue;
        }
        let value = text(&item, "value")?;
        if !seen.insert(key.clone()) {
            return Err(item.invalid("key", format!("`{key}` is set twice")));
        }
        attrs.set_path(vec![key], value);
    }
    Ok(attrs)
}

impl Module for OciContainers {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// Podman as the backend (with DNS between containers) and one
    /// `virtualisation.oci-containers.containers."<name>"` per container, all at the target's
    /// priority. Every user value goes through the printer, so quotes and `${` stay literal
    /// (upstream pasted them into the file unescaped). Containers without a name are
    /// incomplete and skipped; a name used twice or one podman rejects is an error.
    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let containers = self.0.values(settings).items(KEY)?;
        let mut body = AttrSet::new();
        let mut podman = AttrSet::new();
        podman
            .set("enable", true)
            .set("autoPrune.enable", true)
            .set("dockerCompat", true)
            // Containers reach each other by name only with DNS on the default network.
            .set("defaultNetwork.settings.dns_enabled", true);
        body.set("virtualisation.podman", mk_override(ctx.priority, podman));
        body.set(
            "virtualisation.oci-containers.backend",
            mk_override(ctx.priority, "podman"),
        );
        let mut names = HashSet::new();
        for container in containers {
            let name = text(&container, "container_name")?;
            if name.is_empty() {
                continue;
            }
            if !is_container_name(&name) {
                return Err(container.invalid(
                    "container_name",
                    format!("`{name}` is not a valid container name (letters, digits, `_`, `.`, `-`; starting with a letter or digit)"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(container.invalid(
                    "container_name",
                    format!("container `{name}` is defined twice"),
                ));
            }
            let mut spec = AttrSet::new();
            spec.set("image", text(&container, "image")?);
            // Like upstream, empty lists and sets are left out rather than written as `[ ]`.
            let environment = key_values(&container, "environment")?;
            if !environment.is_empty() {
                spec.set("environment", environment);
            }
            for list in ["volumes", "ports"] {
                let entries = mappings(&container, list)?;
                if !matches!(&entries, Expr::List(items) if items.is_empty()) {
                    spec.set(list, entries);
                }
            }
            let labels = key_values(&container, "labels")?;
            if !labels.is_empty() {
                spec.set("labels", labels);
            }
            spec.set("log-driver", "journald");
            body.set_path(
                vec![
                    "virtualisation".to_owned(),
                    "oci-containers".to_owned(),
                    "containers".to_owned(),
                    name,
                ],
                mk_override(ctx.priority, spec),
            );
        }
        Ok(ModuleOutput::module(body))
    }
}

/// Podman's rule for container names; anything else fails only when the device builds or
/// starts the unit, so it is caught here.
fn is_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}
