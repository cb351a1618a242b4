//! Bad input never panics: every value of a realistic project is replaced, in turn, by values
//! of other types and tricky strings, and every key is deleted; loading, validating and
//! rendering each damaged document must end in a result or a clear error.

use serde_json::{json, Value};
use thymis::module::ModuleRegistry;
use thymis::repository::{ProjectRenderer, RenderOptions};
use thymis::state::State;

/// JSON pointers of every value in the document.
fn pointers(value: &Value, prefix: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{prefix}/{i}");
                out.push(p.clone());
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

fn exercise(doc: Value, registry: &ModuleRegistry) -> usize {
    match State::from_json_value(doc) {
        Ok((state, _)) => {
            let problems = state.validate(registry);
            let _ = ProjectRenderer::new().render(&state, registry, &RenderOptions::default());
            problems.len()
        }
        Err(err) => {
            assert!(!err.to_string().is_empty());
            0
        }
    }
}

#[test]
fn damaged_projects_never_panic() {
    let original: Value =
        serde_json::from_str(include_str!("fixtures/state/project.json")).unwrap();
    let registry = ModuleRegistry::with_builtins();
    let replacements = [
        json!(null),
        json!(-1),
        json!(1.5),
        json!(""),
        json!("${x}''\n\t\\\"'"),
        json!("\u{0}"),
        json!([]),
        json!([{}]),
        json!({}),
        json!(true),
        json!({"timer_type": "monotonic", "on_calendar": [1]}),
    ];
    let mut paths = Vec::new();
    pointers(&original, String::new(), &mut paths);
    assert!(paths.len() > 150, "the fixture exercises enough places");
    let mut runs = 0;
    for path in &paths {
        for replacement in &replacements {
            let mut doc = original.clone();
            *doc.pointer_mut(path).unwrap() = replacement.clone();
            exercise(doc, &registry);
            runs += 1;
        }
        // Delete the key or element.
        let mut doc = original.clone();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            doc.pointer_mut("")
        } else {
            doc.pointer_mut(parent)
        };
        match parent.unwrap() {
            Value::Object(map) => {
                map.shift_remove(&last.replace("~1", "/").replace("~0", "~"));
            }
            Value::Array(items) => {
                items.remove(last.parse::<usize>().unwrap());
            }
            _ => unreachable!(),
        }
        exercise(doc, &registry);
        runs += 1;
    }
    assert!(runs > 1500);
}

#[test]
fn nul_characters_are_reported_not_rendered() {
    let registry = ModuleRegistry::with_builtins();
    let (state, _) = State::from_json_value(json!({
        "version": "0.0.9",
        "configs": [{"displayName": "A", "identifier": "a", "tags": [], "modules": [
            {"type": "thymis_controller.modules.thymis.ThymisDevice", "settings": {"device_name": "a\u{0}b"}}
        ]}]
    }))
    .unwrap();
    let problems = state.validate(&registry);
    assert!(
        problems
            .iter()
            .any(|p| p.path == "$.configs[0].modules[0].settings.device_name"
                && p.message.contains("NUL")),
        "{problems:#?}"
    );
}
