//! Embeds the web console's files into the binary: our own (`console/src/`) and the parts of
//! Bootstrap Italia the console uses (its CSS, icon sprite, fonts and licence), taken from
//! the npm package pinned by `console/package-lock.json`.
//!
//! Where Bootstrap Italia comes from, first found wins: `SIGESS_CONSOLE_NODE_MODULES` (a
//! `node_modules` folder), `console/node_modules` (after `npm ci` there), or an `npm ci`
//! this script runs into `OUT_DIR` from the committed lock file (npm and the registry
//! reachable). Without any of them the build still succeeds: the console then serves its
//! pages unstyled and says so, and a warning names the fix.
use std::{
    env, fs,
    path::{Path, PathBuf},
    process::Command,
};

/// Files of the `bootstrap-italia` package, and the name each is served with under
/// `/console/assets/`.
const BI_FILES: &[(&str, &str)] = &[
    ("dist/css/bootstrap-italia.min.css", "bi/bootstrap-italia.min.css"),
    ("dist/svg/sprites.svg", "bi/sprites.svg"),
    ("dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-300.woff2", "bi/fonts/titillium-web-300.woff2"),
    ("dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-regular.woff2", "bi/fonts/titillium-web-400.woff2"),
    ("dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-italic.woff2", "bi/fonts/titillium-web-400-italic.woff2"),
    ("dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-600.woff2", "bi/fonts/titillium-web-600.woff2"),
    ("dist/fonts/Titillium_Web/titillium-web-v10-latin-ext_latin-700.woff2", "bi/fonts/titillium-web-700.woff2"),
    ("dist/fonts/Titillium_Web/OFL.txt", "bi/fonts/OFL-Titillium-Web.txt"),
    ("dist/fonts/Roboto_Mono/roboto-mono-v13-latin-ext_latin-regular.woff2", "bi/fonts/roboto-mono-400.woff2"),
    ("dist/fonts/Roboto_Mono/LICENSE.txt", "bi/fonts/LICENSE-Roboto-Mono.txt"),
    ("dist/fonts/Lora/lora-v20-latin-ext_latin-regular.woff2", "bi/fonts/lora-400.woff2"),
    ("dist/fonts/Lora/lora-v20-latin-ext_latin-700.woff2", "bi/fonts/lora-700.woff2"),
    ("dist/fonts/Lora/OFL.txt", "bi/fonts/OFL-Lora.txt"),
    ("LICENSE", "bi/LICENSE.txt"),
    ("package.json", "bi/package.json"),
];

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let console = manifest.join("console");
    println!("cargo:rerun-if-changed=console/src");
    println!("cargo:rerun-if-changed=console/package.json");
    println!("cargo:rerun-if-changed=console/package-lock.json");
    // Watched only when present: cargo reruns a script on every build for a missing path.
    if console.join("node_modules/bootstrap-italia/package.json").is_file() {
        println!("cargo:rerun-if-changed=console/node_modules/bootstrap-italia/package.json");
    }
    println!("cargo:rerun-if-env-changed=SIGESS_CONSOLE_NODE_MODULES");

    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    let own = console.join("src");
    let mut names: Vec<_> = fs::read_dir(&own).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    names.sort();
    for p in names.into_iter().filter(|p| p.is_file()) {
        if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            entries.push((name.to_string(), p.clone()));
        }
    }
    match bootstrap_italia(&console, &out) {
        Some(pkg) => {
            for (from, name) in BI_FILES {
                entries.push(((*name).to_string(), pkg.join(from)));
            }
        }
        None => println!(
            "cargo:warning=Bootstrap Italia not found: the web console will be unstyled. Run `npm ci` in gateway/console (or set SIGESS_CONSOLE_NODE_MODULES) and build again."
        ),
    }
    let mut code = String::from("/// Files served under `/console/assets/`: name and bytes.\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (name, path) in &entries {
        code.push_str(&format!("    ({name:?}, include_bytes!({:?})),\n", path.display().to_string()));
    }
    code.push_str("];\n");
    fs::write(out.join("console_assets.rs"), code).expect("writing console_assets.rs");
}

/// The `bootstrap-italia` package folder holding every file the console embeds.
fn bootstrap_italia(console: &Path, out: &Path) -> Option<PathBuf> {
    let complete = |nm: PathBuf| {
        let pkg = nm.join("bootstrap-italia");
        BI_FILES.iter().all(|(f, _)| pkg.join(f).is_file()).then_some(pkg)
    };
    if let Some(nm) = env::var_os("SIGESS_CONSOLE_NODE_MODULES") {
        return complete(PathBuf::from(nm));
    }
    if let Some(p) = complete(console.join("node_modules")) {
        return Some(p);
    }
    let npm_dir = out.join("npm");
    if let Some(p) = complete(npm_dir.join("node_modules")) {
        return Some(p);
    }
    // A clean install from the committed lock file, production dependencies only, no
    // install scripts: the same bytes on every machine.
    fs::create_dir_all(&npm_dir).ok()?;
    fs::copy(console.join("package.json"), npm_dir.join("package.json")).ok()?;
    fs::copy(console.join("package-lock.json"), npm_dir.join("package-lock.json")).ok()?;
    let status = Command::new("npm")
        .args(["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&npm_dir)
        .status();
    match status {
        Ok(s) if s.success() => complete(npm_dir.join("node_modules")),
        Ok(s) => {
            println!("cargo:warning=npm ci for the console's assets failed ({s})");
            None
        }
        Err(e) => {
            println!("cargo:warning=npm not available for the console's assets ({e})");
            None
        }
    }
}
