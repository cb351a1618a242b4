//! Embedding the library: build a project state in code, validate it, render it into a git
//! repository and commit it.
//!
//! `cargo run -p thymis-examples --bin render_project [<dir>]`

use serde_json::json;
use thymis::module::ModuleRegistry;
use thymis::repository::{Author, GitRepository, RenderOptions, Repository};
use thymis::state::{Config, ModuleSettings, State, Tag, DEVICE_MODULE_TYPE};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::env::temp_dir().join("thymis-example-project"),
    };
    let registry = ModuleRegistry::with_builtins();

    let mut state = State::default();
    state.tags.push(Tag {
        display_name: "Berlin office".into(),
        identifier: "berlin".into(),
        priority: 90,
        modules: vec![ModuleSettings::new(
            "thymis_controller.modules.localization.LocalizationModule",
        )
        .with("timezone", json!("Europe/Berlin"))],
        extra: Default::default(),
    });
    state.configs.push(Config {
        display_name: "Reception screen".into(),
        identifier: "reception-screen".into(),
        modules: vec![
            ModuleSettings::new(DEVICE_MODULE_TYPE)
                .with("device_type", json!("raspberry-pi-4"))
                .with("device_name", json!("reception")),
            ModuleSettings::new("thymis_controller.modules.kiosk.Kiosk")
                .with("kiosk_url", json!("https://intranet.example.com/welcome")),
        ],
        tags: vec!["berlin".into()],
        extra: Default::default(),
    });

    let problems = state.validate(&registry);
    for problem in &problems {
        eprintln!("{problem}");
    }

    let mut repo = GitRepository::open_or_init(&dir, &registry, RenderOptions::default())?;
    let report = repo.save_state(&state, &registry)?;
    println!(
        "wrote {} files into {}",
        report.files.written.len(),
        dir.display()
    );
    let commit = repo.commit(
        "Add the reception screen",
        Some(&Author {
            name: "Example".into(),
            email: "example@example.com".into(),
        }),
    )?;
    println!("committed {} {}", commit.short_sha, commit.message);
    Ok(())
}
