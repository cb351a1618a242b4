//! The Kiosk module (`Kiosk`): an X11 session that auto-logs in and shows one website
//! fullscreen in Chromium, with display mode and rotation, volume, audio output and an optional
//! VNC server for remote viewing.
//!
//! The i3 configuration and the helper scripts are written as templates here; every user value
//! enters them shell-quoted, and every Nix reference (`${pkgs.…}`) is a real interpolation built
//! with the typed Nix builder, so no value can break out of the script or the Nix string.

use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::module::{
    select_values, Module, ModuleInfo, ModuleOutput, RenderContext, RenderError, Setting,
    SettingType, SettingValues, Text,
};
use crate::nix::{mk_override, AttrSet, BinOp, Binding, Expr, NixString, StrPart};

/// The user the kiosk session runs as.
const USER: &str = "thymiskiosk";

/// Output volume in percent when none is set.
const DEFAULT_VOLUME: i64 = 100;

/// Used when `xrandr_mode` cannot be read: width, height, refresh rate.
const FALLBACK_MODE: (u32, u32, u32) = (1920, 1080, 60);

/// The Kiosk module.
pub struct Kiosk(ModuleInfo);

impl Kiosk {
    /// The module with its settings schema.
    pub fn new() -> Self {
        Kiosk(super::info(
            "thymis_controller.modules.kiosk.Kiosk",
            Text::plain("Kiosk"),
            Text::en_de(
                "Shows one website fullscreen on the attached display, with no way for passers-by to leave it.",
                "Zeigt eine Website im Vollbild auf dem angeschlossenen Bildschirm, ohne dass Vorbeigehende sie verlassen können.",
            ),
            Some(Text::en_de("Applications", "Anwendungen")),
            super::icons::glyph::DISPLAY,
            vec![
                Setting::new("kiosk_url", Text::en_de("URL", "URL"), SettingType::String)
                    .description(Text::en_de(
                        "The page to show; the browser opens it once the server answers.",
                        "Die anzuzeigende Seite; der Browser öffnet sie, sobald der Server antwortet.",
                    ))
                    .default_value(json!("https://example.com"))
                    .example("https://example.com")
                    .order(10),
                Setting::new(
                    "xrandr_mode",
                    Text::en_de("Display mode", "Bildschirmmodus"),
                    SettingType::String,
                )
                .description(Text::en_de(
                    "Resolution as `WIDTHxHEIGHT`, optionally with a refresh rate: `1280x720@50` or `1280x720_50`.",
                    "Auflösung als `BREITExHÖHE`, optional mit Bildwiederholrate: `1280x720@50` oder `1280x720_50`.",
                ))
                .default_value(json!("1920x1080"))
                .example("1920x1080")
                .order(40),
                Setting::new(
                    "xrandr_rotation",
                    Text::en_de("Display rotation", "Bildschirmrotation"),
                    select_values(&["normal", "left", "right", "inverted"]),
                )
                .description(Text::en_de(
                    "How the picture is turned, for displays mounted in portrait or upside down.",
                    "Wie das Bild gedreht wird, für hochkant oder kopfüber montierte Bildschirme.",
                ))
                .default_value(json!("normal"))
                .example("normal")
                .order(50),
                Setting::new("volume", Text::en_de("Volume", "Lautstärke"), SettingType::Int)
                    .description(Text::en_de(
                        "Output volume in percent (0 to 100).",
                        "Ausgabelautstärke in Prozent (0 bis 100).",
                    ))
                    .default_value(json!(DEFAULT_VOLUME))
                    .example("100")
                    .order(55),
                Setting::new(
                    "audio_sink_fuzzy",
                    Text::en_de("Audio Sink", "Audio Sink"),
                    SettingType::String,
                )
                .description(Text::en_de(
                    "Part of the name of the audio output to use, matched case-insensitively, e.g. `hdmi`. Empty keeps the default output. `pactl list short sinks` in the kiosk user's session lists the outputs.",
                    "Teil des Namens der zu verwendenden Audioausgabe, ohne Beachtung der Groß-/Kleinschreibung, z. B. `hdmi`. Leer behält die Standardausgabe. `pactl list short sinks` in der Sitzung des Kiosk-Benutzers listet die Ausgaben.",
                ))
                .default_value(json!(""))
                .example("HDMI")
                .order(57),
                Setting::new(
                    "enable_vnc",
                    Text::en_de("Enable VNC server", "VNC-Server aktivieren"),
                    SettingType::Bool,
                )
                .description(Text::en_de(
                    "Lets the dashboard show the screen remotely. The port stays closed in the firewall; the agent connects locally.",
                    "Ermöglicht die Fernansicht des Bildschirms im Dashboard. Der Port bleibt in der Firewall geschlossen; der Agent verbindet sich lokal.",
                ))
                .default_value(json!(false))
                .example("true")
                .order(60),
                Setting::new(
                    "vnc_password",
                    Text::en_de("VNC password", "VNC-Passwort"),
                    SettingType::String,
                )
                .description(Text::en_de(
                    "Password of the VNC server. It is stored in plain text in the configuration.",
                    "Passwort des VNC-Servers. Es wird im Klartext in der Konfiguration gespeichert.",
                ))
                .default_value(json!("password"))
                .example("password")
                .order(70),
            ],
        ))
    }
}

