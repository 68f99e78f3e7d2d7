//! The documentation's links hold: every relative link in README.md, docs/*.md,
//! ARCHITECTURE.md, RELIABILITY.md and BENCHMARKS.md names a file of the repository, and every
//! `#anchor` a heading of the page it points at (GitHub's slugs); so do the `….md#anchor` and
//! `docs/….md` references in the sources, deploy/ and CI files. The README stays a front page.
//! No root needed.

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use tests::workspace_root;

/// The pages whose links are checked, relative to the repository root: the front page, the
/// reference pages and the documents beside them (ARCHITECTURE.md once it exists).
fn pages() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut pages: Vec<PathBuf> = ["README.md", "RELIABILITY.md", "BENCHMARKS.md"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if root.join("ARCHITECTURE.md").exists() {
        pages.push("ARCHITECTURE.md".into());
    }
    let docs = root.join("docs");
    let mut reference: Vec<PathBuf> = fs::read_dir(&docs)
        .unwrap_or_else(|e| panic!("{}: {e}", docs.display()))
        .map(|entry| entry.expect("a readable docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .map(|path| Path::new("docs").join(path.file_name().expect("a file name")))
        .collect();
    assert!(!reference.is_empty(), "docs/ has no page");
    reference.sort();
    pages.extend(reference);
    pages
}

/// The lines of `text` outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match fence {
            Some(marker) if trimmed.starts_with(marker) => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => lines.push((index + 1, line)),
        }
    }
    lines
}

/// `line` without its inline code spans, which hold examples, not links.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let marker = &rest[start..start + ticks];
        let after = &rest[start + ticks..];
        match after.find(marker) {
            Some(end) => rest = &after[end + ticks..],
            // An unclosed backtick is a literal one.
            None => {
                out.push_str(marker);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// GitHub's anchor for a heading's text: the rendered text lowercased, every character but
/// letters, digits, spaces, `-` and `_` dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let rendered = link_texts(&heading.replace('`', ""));
    rendered
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `text` with each `[label](target)` replaced by its label and emphasis markers dropped.
fn link_texts(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| {
            let target = &after[close + 2..];
            target.find(')').map(|end| (close, close + 2 + end + 1))
        }) {
            Some((close, next)) => {
                out.push_str(&after[..close]);
                rest = &after[next..];
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace('*', "")
}

/// The anchors of a Markdown page's headings, as GitHub makes them (a repeated one gets `-1`,
/// `-2`, …).
fn anchors(text: &str) -> HashSet<String> {
    let mut anchors = HashSet::new();
    for (_, line) in prose_lines(text) {
        let level = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&level) || !line[level..].starts_with(' ') {
            continue;
        }
        let heading = line[level..].trim().trim_end_matches('#').trim();
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while anchors.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        anchors.insert(anchor);
    }
    anchors
}

/// The targets of the inline links and images (`[text](target)`, `![alt](target)`) and of the
/// reference definitions (`[name]: target`) of a page, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut links = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let trimmed = line.trim_start();
        if let Some(definition) = trimmed.strip_prefix('[').and_then(|rest| {
            let (_, target) = rest.split_once("]:")?;
            target.split_whitespace().next()
        }) {
            links.push((number, definition.to_owned()));
            continue;
        }
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or_default();
            let target = target.trim_start_matches('<').trim_end_matches('>');
            links.push((number, target.to_owned()));
            rest = &after[end..];
        }
    }
    links
}

