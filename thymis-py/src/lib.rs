//! Python bindings of the Thymis core library (`import thymis_py`): validate, migrate and
//! render project state from Python, and list the available modules.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use thymis::module::{ModuleRegistry, RenderContext, RenderEnv, TargetKind};
use thymis::state::State;

fn value_error(err: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// Migrates a `state.json` text of any upstream version to the current shape.
#[pyfunction]
fn migrate_state(state_json: &str) -> PyResult<String> {
    let (state, _) = State::from_json_str(state_json).map_err(value_error)?;
    Ok(state.to_json_pretty())
}

/// Validates a `state.json` text; returns a list of `(severity, path, message)`.
#[pyfunction]
fn validate_state(state_json: &str) -> PyResult<Vec<(String, String, String)>> {
    let (state, _) = State::from_json_str(state_json).map_err(value_error)?;
    let registry = ModuleRegistry::with_builtins();
    Ok(state
        .validate(&registry)
        .into_iter()
        .map(|p| {
            let severity = serde_json::to_value(p.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            (severity, p.path, p.message)
        })
        .collect())
}

/// The JSON of `GET /api/available_modules` for a locale (`en` or `de`).
#[pyfunction]
#[pyo3(signature = (locale = "en"))]
fn available_modules(locale: &str) -> String {
    ModuleRegistry::with_builtins().to_wire(locale).to_string()
}

/// Renders one module instance to its Nix file text.
#[pyfunction]
#[pyo3(signature = (module_type, settings_json, identifier, priority = 80, tag = false))]
fn render_module(
    module_type: &str,
    settings_json: &str,
    identifier: &str,
    priority: i64,
    tag: bool,
) -> PyResult<String> {
    let registry = ModuleRegistry::with_builtins();
    let module = registry
        .get(module_type)
        .ok_or_else(|| value_error(format!("unknown module type `{module_type}`")))?;
    let settings: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(settings_json).map_err(value_error)?;
    let env = RenderEnv::default();
    let ctx = RenderContext {
        kind: if tag {
            TargetKind::Tag
        } else {
            TargetKind::Config
        },
        identifier,
        priority,
        instance: 0,
        env: &env,
    };
    let output = module.render(&ctx, &settings).map_err(value_error)?;
    Ok(output.to_text())
}

/// The `thymis_py` Python module.
#[pymodule]
fn thymis_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(migrate_state, m)?)?;
    m.add_function(wrap_pyfunction!(validate_state, m)?)?;
    m.add_function(wrap_pyfunction!(available_modules, m)?)?;
    m.add_function(wrap_pyfunction!(render_module, m)?)?;
    Ok(())
}