/// A string setting; Nix cuts a string at a NUL byte, which would cut a script after an open
/// quote, so NUL is refused.
fn text<'a>(values: &SettingValues<'a>, key: &str) -> Result<&'a str, RenderError> {
    let text = values.str(key)?;
    if text.contains('\0') {
        return Err(values.invalid(key, "must not contain a NUL character"));
    }
    Ok(text)
}

impl Module for Kiosk {
    fn info(&self) -> &ModuleInfo {
        &self.0
    }

    /// X11 with SDDM auto-login, PulseAudio, and i3 running the kiosk scripts; the display
    /// manager restarts whenever these settings change (via the `NONCE` environment value).
    fn render(
        &self,
        ctx: &RenderContext,
        settings: &Map<String, Json>,
    ) -> Result<ModuleOutput, RenderError> {
        let values = self.0.values(settings);
        let url = text(&values, "kiosk_url")?;
        let (width, height, refresh) = parse_mode(text(&values, "xrandr_mode")?);
        let rotation = text(&values, "xrandr_rotation")?;
        let volume = values
            .int("volume")?
            .unwrap_or(DEFAULT_VOLUME)
            .clamp(0, 100);
        let audio_sink = text(&values, "audio_sink_fuzzy")?;
        let enable_vnc = values.bool("enable_vnc")?;
        let vnc_password = text(&values, "vnc_password")?;

        let mut scripts = vec![
            (
                "displaySetup",
                shell_script(
                    "thymis-kiosk-display",
                    fill(
                        DISPLAY_SCRIPT,
                        &[
                            ("xrandr", nix("pkgs.xorg.xrandr")),
                            ("cvt", nix("pkgs.libxcvt")),
                            ("xev", nix("pkgs.xorg.xev")),
                            ("width", lit(&width.to_string())),
                            ("height", lit(&height.to_string())),
                            ("refresh", lit(&refresh.to_string())),
                            ("rotation", lit(&shell_quote(rotation))),
                        ],
                    ),
                ),
            ),
            (
                "audioSetup",
                shell_script(
                    "thymis-kiosk-audio",
                    fill(
                        AUDIO_SCRIPT,
                        &[
                            ("select_sink", select_sink(audio_sink)),
                            ("pamixer", nix("pkgs.pamixer")),
                            ("volume", lit(&volume.to_string())),
                        ],
                    ),
                ),
            ),
            (
                "browser",
                shell_script(
                    "thymis-kiosk-browser",
                    fill(
                        BROWSER_SCRIPT,
                        &[
                            ("url", lit(&shell_quote(url))),
                            ("chromium", nix("pkgs.ungoogled-chromium")),
                            ("killall", nix("pkgs.killall")),
                            ("jq", nix("pkgs.jq")),
                            ("curl", nix("pkgs.curl")),
                            ("gpu_flags", NixString::new().interp(gpu_flags())),
                        ],
                    ),
                ),
            ),
        ];
        let vnc_exec = if enable_vnc {
            scripts.push((
                "vncServer",
                shell_script(
                    "thymis-kiosk-vnc",
                    fill(
                        VNC_SCRIPT,
                        &[
                            ("password", lit(&shell_quote(vnc_password))),
                            ("tigervnc", nix("pkgs.tigervnc")),
                        ],
                    ),
                ),
            ));
            lit("exec ").interp(Expr::var("vncServer")).text("\n")
        } else {
            NixString::new()
        };
        let i3_config = fill(
            I3_CONFIG,
            &[
                ("display", nix("displaySetup")),
                ("unclutter", nix("pkgs.unclutter")),
                ("audio", nix("audioSetup")),
                ("vnc", vnc_exec),
                ("browser", nix("browser")),
            ],
        );
        let config_file = Expr::Let(
            scripts
                .into_iter()
                .map(|(name, script)| Binding::Assign(vec![name.to_owned()], script))
                .collect(),
            Box::new(
                Expr::var("pkgs.writeText").apply(vec![Expr::str("i3-config"), i3_config.into()]),
            ),
        );

        let p = ctx.priority;
        let mut body = AttrSet::new();
        body.set("services.xserver.enable", mk_override(p, true))
            .set("services.displayManager.sddm.enable", mk_override(p, true))
            .set(
                "services.displayManager.autoLogin.enable",
                mk_override(p, true),
            )
            .set(
                "services.displayManager.autoLogin.user",
                mk_override(p, USER),
            );
        let mut user = AttrSet::new();
        user.set("isNormalUser", true).set("createHome", true);
        body.set_path(
            vec!["users".to_owned(), "users".to_owned(), USER.to_owned()],
            mk_override(p, user),
        );
        // Plain definitions, as upstream: Chromium's audio goes through PulseAudio.
        body.set("services.pipewire.enable", false)
            .set("hardware.pulseaudio.enable", true)
            .set("hardware.pulseaudio.support32Bit", true);
        body.set(
            "services.xserver.windowManager.i3.enable",
            mk_override(p, true),
        )
        .set(
            "services.xserver.windowManager.i3.configFile",
            mk_override(p, config_file),
        );
        // Any settings change alters NONCE, so the display manager restarts with the new
        // session even when only script contents changed.
        body.set(
            "systemd.services.display-manager.restartIfChanged",
            mk_override(p, true),
        )
        .set(
            "systemd.services.display-manager.environment.NONCE",
            mk_override(p, settings_hash(settings)),
        );
        let mut activation = AttrSet::new();
        activation
            .set("supportsDryActivation", true)
            .set("text", RESTART_ACTIVATION);
        body.set(
            "system.activationScripts.restart-display-manager-thymis",
            activation,
        );
        Ok(ModuleOutput::module(body))
    }
}