/// `path` with `.` and `..` resolved, or `None` when it leaves the repository.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with a link to `target` from the page `from` (relative to the repository root).
fn broken(root: &Path, from: &Path, target: &str) -> Option<String> {
    let (file, anchor) = match target.split_once('#') {
        Some((file, anchor)) => (file, Some(anchor)),
        None => (target, None),
    };
    let page = if file.is_empty() {
        from.to_path_buf()
    } else {
        let base = from.parent().unwrap_or(Path::new(""));
        match normalize(&base.join(file)) {
            Some(page) => page,
            None => return Some(format!("`{file}` leaves the repository")),
        }
    };
    let absolute = root.join(&page);
    if !absolute.exists() {
        return Some(format!("{} does not exist", page.display()));
    }
    let anchor = anchor?;
    if absolute.extension().is_none_or(|ext| ext != "md") {
        return Some(format!(
            "#{anchor} points into {}, which is not a Markdown page",
            page.display()
        ));
    }
    let text = fs::read_to_string(&absolute).unwrap_or_else(|e| panic!("{page:?}: {e}"));
    (!anchors(&text).contains(anchor)).then(|| {
        format!(
            "{} has no heading whose anchor is #{anchor}",
            page.display()
        )
    })
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

#[test]
fn every_link_of_the_docs_resolves() {
    let root = workspace_root();
    let mut problems = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = fs::read_to_string(root.join(&page))
            .unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        for (line, target) in links(&text) {
            if is_external(&target) {
                continue;
            }
            checked += 1;
            if let Some(problem) = broken(&root, &page, &target) {
                problems.push(format!("{}:{line}: ({target}): {problem}", page.display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links (a heading's anchor is its text lowercased, spaces as `-`, punctuation \
         but `-` and `_` dropped):\n{}",
        problems.join("\n")
    );
    assert!(
        checked > 50,
        "only {checked} links found: is the parser still reading them?"
    );
}

/// The files outside the pages that may point into them: sources, manifests, CI.
fn referring_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = [
        "mount-monitor",
        "tests/src",
        "tests/tests",
        "xtask/src",
        "bench/src",
        "deploy",
        ".github",
        ".ci",
    ]
    .iter()
    .map(|dir| root.join(dir))
    .collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| {
                ["rs", "yaml", "yml", "json", "toml", "sh"].contains(&ext.to_str().unwrap_or(""))
            }) || path.starts_with(root.join(".ci"))
            {
                files.push(path);
            }
        }
    }
    for file in ["Cargo.toml", "Dockerfile", "Dockerfile.release"] {
        files.push(root.join(file));
    }
    files
}

/// The `….md#anchor` and `docs/….md` references in `text`.
fn references(text: &str) -> Vec<String> {
    let path_char = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let anchor_char = |c: char| c.is_ascii_alphanumeric() || "_-".contains(c);
    let mut found = Vec::new();
    for (at, _) in text.match_indices(".md") {
        let start = text[..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| path_char(c))
            .last()
            .map_or(at, |(i, _)| i);
        let path = &text[start..at + 3];
        let after = &text[at + 3..];
        let anchor: String = after
            .strip_prefix('#')
            .map(|rest| rest.chars().take_while(|&c| anchor_char(c)).collect())
            .unwrap_or_default();
        if !anchor.is_empty() {
            found.push(format!("{path}#{anchor}"));
        } else if path.starts_with("docs/") {
            found.push(path.to_owned());
        }
    }
    found
}

#[test]
fn references_from_sources_and_manifests_resolve() {
    let root = workspace_root();
    let this = Path::new(file!());
    let mut problems = Vec::new();
    for file in referring_files(&root) {
        if file.ends_with(this) {
            continue;
        }
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        for reference in references(&text) {
            let shown = file.strip_prefix(&root).unwrap_or(&file).display();
            // The references name pages from the repository root.
            if let Some(problem) = broken(&root, Path::new("."), &reference) {
                problems.push(format!("{shown}: {reference}: {problem}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "references into the docs that do not resolve:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_is_a_front_page() {
    let readme = fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines <= 350,
        "README.md has {lines} lines: it is the front page (at most 350); move reference to docs/"
    );
    let first_screen: String = readme.lines().take(40).collect::<Vec<_>>().join("\n");
    for command in ["cargo run -p mount-monitor", "cargo xtask test"] {
        assert!(
            first_screen.contains(command),
            "README.md's first 40 lines must show `{command}`"
        );
    }
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Exposure and limits"), "exposure-and-limits");
    assert_eq!(
        slug("Migrating from debrid-mount-monitor"),
        "migrating-from-debrid-mount-monitor"
    );
    assert_eq!(
        slug("`check`, `healthcheck`: other modes"),
        "check-healthcheck-other-modes"
    );
    assert_eq!(
        slug("Docker actions by **label**"),
        "docker-actions-by-label"
    );
    assert_eq!(
        slug("The [watchdog](x) and kube_rs"),
        "the-watchdog-and-kube_rs"
    );
    let page = "# A\n\n## Notes\n```\n# not a heading\n```\n## Notes\n";
    let found = anchors(page);
    for anchor in ["a", "notes", "notes-1"] {
        assert!(found.contains(anchor), "{anchor} in {found:?}");
    }
    assert!(!found.contains("not-a-heading"));
    assert_eq!(
        links("[a](x.md#y) `[b](no)` ![c](img.png \"t\")\n[d]: d.md\n```\n[e](no)\n```\n"),
        vec![
            (1, "x.md#y".to_owned()),
            (1, "img.png".to_owned()),
            (2, "d.md".to_owned())
        ]
    );
}

#[test]
fn references_are_found_in_comments() {
    let text = "// see docs/checks.md#hung-mounts, README.md#reason-codes and docs/logs.md.\n\
                # Every key is in docs/configuration.md\n\
                // README.md and RELIABILITY.md name no section";
    assert_eq!(
        references(text),
        vec![
            "docs/checks.md#hung-mounts",
            "README.md#reason-codes",
            "docs/logs.md",
            "docs/configuration.md"
        ]
    );
    let root = workspace_root();
    assert_eq!(
        broken(&root, Path::new("."), "README.md#reason-codes"),
        None
    );
    assert!(broken(&root, Path::new("."), "README.md#no-such-section").is_some());
    assert!(broken(&root, Path::new("."), "docs/no-such-page.md").is_some());
    assert!(broken(&root, Path::new("docs/logs.md"), "../../outside.md").is_some());
}
