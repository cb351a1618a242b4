//! The ten built-in modules of upstream Thymis, with the same type strings, so existing
//! `state.json` files keep working.

mod bash;
mod custom_nix;
mod device;
mod files;
mod icons;
mod kiosk;
mod localization;
mod networking;
mod oci_containers;
mod python;
mod security;
mod timer;

use std::sync::Arc;

pub use bash::BashModule;
pub use custom_nix::CustomNix;
pub use device::{default_image_format, image_formats_for, Device, DEVICE_TYPES, IMAGE_FORMATS};
pub use files::Files;
pub use kiosk::Kiosk;
pub use localization::{Localization, DEFAULT_TIMEZONE};
pub use networking::{Networking, WIFI_AUTH_PROTOCOLS};
pub use oci_containers::OciContainers;
pub use python::PythonModule;
pub use security::{SecurityAccess, ROOT_PASSWORD_HASH_PATH};

use super::{Module, ModuleInfo, Setting, Text};

/// `Default` of each built-in module: a built-in has no parameters, so it is just `new()`.
macro_rules! default_is_new {
    ($($module:ty),* $(,)?) => {
        $(
            impl Default for $module {
                fn default() -> Self {
                    Self::new()
                }
            }
        )*
    };
}

default_is_new!(
    BashModule,
    CustomNix,
    Device,
    Files,
    Kiosk,
    Localization,
    Networking,
    OciContainers,
    PythonModule,
    SecurityAccess,
);

/// The built-in modules in upstream's order.
pub fn all() -> Vec<Arc<dyn Module>> {
    vec![
        Arc::new(Device::new()),
        Arc::new(Networking::new()),
        Arc::new(Localization::new()),
        Arc::new(SecurityAccess::new()),
        Arc::new(Files::new()),
        Arc::new(OciContainers::new()),
        Arc::new(Kiosk::new()),
        Arc::new(CustomNix::new()),
        Arc::new(BashModule::new()),
        Arc::new(PythonModule::new()),
    ]
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
