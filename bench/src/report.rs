//! Writing figures into the documents that hold them: a section of BENCHMARKS.md per tool, the
//! whole of RELIABILITY.md but for its hand-written sections, which a rewrite keeps.

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

    /// Replaces the whole file with `text`, but keeps the `## ` sections of the old file that
    /// `text` has no heading for (hand-written ones, such as RELIABILITY.md's "Abusive clients"):
    /// they follow `text`'s sections, in their old order. See [`keep_other_sections`].
    pub fn write(&self, text: &str) -> anyhow::Result<()> {
        let file = self.path();
        let text = match std::fs::read_to_string(&file) {
            Ok(old) => keep_other_sections(&old, text),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => text.to_owned(),
            Err(err) => return Err(err).with_context(|| format!("reading {file}")),
        };
        self.write_file(&text)
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

/// `generated`, followed by every `## ` section of `old` whose heading line `generated` does not
/// have, in `old`'s order. A section runs from its heading to the next `# ` or `## ` heading
/// outside a fenced code block; what `old` has before its first `## ` (the title and
/// introduction) is `generated`'s to write. Rerunnable: a second rewrite with the same
/// `generated` changes nothing. A section the generator used to write under a heading it no
/// longer writes is kept too: delete it by hand.
pub fn keep_other_sections(old: &str, generated: &str) -> String {
    let generated_headings: Vec<&str> = level_2_sections(generated)
        .into_iter()
        .map(|section| section[0].trim_end())
        .collect();
    let mut out = generated.trim_end().to_owned();
    for section in level_2_sections(old) {
        if generated_headings.contains(&section[0].trim_end()) {
            continue;
        }
        let text = section.join("\n");
        out.push_str("\n\n");
        out.push_str(text.trim_end());
    }
    out.push('\n');
    out
}

/// The `## ` sections of `doc`, each as its lines from its heading up to the next `# ` or `## `
/// heading outside a fenced code block.
fn level_2_sections(doc: &str) -> Vec<Vec<&str>> {
    let mut sections: Vec<Vec<&str>> = Vec::new();
    let mut in_section = false;
    let mut fence: Option<&str> = None;
    for line in doc.lines() {
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
            }
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
        } else if line.starts_with("## ") {
            sections.push(Vec::new());
            in_section = true;
        } else if line.starts_with("# ") {
            in_section = false;
        }
        if in_section {
            sections.last_mut().expect("a section began").push(line);
        }
    }
    sections
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

    #[test]
    fn a_rewrite_keeps_the_sections_it_does_not_write() {
        let old = "# Reliability\n\nold intro\n\n## Summary\n\nold\n\n## 1. Hung mount\n\nold 1\n\n### detail\n\nold too\n\n## By hand\n\nkept\n\n```console\n# not a heading\n## nor this\n```\n\nstill kept\n\n## 2. Dead daemon\n\nold 2\n\n## Also by hand\n\nkept too\n\n";
        let generated = "# Reliability\n\nnew intro\n\n## Summary\n\nnew\n\n## 1. Hung mount\n\nnew 1\n\n## 2. Dead daemon\n\nnew 2\n";
        let new = keep_other_sections(old, generated);
        assert_eq!(
            new,
            "# Reliability\n\nnew intro\n\n## Summary\n\nnew\n\n## 1. Hung mount\n\nnew 1\n\n## 2. Dead daemon\n\nnew 2\n\n## By hand\n\nkept\n\n```console\n# not a heading\n## nor this\n```\n\nstill kept\n\n## Also by hand\n\nkept too\n"
        );
        assert_eq!(keep_other_sections(&new, generated), new, "rerunnable");
    }

    #[test]
    fn a_rewrite_drops_what_it_writes_and_what_has_no_section() {
        // The generated sections replace theirs wherever they were, even under another title.
        assert_eq!(
            keep_other_sections(
                "# Old title\n\nintro\n\n## Summary\n\nold\n",
                "# Reliability\n\n## Summary\n\nnew\n"
            ),
            "# Reliability\n\n## Summary\n\nnew\n"
        );
        // A `# ` heading ends a section; what follows it belongs to no `## ` section.
        assert_eq!(
            keep_other_sections(
                "# R\n\n## Notes\n\nkept\n\n# Appendix\n\ndropped\n",
                "# R\n\nnew\n"
            ),
            "# R\n\nnew\n\n## Notes\n\nkept\n"
        );
        assert_eq!(keep_other_sections("", "# R\n\nnew"), "# R\n\nnew\n");
    }
}
