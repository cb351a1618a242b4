//! Builds the dashboard (`ui/`, Svelte + Vite) and embeds it: `npm ci` when the dependencies
//! are missing or stale, `npm run build` into OUT_DIR, then a generated table of every file,
//! gzip-compressed where that helps. `THYMIS_UI_DIST=<dir>` embeds a prebuilt bundle instead
//! (packaging without Node).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=THYMIS_UI_DIST");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let dist = match std::env::var_os("THYMIS_UI_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => build_ui(&manifest.join("ui"), &out.join("ui-dist")),
    };
    if !dist.join("index.html").is_file() {
        panic!("the dashboard bundle {} has no index.html", dist.display());
    }
    write_asset_table(&dist, &out);
}

/// Runs npm in `ui`; one build at a time (cargo may build several profiles at once).
fn build_ui(ui: &Path, dist: &Path) -> PathBuf {
    for input in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "public",
    ] {
        println!("cargo:rerun-if-changed={}", ui.join(input).display());
    }
    let lock = File::create(ui.join(".build-lock")).expect("cannot create ui/.build-lock");
    lock.lock().expect("cannot lock ui/.build-lock");
    let installed = ui.join("node_modules/.package-lock.json");
    if modified(&installed) < modified(&ui.join("package-lock.json")) {
        npm(ui, &["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    }
    npm(
        ui,
        &[
            "run",
            "build",
            "--",
            "--outDir",
            dist.to_str().expect("OUT_DIR is not UTF-8"),
            "--emptyOutDir",
            "--logLevel",
            "warn",
        ],
    );
    dist.to_path_buf()
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

fn npm(dir: &Path, args: &[&str]) {
    let status = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap_or_else(|err| {
            panic!("cannot run npm ({err}); install Node.js 20+ or set THYMIS_UI_DIST to a built dashboard")
        });
    assert!(
        status.success(),
        "npm {} failed in {}",
        args.join(" "),
        dir.display()
    );
}

/// Writes `ui_assets.rs`: `ASSETS: &[(path, content type, bytes, gzipped bytes or empty)]`.
fn write_asset_table(dist: &Path, out: &Path) {
    let mut files = Vec::new();
    collect(dist, dist, &mut files);
    files.sort();
    let mut table = String::from("pub static ASSETS: &[(&str, &str, &[u8], &[u8])] = &[\n");
    for (url, path) in files {
        let bytes = std::fs::read(&path).expect("cannot read a bundle file");
        let mime = content_type(&url);
        let gz_path = out.join(format!("gz{}", url.replace('/', "_")));
        let compressible = mime.starts_with("text/")
            || mime.contains("javascript")
            || mime.contains("json")
            || mime.contains("svg");
        let gz = if compressible && bytes.len() > 1024 {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            encoder.write_all(&bytes).expect("gzip");
            let compressed = encoder.finish().expect("gzip");
            std::fs::write(&gz_path, &compressed).expect("cannot write a compressed file");
            format!("include_bytes!({:?})", gz_path.display().to_string())
        } else {
            "&[]".to_owned()
        };
        table.push_str(&format!(
            "    ({url:?}, {mime:?}, include_bytes!({:?}), {gz}),\n",
            path.display().to_string()
        ));
    }
    table.push_str("];\n");
    std::fs::write(out.join("ui_assets.rs"), table).expect("cannot write ui_assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("cannot read the bundle") {
        let path = entry.expect("cannot read the bundle").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("inside the bundle");
            let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            files.push((url, path));
        }
    }
}

fn content_type(url: &str) -> &'static str {
    match url.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}
