//! The ten built-in modules of upstream Thymis, with the same type strings, so existing
//! `state.json` files keep working.

mod custom_nix;
mod device;
mod icons;

use std::sync::Arc;

pub use custom_nix::CustomNix;
pub use device::{default_image_format, image_formats_for, Device, DEVICE_TYPES, IMAGE_FORMATS};

use super::{Module, ModuleInfo, Setting, Text};

/// The built-in modules in upstream's order.
pub fn all() -> Vec<Arc<dyn Module>> {
    vec![Arc::new(Device::new()), Arc::new(CustomNix::new())]
}

/// Module metadata with the icon pair drawn from `glyph`.
fn info(
    type_name: &str,
    display_name: Text,
    description: Text,
    category: Option<Text>,
    glyph: &str,
    settings: Vec<Setting>,
) -> ModuleInfo {
    let (icon, icon_dark) = icons::pair(glyph);
    ModuleInfo {
        type_name: type_name.to_owned(),
        display_name,
        description: Some(description),
        category,
        icon: Some(icon),
        icon_dark: Some(icon_dark),
        settings,
    }
}
