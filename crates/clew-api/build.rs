//! Builds the web UI (`web/` at the workspace root) with npm and Vite into `OUT_DIR/web`, and
//! writes `OUT_DIR/web_assets.rs`: every built file, as is and gzip-compressed, for `ui.rs` to
//! embed. `CLEW_WEB_DIST=<dir>` embeds an already built UI instead (no Node.js needed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

use flate2::write::GzEncoder;
use flate2::Compression;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let web = manifest.join("../../web");
    for input in ["src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json"] {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=CLEW_WEB_DIST");

    let dist = match env::var_os("CLEW_WEB_DIST") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let dist = out.join("web");
            build(&web, &dist);
            dist
        }
    };
    let mut files = Vec::new();
    collect(&dist, &dist, &mut files);
    files.sort();
    if !files.iter().any(|f| f == "index.html") {
        fail(&format!("{} holds no index.html: the UI was not built", dist.display()));
    }

    let gz_dir = out.join("web-gz");
    let mut table = String::from("/// The built UI.\n");
    table.push_str("pub(crate) static ASSETS: &[Asset] = &[\n");
    for file in &files {
        let source = dist.join(file);
        let bytes = fs::read(&source).unwrap_or_else(|e| fail(&format!("read {}: {e}", source.display())));
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        let gz = encoder
            .write_all(&bytes)
            .and_then(|()| encoder.finish())
            .unwrap_or_else(|e| fail(&format!("gzip {file}: {e}")));
        let compressed = if gz.len() + 64 < bytes.len() {
            let target = gz_dir.join(format!("{file}.gz"));
            fs::create_dir_all(target.parent().expect("a file has a parent"))
                .and_then(|()| fs::write(&target, &gz))
                .unwrap_or_else(|e| fail(&format!("write {}: {e}", target.display())));
            format!("Some(include_bytes!({:?}))", target.display().to_string())
        } else {
            "None".to_owned()
        };
        table.push_str(&format!(
            "    Asset {{ path: {file:?}, content: include_bytes!({:?}), gzip: {compressed} }},\n",
            source.display().to_string()
        ));
    }
    table.push_str("];\n");
    let target = out.join("web_assets.rs");
    fs::write(&target, table).unwrap_or_else(|e| fail(&format!("write {}: {e}", target.display())));
}

/// `npm ci` when the installed packages are older than the lock file, then `vite build`.
fn build(web: &Path, dist: &Path) {
    let lock = web.join("package-lock.json");
    let installed = web.join("node_modules/.package-lock.json");
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&installed).is_none() || modified(&installed) < modified(&lock) {
        run(web, "npm", &["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    }
    let out = dist.to_str().unwrap_or_else(|| fail("OUT_DIR is not UTF-8"));
    run(web, "npm", &["run", "--silent", "build", "--", "--outDir", out, "--emptyOutDir", "--logLevel", "warn"]);
}

fn run(dir: &Path, program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).current_dir(dir).status().unwrap_or_else(|e| {
        fail(&format!(
            "cannot run `{program}` ({e}). Building Clew's web UI needs Node.js 20.19 or newer with \
             npm; or set CLEW_WEB_DIST to a directory with a built UI"
        ))
    });
    if !status.success() {
        fail(&format!("`{program} {}` in {} failed ({status})", args.join(" "), dir.display()));
    }
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("read {}: {e}", dir.display())));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| fail(&format!("read {}: {e}", dir.display()))).path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("under the root").to_string_lossy().replace('\\', "/");
            files.push(relative);
        }
    }
}

fn fail(message: &str) -> ! {
    panic!("building the web UI: {message}");
}
