//! Icons of the built-in modules: small line drawings as `data:image/svg+xml;base64,…` URLs,
//! one for light and one for dark themes.

use base64::Engine;

/// The shapes of each icon (SVG path data on a 24×24 grid).
pub(crate) mod glyph {
    pub const DEVICE: &str = "M5 4h14v12H5z M9 20h6 M12 16v4";
    pub const NETWORK: &str =
        "M2 9a15 15 0 0 1 20 0 M5 12.5a10 10 0 0 1 14 0 M8.5 16a5 5 0 0 1 7 0 M12 19.5h.01";
    pub const CLOCK: &str = "M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z M12 7v5l3 3";
    pub const SHIELD: &str = "M12 3l8 3v6c0 5-3.5 8-8 9c-4.5-1-8-4-8-9V6z M9 12l2 2l4-4";
    pub const FILES: &str = "M6 3h8l4 4v14H6z M14 3v4h4";
    pub const CONTAINERS: &str = "M3 7l9-4l9 4v10l-9 4l-9-4z M3 7l9 4l9-4 M12 11v10";
    pub const DISPLAY: &str = "M3 5h18v11H3z M8 20h8 M12 16v4 M10 8.5l4 2l-4 2z";
    pub const CODE: &str = "M8 7l-5 5l5 5 M16 7l5 5l-5 5 M14 4l-4 16";
    pub const SHELL: &str = "M3 5h18v14H3z M7 10l3 2l-3 2 M12 15h5";
    pub const PYTHON: &str = "M12 3c-4 0-4 2-4 3v2h4v1H6c-2 0-3 2-3 4s1 4 3 4h2v-3c0-1 1-2 2-2h4c1 0 2-1 2-2V6c0-1-1-3-4-3z M12 21c4 0 4-2 4-3v-2h-4v-1h6c2 0 3-2 3-4s-1-4-3-4h-2v3c0 1-1 2-2 2h-4c-1 0-2 1-2 2v4c0 1 1 3 4 3z";
}

/// The light and dark data URLs of a glyph.
pub(crate) fn pair(glyph: &str) -> (String, String) {
    (data_url(glyph, "#1f2937"), data_url(glyph, "#e5e7eb"))
}

fn data_url(glyph: &str, colour: &str) -> String {
    let svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="{colour}" stroke-width="1.6" stroke-linecap="round" stroke-linejoin="round"><path d="{glyph}"/></svg>"#
    );
    format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    )
}
