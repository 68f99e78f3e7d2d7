//! `cargo xtask bench docker`: how long the release image takes from dist's binaries with each
//! engine here, how big each platform's image is, and dist + image end to end from an empty
//! target dir. Rewrites the "## Container images" section of BENCHMARKS.md.
//!
//! Everything runs through `cargo xtask` as a person runs it, so the times include cargo's own
//! start-up. The cold run builds in target/bench/docker, leaving the main target dir alone.

use std::time::Duration;

use anyhow::{Context, bail};
use camino::Utf8Path;
use xshell::{Shell, cmd};
use xtask::dist::human_size;
use xtask::docker::plan::platform;
use xtask::docker::remove_podman_list;
use xtask::project_root;
use xtask::targets::Arch;

use crate::measure::{cores, median, seconds, timed};
use crate::report::BENCHMARKS;

const RERUN: &str = "cargo xtask bench docker";

pub const SECTION: &str = "## Container images";
const REPOSITORY: &str = "localhost/mount-monitor-bench";

/// Time `cargo xtask docker --release [--no-build]` per engine and report image sizes; writes the
/// "## Container images" section of BENCHMARKS.md
#[derive(clap::Args, Debug, Clone)]
pub struct Docker {
    /// Runs of each `--no-build` build; the median is reported
    #[arg(long, default_value_t = 5)]
    pub runs: usize,

    /// Leave out dist + image from an empty target dir (two release builds: minutes)
    #[arg(long)]
    pub no_cold: bool,
}

struct EngineRow {
    name: &'static str,
    version: String,
    no_build: Vec<Duration>,
    warm: Duration,
    sizes: Vec<(Arch, u64)>,
}

impl Docker {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        let root = project_root();
        let tag = |engine: &str| format!("{REPOSITORY}:{engine}");
        // The binaries the --no-build runs reuse.
        cmd!(sh, "cargo xtask dist")
            .run()
            .context("cargo xtask dist failed (output above)")?;

