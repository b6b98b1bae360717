//! The guide's TypeScript worker, the benchmark's baseline, built the way its README says:
//! package.json, package-lock.json, wrangler.toml and src/ are copied from the read-only seed
//! (`../shared/seed/ts-worker` beside the repository, or `$WACHT_TS_WORKER_SEED`) into
//! `target/ts-worker/build/`, `npm ci` installs its locked runtime dependencies there, and
//! `wrangler deploy --dry-run --outdir target/ts-worker/dist` bundles the upload (`index.js`).
//!
//! The project's own toolchain does the work (worker/node_modules/.bin first on PATH: Node 22,
//! wrangler, workerd), so `npm ci --omit=dev` leaves out the seed's own wrangler and workerd.
//! Nothing is written into the seed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context as _, bail, ensure};

use super::workerd::repo_root;

/// The bundled baseline.
pub struct TsWorker {
    /// `target/ts-worker/dist/index.js`: the whole worker as one ES module.
    pub index_js: PathBuf,
    /// `compatibility_date` from the seed's wrangler.toml.
    pub compatibility_date: String,
}

/// Where the seed is expected.
pub fn seed_dir() -> PathBuf {
    std::env::var_os("WACHT_TS_WORKER_SEED").map_or_else(
        || repo_root().join("../shared/seed/ts-worker"),
        PathBuf::from,
    )
}

/// Builds the baseline; `Ok(None)` when the seed is absent.
pub fn build() -> anyhow::Result<Option<TsWorker>> {
    let seed = seed_dir();
    if !seed.join("package.json").is_file() {
        return Ok(None);
    }
    let root = repo_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let base = target.join("ts-worker");
    let build = base.join("build");
    let dist = base.join("dist");
    std::fs::create_dir_all(&build)?;

    // Fresh copies every time (the seed's files are read-only: remove, copy, make writable).
    for file in ["package.json", "package-lock.json", "wrangler.toml"] {
        let _ = std::fs::remove_file(build.join(file));
        copy_file(&seed.join(file), &build.join(file))?;
    }
    let _ = std::fs::remove_dir_all(build.join("src"));
    copy_tree(&seed.join("src"), &build.join("src"))?;

    let bin = root.join("worker/node_modules/.bin");
    ensure!(
        bin.join("wrangler").is_file(),
        "{}/wrangler is missing: run `make worker-build` first",
        bin.display()
    );
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![bin.clone()];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs)?
        }
        None => bin.clone().into_os_string(),
    };
    let run = |program: &Path, args: &[&str]| -> anyhow::Result<Output> {
        let out = Command::new(program)
            .args(args)
            .current_dir(&build)
            .env("PATH", &path)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_SEND_ERROR_REPORTS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        if !out.status.success() {
            bail!(
                "`{} {}` in {} failed ({}):\n{}{}",
                program.display(),
                args.join(" "),
                build.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    };

    // `npm ci` only when the lockfile differs from the one last installed.
    let lock = std::fs::read(build.join("package-lock.json"))?;
    let stamp = build.join("node_modules/.wacht-bench-installed-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        run(
            Path::new("npm"),
            &[
                "ci",
                "--omit=dev",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
            ],
        )?;
        std::fs::write(&stamp, &lock)?;
    }

    let _ = std::fs::remove_dir_all(&dist);
    let outdir = dist.to_string_lossy().into_owned();
    run(
        &bin.join("wrangler"),
        &["deploy", "--dry-run", "--outdir", &outdir],
    )?;
    let index_js = dist.join("index.js");
    ensure!(
        index_js.is_file(),
        "wrangler wrote no {}",
        index_js.display()
    );
    let toml = std::fs::read_to_string(build.join("wrangler.toml"))?;
    let compatibility_date = toml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("compatibility_date"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .context("no compatibility_date in the seed's wrangler.toml")?;
    Ok(Some(TsWorker {
        index_js,
        compatibility_date,
    }))
}

fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    // The seed is read-only; the copies must not be, so the next build can replace them.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o644))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            copy_file(&src, &dst)?;
        }
    }
    Ok(())
}
