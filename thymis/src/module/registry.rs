//! The module registry: built-in modules plus those registered by embedders (Rust) and, later,
//! by Python extension modules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value as Json;

use super::{builtin, Module};

/// All modules known to a controller, in the order they are offered to users.
#[derive(Clone)]
pub struct ModuleRegistry {
    modules: Vec<Arc<dyn Module>>,
    by_type: HashMap<String, usize>,
    version: u64,
}

/// Versions are unique across all registries, so equal versions mean equal contents.
fn next_version() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Default for ModuleRegistry {
    fn default() -> Self {
        ModuleRegistry {
            modules: Vec::new(),
            by_type: HashMap::new(),
            version: next_version(),
        }
    }
}

/// A module could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Another module already has this type string.
    #[error("a module with type `{0}` is already registered")]
    DuplicateType(String),
    /// The type string cannot name a file: it must be a dotted path of letters, digits and `_`
    /// (like a Python class path), because it becomes the module's file name.
    #[error("module type `{0}` must be a dotted path of letters, digits and `_`, such as `acme.modules.Sensor`")]
    InvalidType(String),
}

/// Whether `type_name` is a dotted path like `thymis_controller.modules.kiosk.Kiosk`.
pub fn is_valid_type_name(type_name: &str) -> bool {
    !type_name.is_empty()
        && type_name.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

impl ModuleRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry holding the ten built-in modules in upstream's order.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        for module in builtin::all() {
            registry.insert(module);
        }
        registry
    }

    /// Adds a module; its type string must be new.
    pub fn register(&mut self, module: impl Module) -> Result<(), RegistryError> {
        self.register_arc(Arc::new(module))
    }

    /// Adds a shared module; its type string must be new.
    pub fn register_arc(&mut self, module: Arc<dyn Module>) -> Result<(), RegistryError> {
        let type_name = &module.info().type_name;
        if !is_valid_type_name(type_name) {
            return Err(RegistryError::InvalidType(type_name.clone()));
        }
        if self.by_type.contains_key(type_name) {
            return Err(RegistryError::DuplicateType(type_name.clone()));
        }
        self.insert(module);
        Ok(())
    }

    fn insert(&mut self, module: Arc<dyn Module>) {
        self.by_type
            .insert(module.info().type_name.clone(), self.modules.len());
        self.modules.push(module);
        self.version = next_version();
    }

    /// Changes whenever a module is registered; output rendered with another version may be
    /// stale (a module that was unknown then may be known now).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The module with this type string.
    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn Module>> {
        self.by_type.get(type_name).map(|&i| &self.modules[i])
    }

    /// Every module in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Module>> {
        self.modules.iter()
    }

    /// The body of `GET /api/available_modules` for `locale`.
    pub fn to_wire(&self, locale: &str) -> Json {
        Json::Array(
            self.modules
                .iter()
                .map(|m| m.info().to_wire(locale))
                .collect(),
        )
    }
}

impl std::fmt::Debug for ModuleRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.modules.iter().map(|m| &m.info().type_name))
            .finish()
    }
}
