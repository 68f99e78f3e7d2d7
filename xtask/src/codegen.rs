//! `cargo xtask codegen`: the files generated from the xtask's own tables, written into the
//! checkout (committed, so that they can be read and built by hand), and checked by a test.

use anyhow::Context;
use camino::Utf8Path;

use crate::docker::dockerfile::{self, Image};
use crate::docker::plan::{DEV_DOCKERFILE, RELEASE_DOCKERFILE};
use crate::project_root;

/// Rewrites each generated file that is not up to date; returns them, each with how it differed.
pub fn update() -> anyhow::Result<Vec<String>> {
    let mut stale = Vec::new();
    for (name, contents) in [
        (RELEASE_DOCKERFILE, dockerfile::generate(Image::Release)),
        (DEV_DOCKERFILE, dockerfile::generate(Image::Development)),
    ] {
        let file = project_root().join(name);
        if let Some(difference) = difference(&file, &contents)? {
            std::fs::write(&file, &contents).with_context(|| format!("writing {file}"))?;
            stale.push(format!("{name} ({difference})"));
        }
    }
    Ok(stale)
}

/// How `file` differs from `contents`, by its first differing line; `None` when it does not.
pub fn difference(file: &Utf8Path, contents: &str) -> anyhow::Result<Option<String>> {
    let old = match std::fs::read_to_string(file) {
        Ok(old) => old,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("reading {file}")),
    };
    if old == contents {
        return Ok(None);
    }
    let (mut old_lines, mut new_lines) = (old.lines(), contents.lines());
    for number in 1.. {
        match (old_lines.next(), new_lines.next()) {
            (Some(was), Some(wanted)) if was == wanted => {}
            (None, None) => break,
            (was, wanted) => {
                return Ok(Some(format!(
                    "line {number} is `{}`, generated: `{}`",
                    was.unwrap_or("(end of file)"),
                    wanted.unwrap_or("(end of file)")
                )));
            }
        }
    }
    Ok(Some("the line endings differ".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As rust-analyzer's `ensure_file_contents`: a stale file is rewritten, and the test fails
    /// so that the new contents get committed.
    #[test]
    fn generated_files_are_up_to_date() {
        let stale = update().unwrap();
        assert!(
            stale.is_empty(),
            "not up to date, now regenerated: {}; commit the change",
            stale.join(", ")
        );
    }

    #[test]
    fn a_difference_names_the_first_line_that_differs() {
        let dir = std::env::temp_dir().join(format!("xtask-codegen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = Utf8Path::from_path(&dir).unwrap().join("Dockerfile");
        std::fs::write(&file, "FROM scratch\nARG TARGETARCH=amd64\n").unwrap();
        assert_eq!(
            difference(&file, "FROM scratch\nARG TARGETARCH\n")
                .unwrap()
                .unwrap(),
            "line 2 is `ARG TARGETARCH=amd64`, generated: `ARG TARGETARCH`"
        );
        assert_eq!(
            difference(&file, "FROM scratch\nARG TARGETARCH=amd64\nUSER 1\n")
                .unwrap()
                .unwrap(),
            "line 3 is `(end of file)`, generated: `USER 1`"
        );
        assert_eq!(
            difference(&file, "FROM scratch\nARG TARGETARCH=amd64\n").unwrap(),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
