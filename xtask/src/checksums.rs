//! `SHA256SUMS` in the format `sha256sum -c SHA256SUMS` reads.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

pub const FILE_NAME: &str = "SHA256SUMS";

/// Lowercase hex SHA-256 of `bytes`, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// One line per file, sorted by name: `<hex>  <name>` (two spaces: text mode, like `sha256sum` itself).
///
/// Names are plain file names next to `SHA256SUMS`, so the check runs from that directory.
pub fn format(entries: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::new();
    for (name, hex) in sorted {
        debug_assert!(
            !name.contains(['/', '\\', '\n']),
            "sha256sum would escape {name:?}"
        );
        writeln!(text, "{hex}  {name}").expect("writing to a String cannot fail");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn lines_are_sorted_hash_two_spaces_name() {
        let text = format(&[
            ("mount-monitor-linux-arm64".into(), sha256_hex(b"arm")),
            ("mount-monitor-linux-amd64".into(), sha256_hex(b"amd")),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            format!("{}  mount-monitor-linux-amd64", sha256_hex(b"amd"))
        );
        assert_eq!(
            lines[1],
            format!("{}  mount-monitor-linux-arm64", sha256_hex(b"arm"))
        );
        assert!(text.ends_with('\n'));
    }

    /// The real `sha256sum -c` accepts what we write (skipped where coreutils is absent).
    #[test]
    fn sha256sum_accepts_the_file() {
        let dir = std::env::temp_dir().join(format!("xtask-sha256sums-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mount-monitor-linux-amd64"), b"binary").unwrap();
        std::fs::write(
            dir.join(FILE_NAME),
            format(&[("mount-monitor-linux-amd64".into(), sha256_hex(b"binary"))]),
        )
        .unwrap();
        let status = std::process::Command::new("sha256sum")
            .args(["--check", "--strict", FILE_NAME])
            .current_dir(&dir)
            .output();
        std::fs::remove_dir_all(&dir).unwrap();
        let output = status.expect("sha256sum (GNU coreutils) must be installed");
        assert!(output.status.success(), "{output:?}");
    }
}