/// Reads `WxH`, `WxH_R` or `WxH@R` (a fractional rate is cut to its whole part; text after the
/// recognised prefix is ignored, as upstream does); anything else means 1920x1080 at 60 Hz.
pub fn parse_mode(mode: &str) -> (u32, u32, u32) {
    fn number(text: &str) -> Option<(u32, &str)> {
        let end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        Some((text[..end].parse().ok()?, &text[end..]))
    }
    let parsed = (|| {
        let (width, rest) = number(mode)?;
        let (height, rest) = number(rest.strip_prefix('x')?)?;
        let refresh = match rest.strip_prefix(['_', '@']) {
            Some(after) if after.starts_with(|c: char| c.is_ascii_digit()) => number(after)?.0,
            // No rate, or no digits after the separator.
            _ => 60,
        };
        Some((width, height, refresh))
    })();
    parsed.unwrap_or(FALLBACK_MODE)
}

/// Shell single-quoting: the text comes out as one word with every character literal.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// SHA-256 (hex) of the settings as canonical JSON: keys sorted at every level, no spaces.
pub fn settings_hash(settings: &Map<String, Json>) -> String {
    let mut text = String::new();
    canonical_json(&Json::Object(settings.clone()), &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn canonical_json(value: &Json, out: &mut String) {
    match value {
        Json::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Json::String(key.clone()).to_string());
                out.push(':');
                canonical_json(value, out);
            }
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `pkgs.writeShellScript "<name>" ''<text>''`
fn shell_script(name: &str, text: NixString) -> Expr {
    Expr::var("pkgs.writeShellScript").apply(vec![Expr::str(name), text.into()])
}

/// `--disable-gpu ` on aarch64 (Chromium's GPU path renders badly on the Raspberry Pi).
fn gpu_flags() -> Expr {
    let is_aarch64 = Expr::BinOp(
        Box::new(Expr::var("pkgs.stdenv.system")),
        BinOp::Eq,
        Box::new(Expr::str("aarch64-linux")),
    );
    Expr::var("lib.optionalString").apply(vec![is_aarch64, Expr::str("--disable-gpu ")])
}

/// Commands choosing the audio output whose `pactl` line matches `pattern`; empty when no
/// pattern is set.
fn select_sink(pattern: &str) -> NixString {
    if pattern.is_empty() {
        return NixString::new();
    }
    fill(
        SELECT_SINK,
        &[
            ("pactl", nix("pkgs.pulseaudio").text("/bin/pactl")),
            ("pattern", lit(&shell_quote(pattern))),
        ],
    )
}

/// `${path}` as a string.
fn nix(path: &str) -> NixString {
    NixString::new().interp(Expr::var(path))
}

fn lit(text: &str) -> NixString {
    NixString::new().text(text)
}

/// Replaces each `@name@` of the static `template` with its value. Only the template is
/// scanned, so a value containing `@…@` stays as it is.
fn fill(template: &str, values: &[(&str, NixString)]) -> NixString {
    let mut out = NixString::new();
    let mut rest = template;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let found = after.find('@').and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, value)| (end, value))
        });
        match found {
            Some((end, value)) => {
                out.push_str(&rest[..start]);
                for part in &value.parts {
                    match part {
                        StrPart::Lit(text) => out.push_str(text),
                        StrPart::Interp(expr) => out.push_interp(expr.clone()),
                    };
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

const I3_CONFIG: &str = r#"# i3 config file (v4)
# Kiosk session: one fullscreen browser window, no bar, no borders, no screen blanking.
bar {
    mode invisible
}
new_window pixel 0
new_float pixel 0
exec @display@
exec /run/current-system/sw/bin/xset s off
exec /run/current-system/sw/bin/xset -dpms
exec @unclutter@/bin/unclutter
exec @audio@
@vnc@exec @browser@
"#;

const DISPLAY_SCRIPT: &str = r#"# Sets the configured mode and rotation on HDMI-1, and again after every screen change
# (display power cycle, KVM switch), which resets the output to its default mode.
xrandr=@xrandr@/bin/xrandr
output=HDMI-1
sleep 2
# The mode may be missing from what the firmware offers (a Raspberry Pi can pick the wrong
# HDMI group), so a CVT modeline is computed and registered for it.
modeline=$(@cvt@/bin/cvt @width@ @height@ @refresh@ | grep -i '^modeline')
mode_name=$(printf '%s\n' "$modeline" | cut -d '"' -f 2)
mode_timings=$(printf '%s\n' "$modeline" | cut -d '"' -f 3-)
"$xrandr" --newmode "$mode_name" $mode_timings 2>/dev/null || true
apply_mode() {
  "$xrandr" --addmode "$output" "$mode_name" 2>/dev/null || true
  "$xrandr" --output "$output" --rotate @rotation@ 2>/dev/null || true
  "$xrandr" --output "$output" --mode "$mode_name" 2>/dev/null || true
}
apply_mode
@xev@/bin/xev -root -event randr | grep --line-buffered RRScreenChangeNotify | while read -r _; do
  sleep 1
  apply_mode
done
"#;

const AUDIO_SCRIPT: &str = r#"@select_sink@@pamixer@/bin/pamixer --set-volume @volume@
"#;

const SELECT_SINK: &str = r#"sink=$(@pactl@ list short sinks | grep -m 1 -i -e @pattern@ | cut -f 1)
if [ -n "$sink" ]; then
  @pactl@ set-default-sink "$sink"
fi
"#;

const BROWSER_SCRIPT: &str = r#"url=@url@
chromium=@chromium@/bin/chromium
killall=@killall@/bin/killall
prefs="$HOME/.config/chromium/Default/Preferences"
# A session that did not end cleanly leaves a profile lock that stops Chromium from starting.
"$killall" chromium 2>/dev/null
rm -rf "$HOME"/.config/chromium/Singleton*
mkdir -p "$(dirname "$prefs")"
[ -s "$prefs" ] || echo '{}' > "$prefs"
# Never offer to translate German pages.
@jq@/bin/jq '.translate_blocked_languages = ((.translate_blocked_languages // []) + ["de"] | unique)' "$prefs" > "$prefs.tmp" && mv "$prefs.tmp" "$prefs"
# A loading page covers the desktop while the network and the site come up.
"$chromium" --app='data:text/html,<html><body><h1>Loading...</h1></body></html>' &
sleep 30
"$killall" chromium
sleep 3
until @curl@/bin/curl --fail --silent --max-time 10 --head "$url" > /dev/null; do
  sleep 3
done
sleep 1
exec "$chromium" --app="$url" @gpu_flags@--disable-features=Translate --hide-scrollbars
"#;

const VNC_SCRIPT: &str = r#"# The password file is rewritten at every session start, so a new password applies.
umask 077
mkdir -p "$HOME/tigervnc"
printf '%s\n' @password@ | @tigervnc@/bin/vncpasswd -f > "$HOME/tigervnc/passwd"
exec @tigervnc@/bin/x0vncserver -display :0 -PasswordFile="$HOME/tigervnc/passwd"
"#;

/// Queues `display-manager.service` for a restart by `switch-to-configuration`, which does not
/// restart it on its own. Appends, so units queued by other activation scripts stay queued.
const RESTART_ACTIVATION: &str = r#"mkdir -p /run/nixos
if [ "$NIXOS_ACTION" != dry-activate ]; then
  echo display-manager.service >> /run/nixos/activation-restart-list
else
  echo display-manager.service >> /run/nixos/dry-activation-restart-list
fi
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("1360x768"), (1360, 768, 60));
        assert_eq!(parse_mode("1360x768_59.94"), (1360, 768, 59));
        assert_eq!(parse_mode("1280x720@50"), (1280, 720, 50));
        assert_eq!(parse_mode("1280x720@"), (1280, 720, 60));
        assert_eq!(parse_mode("1280x720i"), (1280, 720, 60));
        assert_eq!(parse_mode("1280x"), FALLBACK_MODE);
        assert_eq!(parse_mode("hd"), FALLBACK_MODE);
        assert_eq!(parse_mode(""), FALLBACK_MODE);
        assert_eq!(parse_mode("99999999999x1"), FALLBACK_MODE);
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn hash_ignores_key_order() {
        let a: Map<String, Json> =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: Map<String, Json> =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        assert_eq!(settings_hash(&a), settings_hash(&b));
        assert_eq!(
            settings_hash(&Map::new()),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn templates_keep_values_unscanned() {
        let filled = fill("a @x@ @y@ @z", &[("x", lit("@y@")), ("y", nix("pkgs.jq"))]);
        assert_eq!(
            filled.parts,
            vec![
                StrPart::Lit("a @y@ ".to_owned()),
                StrPart::Interp(Expr::var("pkgs.jq")),
                StrPart::Lit(" @z".to_owned()),
            ]
        );
    }
}
