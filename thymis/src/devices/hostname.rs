//! The hostname a device gets (http-api.md §11.1, repository-and-nix.md §3.3): its own name,
//! else its config's `device_name`, else `thymis`, as an RFC 1123 label.

use crate::state::{State, CONFIG_PRIORITY, DEVICE_MODULE_TYPE};

/// The hostname used when neither the device nor its config names one.
pub const DEFAULT_HOSTNAME: &str = "thymis";

/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// `name` as a hostname label: lower case, every character other than an ASCII letter, digit
/// or hyphen replaced by a hyphen, at most 63 characters, no leading or trailing hyphen.
/// `None` when nothing usable remains.
///
/// Unlike upstream, non-ASCII letters become hyphens too: a label must be ASCII.
///
/// ```
/// use thymis::devices::sanitize_hostname;
/// assert_eq!(sanitize_hostname(" Kiosk_A.Hall ").as_deref(), Some("kiosk-a-hall"));
/// assert_eq!(sanitize_hostname("--"), None);
/// ```
pub fn sanitize_hostname(name: &str) -> Option<String> {
    let label: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(MAX_LABEL)
        .collect();
    let label = label.trim_matches('-');
    (!label.is_empty()).then(|| label.to_owned())
}

/// The `device_name` of a config's Device module, merged with its tags' like Nix's
/// `mkOverride` does: the value with the lowest priority number wins (the config's own
/// settings have [`CONFIG_PRIORITY`]). Empty values do not count; `None` when no one sets it.
pub fn config_device_name(state: &State, config_id: &str) -> Option<String> {
    let config = state.configs.iter().find(|c| c.identifier == config_id)?;
    let own = config.modules.iter().map(|m| (CONFIG_PRIORITY, m));
    let tagged = state
        .tags
        .iter()
        .filter(|tag| config.tags.contains(&tag.identifier))
        .flat_map(|tag| tag.modules.iter().map(move |m| (tag.priority, m)));
    own.chain(tagged)
        .filter(|(_, module)| module.module_type == DEVICE_MODULE_TYPE)
        .filter_map(|(priority, module)| {
            let name = module.settings.get("device_name")?.as_str()?;
            (!name.is_empty()).then_some((priority, name))
        })
        // `min_by_key` keeps the first of equal priorities: the config before its tags.
        .min_by_key(|(priority, _)| *priority)
        .map(|(_, name)| name.to_owned())
}

/// The hostname of a device named `device_name` running `config_id`.
pub fn effective_hostname(
    state: &State,
    device_name: Option<&str>,
    config_id: Option<&str>,
) -> String {
    device_name
        .and_then(sanitize_hostname)
        .or_else(|| {
            config_id
                .and_then(|id| config_device_name(state, id))
                .and_then(|name| sanitize_hostname(&name))
        })
        .unwrap_or_else(|| DEFAULT_HOSTNAME.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(sanitize_hostname("Pi 4").as_deref(), Some("pi-4"));
        assert_eq!(sanitize_hostname("Küche").as_deref(), Some("k-che"));
        assert_eq!(sanitize_hostname("   "), None);
        assert_eq!(sanitize_hostname("_a_").as_deref(), Some("a"));
        let long = "x".repeat(70);
        assert_eq!(sanitize_hostname(&long).map(|l| l.len()), Some(63));
        // Cut at 63 first, then trimmed: a hyphen at the cut disappears.
        let cut = format!("{}-y", "x".repeat(62));
        assert_eq!(sanitize_hostname(&cut), Some("x".repeat(62)));
    }
}
