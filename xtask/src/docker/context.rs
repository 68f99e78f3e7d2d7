//! The release build's context: dist's binaries, checked against SHA256SUMS and as ELF files of
//! their platforms, staged next to `Dockerfile.release` and nothing else.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use camino::{Utf8Path, Utf8PathBuf};

use crate::docker::dockerfile::{self, Image};
use crate::docker::plan::RELEASE_DOCKERFILE;
use crate::targets::Arch;
use crate::{checksums, elf};

/// `SHA256SUMS` as `sha256sum` writes it: file name → lowercase hex digest.
pub fn parse_sums(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut sums = BTreeMap::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
    {
        // Two spaces in text mode, ` *` in binary mode.
        let parsed = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .filter(|(hex, _)| hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()));
        let Some((hex, name)) = parsed else {
            return Err(format!(
                "line {} is not `<sha256 hex>  <file>`: {line:?}",
                number + 1
            ));
        };
        sums.insert(name.to_owned(), hex.to_ascii_lowercase());
    }
    Ok(sums)
}

/// Each binary of `archs` in `dir` is listed in its SHA256SUMS with this content, and is a static
/// executable of its platform.
pub fn verify_dist(dir: &Utf8Path, archs: &[Arch]) -> anyhow::Result<()> {
    let rebuild = "run `cargo xtask dist` (or leave out --no-build, which runs it)";
    let sums_file = dir.join(checksums::FILE_NAME);
    let text = std::fs::read_to_string(&sums_file)
        .with_context(|| format!("reading {sums_file}: {rebuild}"))?;
    let sums = parse_sums(&text).map_err(|why| anyhow::anyhow!("{sums_file}: {why}: {rebuild}"))?;
    for &arch in archs {
        let name = arch.artifact_name();
        let file = dir.join(&name);
        let Some(expected) = sums.get(&name) else {
            bail!("{sums_file} does not list {name}: {rebuild}");
        };
        let bytes = std::fs::read(&file).with_context(|| format!("reading {file}: {rebuild}"))?;
        if &checksums::sha256_hex(&bytes) != expected {
            bail!(
                "{file} does not match its line in {sums_file} (changed after dist wrote it?): {rebuild}"
            );
        }
        let problems = elf::static_executable_problems(&bytes, arch);
        if !problems.is_empty() {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            bail!(
                "{file} is not a static {arch} executable ({}): {rebuild}",
                problems.join("; ")
            );
        }
    }
    Ok(())
}

/// Recreates `dir` with exactly `files` in it, after checking that the release Dockerfile among
/// them is the generated one (whose rules the tests check).
pub fn stage(dir: &Utf8Path, files: &[Utf8PathBuf]) -> anyhow::Result<()> {
    for file in files {
        if file.file_name() == Some(RELEASE_DOCKERFILE)
            && let Some(difference) =
                dockerfile::difference(file, &dockerfile::generate(Image::Release))?
        {
            bail!(
                "{file} is not the generated release Dockerfile ({difference}): edit \
                 xtask/src/docker/dockerfile.rs instead, and run `cargo xtask codegen`"
            );
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("removing the old {dir}: delete it by hand"));
        }
        _ => {}
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    for file in files {
        let name = file
            .file_name()
            .with_context(|| format!("{file} has no file name"))?;
        std::fs::copy(file, dir.join(name))
            .with_context(|| format!("copying {file} into {dir}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> Utf8PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-docker-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Utf8PathBuf::try_from(dir).unwrap()
    }

    #[test]
    fn sums_are_read_as_sha256sum_writes_them() {
        let amd = checksums::sha256_hex(b"amd");
        let text = checksums::format(&[("mount-monitor-linux-amd64".into(), amd.clone())]);
        let sums = parse_sums(&text).unwrap();
        assert_eq!(sums["mount-monitor-linux-amd64"], amd);
        let err = parse_sums("deadbeef  mount-monitor-linux-amd64\n").unwrap_err();
        assert!(err.starts_with("line 1 "), "{err}");
    }

    #[test]
    fn dist_is_checked_against_its_sums_and_its_platform() {
        let dir = temp_dir("verify");
        let fixtures = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for arch in Arch::ALL {
            std::fs::copy(
                fixtures.join(format!("static-{arch}")),
                dir.join(arch.artifact_name()),
            )
            .unwrap();
        }
        let err = verify_dist(&dir, &Arch::ALL).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("reading {dir}/SHA256SUMS")),
            "{err}"
        );
        assert!(err.contains("run `cargo xtask dist`"), "{err}");

        let entries: Vec<(String, String)> = Arch::ALL
            .iter()
            .map(|arch| {
                let bytes = std::fs::read(dir.join(arch.artifact_name())).unwrap();
                (arch.artifact_name(), checksums::sha256_hex(&bytes))
            })
            .collect();
        std::fs::write(dir.join("SHA256SUMS"), checksums::format(&entries)).unwrap();
        verify_dist(&dir, &Arch::ALL).unwrap();

        // The right sums, but the arm64 file in the amd64 name: caught by its ELF header.
        std::fs::copy(
            dir.join("mount-monitor-linux-arm64"),
            dir.join("mount-monitor-linux-amd64"),
        )
        .unwrap();
        let swapped = vec![
            (entries[0].0.clone(), entries[1].1.clone()),
            entries[1].clone(),
        ];
        std::fs::write(dir.join("SHA256SUMS"), checksums::format(&swapped)).unwrap();
        let err = verify_dist(&dir, &[Arch::Amd64]).unwrap_err().to_string();
        assert!(err.contains("is not a static amd64 executable"), "{err}");

        std::fs::write(dir.join("mount-monitor-linux-arm64"), b"changed").unwrap();
        let err = verify_dist(&dir, &[Arch::Arm64]).unwrap_err().to_string();
        assert!(
            err.contains("mount-monitor-linux-arm64 does not match its line"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_context_holds_exactly_the_staged_files() {
        let dir = temp_dir("stage");
        let context = dir.join("context");
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(context.join("left-over"), b"old").unwrap();
        let dockerfile = crate::project_root().join(RELEASE_DOCKERFILE);
        let binary = dir.join("mount-monitor-linux-arm64");
        std::fs::write(&binary, b"binary").unwrap();

        stage(&context, &[dockerfile.clone(), binary]).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&context)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["Dockerfile.release", "mount-monitor-linux-arm64"]);

        let broken = dir.join(RELEASE_DOCKERFILE);
        let text = std::fs::read_to_string(&dockerfile).unwrap();
        std::fs::write(
            &broken,
            text.replace("ARG TARGETARCH\n", "ARG TARGETARCH=amd64\n"),
        )
        .unwrap();
        let err = stage(&context, &[broken]).unwrap_err().to_string();
        assert!(err.contains("ARG TARGETARCH=amd64"), "{err}");
        assert!(err.contains("run `cargo xtask codegen`"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