        let mut rows = Vec::new();
        for name in ["podman", "docker"] {
            let build = |extra: &[&str]| {
                let tag = tag(name);
                cmd!(
                    sh,
                    "cargo xtask docker --release --engine {name} --tag {tag} {extra...}"
                )
                .quiet()
                .ignore_stdout()
                .ignore_stderr()
            };
            if build(&["--no-build", "--dry-run"]).run().is_err() {
                eprintln!(
                    "note: `--engine {name}` is not usable here (see `cargo xtask docker --release --no-build --engine {name} --dry-run`); left out"
                );
                continue;
            }
            // One run first, so every timed run finds the engine's storage warm.
            build(&["--no-build"]).run().with_context(|| format!("building with {name} failed: rerun `cargo xtask docker --release --no-build --engine {name}` to see why"))?;
            let no_build = (0..self.runs.max(1))
                .map(|_| timed(RERUN, || build(&["--no-build"]).run()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let warm = timed(RERUN, || build(&[]).run())?;
            rows.push(EngineRow {
                name,
                version: engine_version(sh, name),
                sizes: image_sizes(sh, name, &tag(name))?,
                no_build,
                warm,
            });
        }
        let Some(first) = rows.first() else {
            bail!("neither podman nor docker can build here: run `sudo .ci/setup`, or set DOCKER");
        };

        let cold = if self.no_cold {
            None
        } else {
            let bench_dir = root.join("target/bench/docker");
            sh.remove_path(&bench_dir)
                .with_context(|| format!("removing {bench_dir}: delete it by hand"))?;
            let engine = first.name;
            let tag = tag("cold");
            let duration = timed(RERUN, || {
                cmd!(
                    sh,
                    "cargo xtask docker --release --engine {engine} --tag {tag}"
                )
                .env("CARGO_TARGET_DIR", &bench_dir)
                .run()
            })?;
            Some((engine, duration))
        };

        for row in &rows {
            remove_images(sh, row.name, &tag(row.name));
        }
        if let Some((engine, _)) = cold {
            remove_images(sh, engine, &tag("cold"));
        }

        let dist_dir = root.join("target/dist");
        let section = report(
            &rows,
            cold,
            &dist_dir,
            &cmd!(sh, "rustc --version").quiet().read()?,
        )?;
        println!("{section}");
        BENCHMARKS.write_section(&section)?;
        Ok(())
    }
}

fn report(
    rows: &[EngineRow],
    cold: Option<(&str, Duration)>,
    dist_dir: &Utf8Path,
    rustc: &str,
) -> anyhow::Result<String> {
    let engines: Vec<String> = rows.iter().map(|row| row.version.clone()).collect();
    let mut text = format!(
        "{SECTION}\n\nMeasured with `cargo xtask bench docker` on {} cores, {rustc}, engines: {}. \
         The release image only copies dist's binaries, so building it takes about a second; the \
         compile is all in dist.\n\n",
        cores(),
        engines.join(", ")
    );
    let names: Vec<&str> = rows.iter().map(|row| row.name).collect();
    text.push_str(&format!("| what | {} |\n", names.join(" | ")));
    text.push_str(&format!("| --- |{}\n", " --- |".repeat(rows.len())));
    let runs = rows.first().map_or(0, |row| row.no_build.len());
    let cells: Vec<String> = rows
        .iter()
        .map(|row| {
            format!(
                "{} (fastest {})",
                seconds(median(&row.no_build)),
                seconds(row.no_build.iter().min().copied().unwrap_or_default())
            )
        })
        .collect();
    text.push_str(&format!(
        "| `cargo xtask docker --release --no-build`, median of {runs} | {} |\n",
        cells.join(" | ")
    ));
    let cells: Vec<String> = rows.iter().map(|row| seconds(row.warm)).collect();
    text.push_str(&format!(
        "| `cargo xtask docker --release`, dist up to date (checks and runs both binaries again) | {} |\n",
        cells.join(" | ")
    ));
    if let Some((engine, duration)) = cold {
        let cells: Vec<String> = rows
            .iter()
            .map(|row| {
                if row.name == engine {
                    seconds(duration)
                } else {
                    "".to_owned()
                }
            })
            .collect();
        text.push_str(&format!(
            "| `cargo xtask docker --release`, empty target dir: dist (both release builds) + image | {} |\n",
            cells.join(" | ")
        ));
    }
    text.push_str("\n| platform | binary |");
    for row in rows {
        text.push_str(&format!(" image ({}) |", row.name));
    }
    text.push_str(&format!("\n| --- | --- |{}\n", " --- |".repeat(rows.len())));
    for arch in Arch::ALL {
        let file = dist_dir.join(arch.artifact_name());
        let binary = std::fs::metadata(&file)
            .with_context(|| format!("reading {file}"))?
            .len();
        text.push_str(&format!("| {} | {} |", platform(arch), human_size(binary)));
        for row in rows {
            let size = row
                .sizes
                .iter()
                .find(|(a, _)| *a == arch)
                .map(|(_, size)| *size);
            text.push_str(&format!(" {} |", size.map_or_else(String::new, human_size)));
        }
        text.push('\n');
    }
    text.push_str(
        "\nImage sizes are what `image inspect` reports (uncompressed); the budget is 5 MiB.\n",
    );
    Ok(text)
}

/// Uncompressed size of each platform's image built under `tag`.
fn image_sizes(sh: &Shell, engine: &str, tag: &str) -> anyhow::Result<Vec<(Arch, u64)>> {
    let size_of = |program: &str, image: &str| -> anyhow::Result<u64> {
        let format = "{{.Size}}";
        let size = cmd!(sh, "{program} image inspect --format {format} {image}")
            .quiet()
            .read()
            .with_context(|| format!("inspecting {image}"))?;
        size.trim().parse().with_context(|| {
            format!("{program} image inspect printed {size:?} as the size of {image}")
        })
    };
    if engine == "podman" {
        let list = cmd!(sh, "podman manifest inspect {tag}").quiet().read()?;
        let list: serde_json::Value =
            serde_json::from_str(&list).context("podman manifest inspect")?;
        let repository = tag
            .rsplit_once(':')
            .map_or(tag, |(repository, _)| repository);
        let mut sizes = Vec::new();
        for entry in list["manifests"].as_array().into_iter().flatten() {
            let (Some(arch), Some(digest)) = (
                entry["platform"]["architecture"]
                    .as_str()
                    .and_then(Arch::from_docker_arch),
                entry["digest"].as_str(),
            ) else {
                continue;
            };
            sizes.push((arch, size_of("podman", &format!("{repository}@{digest}"))?));
        }
        Ok(sizes)
    } else {
        let docker = std::env::var("DOCKER").unwrap_or_else(|_| "docker".to_owned());
        Arch::ALL
            .iter()
            .map(|&arch| Ok((arch, size_of(&docker, &format!("{tag}-{arch}"))?)))
            .collect()
    }
}

/// Best effort: the bench's images go again (podman: the list and the images it holds).
fn remove_images(sh: &Shell, engine: &str, tag: &str) {
    if engine == "podman" {
        let _ = remove_podman_list(sh, "podman", tag);
    } else {
        let docker = std::env::var("DOCKER").unwrap_or_else(|_| "docker".to_owned());
        let images: Vec<String> = Arch::ALL
            .iter()
            .map(|arch| format!("{tag}-{arch}"))
            .collect();
        let _ = cmd!(sh, "{docker} rmi {images...}")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run();
    }
}

fn engine_version(sh: &Shell, engine: &str) -> String {
    let program = match engine {
        "docker" => std::env::var("DOCKER").unwrap_or_else(|_| "docker".to_owned()),
        _ => engine.to_owned(),
    };
    cmd!(sh, "{program} --version")
        .quiet()
        .read()
        .map(|version| {
            version
                .split(',')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|_| engine.to_owned())
}
