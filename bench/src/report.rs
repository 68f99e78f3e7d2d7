//! Writing figures into the documents that hold them: a section of BENCHMARKS.md per tool, the
//! whole of RELIABILITY.md (nothing in it is written by hand, so nothing in it goes stale).

use anyhow::Context;
use camino::Utf8PathBuf;
use xtask::project_root;

/// A Markdown file at the workspace root that the tools write, and its title when it is new.
pub struct Document {
    pub file: &'static str,
    pub title: &'static str,
}

pub const BENCHMARKS: Document = Document {
    file: "BENCHMARKS.md",
    title: "# Benchmarks",
};

pub const RELIABILITY: Document = Document {
    file: "RELIABILITY.md",
    title: "# Reliability",
};

impl Document {
    pub fn path(&self) -> Utf8PathBuf {
        project_root().join(self.file)
    }

    /// Replaces the section that `section`'s first line heads (or appends it), leaving the rest
    /// of the file as it was.
    pub fn write_section(&self, section: &str) -> anyhow::Result<()> {
        let file = self.path();
        let old = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => format!("{}\n", self.title),
            Err(err) => return Err(err).with_context(|| format!("reading {file}")),
        };
        let heading = section.lines().next().unwrap_or_default();
        self.write_file(&replace_section(&old, heading, section))
    }

    /// Replaces the whole file with `text`.
    pub fn write(&self, text: &str) -> anyhow::Result<()> {
        self.write_file(text)
    }

    fn write_file(&self, text: &str) -> anyhow::Result<()> {
        let file = self.path();
        std::fs::write(&file, text).with_context(|| format!("writing {file}"))?;
        println!("(written to {file})");
        Ok(())
    }
}

/// `doc` with the section under `heading` (up to the next heading of the same or a higher level)
/// replaced by `section`, or with `section` appended when there is none.
pub fn replace_section(doc: &str, heading: &str, section: &str) -> String {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let is_heading_at_most = |line: &str| {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        (1..=level).contains(&hashes) && line[hashes..].starts_with(' ')
    };
    let lines: Vec<&str> = doc.lines().collect();
    let section = section.trim_end();
    match lines.iter().position(|line| line.trim_end() == heading) {
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|line| is_heading_at_most(line))
                .map_or(lines.len(), |offset| start + 1 + offset);
            let mut out: Vec<&str> = lines[..start].to_vec();
            out.push(section);
            if end < lines.len() {
                out.push("");
                out.extend(&lines[end..]);
            }
            out.join("\n") + "\n"
        }
        None => format!("{}\n\n{section}\n", doc.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECTION: &str = "## Container images";

    #[test]
    fn the_section_is_replaced_in_place_and_others_are_kept() {
        let doc = "# Benchmarks\n\n## Binaries\n\nold dist\n\n## Container images\n\nold\n\n### detail\n\nold too\n\n## Later\n\nkept\n";
        let new = replace_section(doc, SECTION, "## Container images\n\nnew\n");
        assert_eq!(
            new,
            "# Benchmarks\n\n## Binaries\n\nold dist\n\n## Container images\n\nnew\n\n## Later\n\nkept\n"
        );
        assert_eq!(
            replace_section(&new, SECTION, "## Container images\n\nnew\n"),
            new,
            "rerunnable"
        );
    }

    #[test]
    fn a_missing_section_is_appended() {
        assert_eq!(
            replace_section(
                "# Benchmarks\n\n## Binaries\n\nx\n",
                SECTION,
                "## Container images\n\ny"
            ),
            "# Benchmarks\n\n## Binaries\n\nx\n\n## Container images\n\ny\n"
        );
        let at_end = replace_section(
            "# B\n\n## Container images\n\nold\n",
            SECTION,
            "## Container images\n\nnew\n",
        );
        assert_eq!(at_end, "# B\n\n## Container images\n\nnew\n");
    }
}
