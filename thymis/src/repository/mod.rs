//! The project repository.

/// Why `name` cannot be an artifact file name: artifacts live flat in `artifacts/`.
pub fn check_artifact_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(format!("`{name}` is not a valid artifact file name"));
    }
    Ok(())
}
