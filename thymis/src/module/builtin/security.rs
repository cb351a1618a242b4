//! The Security & Access module (`SecurityAccessModule`): root password (as a secret), SSH keys
//! allowed to log in as root, and extra trusted root certificates.

use serde_json::{json, Map, Value as Json};

use crate::module::{
    list_of, Module, ModuleInfo, ModuleOutput, OnDevice, RenderContext, RenderError, SecretKind,
    SecretProcessing, SecretSetting, Setting, SettingType, Text,
};
use crate::nix::{AttrSet, Expr};

/// Where the agent writes root's password hash; the device module runs `chpasswd -e` on it.
pub const ROOT_PASSWORD_HASH_PATH: &str = "/run/thymis/root_password_hash";

/// The Security & Access module.
pub struct SecurityAccess(ModuleInfo);

impl SecurityAccess {
    /// The module with its settings schema.
    pub fn new() -> Self {
        SecurityAccess(super::info(
            "thymis_controller.modules.security.SecurityAccessModule",
            Text::en_de("Security & Access", "Sicherheit & Zugriff"),
            Text::en_de(
                "Who may log in as root, and which certificate authorities the device trusts.",
                "Wer sich als root anmelden darf und welchen Zertifizierungsstellen das Gerät vertraut.",
            ),
            Some(Text::en_de("System", "System")),
            super::icons::glyph::SHIELD,
            vec![
                Setting::new(
                    "password_secret",
                    Text::en_de("Root Password", "Root Passwort"),
                    SettingType::Secret(SecretSetting {
                        allowed_types: vec![SecretKind::SingleLine],
                        default_processing: SecretProcessing::MkpasswdYescrypt,
                        default_save_to_image: true,
                        // Readable by root only: it is a password hash.
                        on_device: Some(OnDevice {
                            path: ROOT_PASSWORD_HASH_PATH.to_owned(),
                            owner: Some("root".to_owned()),
                            group: Some("root".to_owned()),
                            mode: Some("0400".to_owned()),
                        }),
                    }),
                )
                .description(Text::en_de(
                    "Secret holding root's password. Only its hash reaches the device.",
                    "Secret mit dem Passwort von root. Nur dessen Hash gelangt auf das Gerät.",
                ))
                .default_value(json!(""))
                .example("")
                .order(10),
                Setting::new(
                    "authorized_keys",
                    Text::en_de("Authorized Keys", "Authorisierte Schlüssel"),
                    list_of(
                        vec![Setting::new("key", Text::en_de("Public key", "Öffentlicher Schlüssel"), SettingType::String)
                            .description(Text::en_de(
                                "One public key line in OpenSSH format.",
                                "Eine öffentliche Schlüsselzeile im OpenSSH-Format.",
                            ))
                            .default_value(json!(""))
                            .example("ssh-rsa AAAA...")],
                        Some(Text::en_de("Key", "Schlüssel")),
                    ),
                )
                .description(Text::en_de(
                    "SSH public keys that may log in as root.",
                    "Öffentliche SSH-Schlüssel, die sich als root anmelden dürfen.",
                ))
                .default_value(json!([]))
                .example("")
                .order(20)
                .nix_attr("thymis.config.authorized-keys"),
                Setting::new(
                    "security_pki_certificates",
                    Text::en_de(
                        "Trusted root certificates",
                        "Vertrauenswürdige Stammzertifikate",
                    ),
                    list_of(
                        vec![Setting::new(
                            "certificate",
                            Text::en_de("Certificate", "Zertifikat"),
                            SettingType::Textarea,
                        )
                        .description(Text::en_de(
                            "A PEM-encoded CA certificate.",
                            "Ein PEM-kodiertes CA-Zertifikat.",
                        ))
                        .default_value(json!(""))
                        .example("")],
                        Some(Text::en_de("Certificate", "Zertifikat")),
                    ),
                )
                .description(Text::en_de(
                    "Extra certificate authorities, added to the Mozilla bundle in /etc/ssl/certs/ca-certificates.crt.",
                    "Zusätzliche Zertifizierungsstellen, ergänzt um das Mozilla-Bündel in /etc/ssl/certs/ca-certificates.crt.",
                ))
                .default_value(json!([]))
                .order(30),
            ],
        ))
    }
}

impl Module for SecurityAccess {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// The list options stay plain definitions, so keys and certificates from every tag and the
    /// config add up. The password file is a fixed path, equal wherever it is set, so plain
    /// definitions of it never conflict either.
    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let values = self.0.values(settings);
        let mut body = AttrSet::new();

        if !values.str("password_secret")?.trim().is_empty() {
            body.set(
                "users.users.root.hashedPasswordFile",
                ROOT_PASSWORD_HASH_PATH,
            );
        }

        let keys = values.item_strings("authorized_keys", "key")?;
        if !keys.is_empty() {
            body.set(
                "users.users.root.openssh.authorizedKeys.keys",
                Expr::List(keys.iter().map(|k| Expr::str(k.trim())).collect()),
            );
        }

        let certificates = values.item_strings("security_pki_certificates", "certificate")?;
        if !certificates.is_empty() {
            body.set(
                "security.pki.certificates",
                Expr::List(certificates.into_iter().map(Expr::str).collect()),
            );
        }

        // Upstream also passes the keys on as the freeform `thymis.config.authorized-keys`.
        let mut attrs = Map::new();
        if values.is_set("authorized_keys") {
            let entries = keys.iter().map(|k| json!({ "key": k.trim() })).collect();
            attrs.insert("authorized_keys".to_owned(), Json::Array(entries));
        }
        self.0.emit_nix_attrs(&attrs, ctx.priority, &mut body);

        Ok(ModuleOutput::module(body))
    }
}
