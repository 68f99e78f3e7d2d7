use super::*;
use crate::paths::display_path;
use proptest::collection::vec;
use proptest::prelude::*;

fn cases() -> u32 {
    crate::proptest_cases(5_000)
}

/// The kernel's escaping of paths, types and sources in mountinfo (`mangle` and
/// `seq_path_root` in fs/proc_namespace.c escape space, tab, newline and backslash).
fn escape(field: &str) -> String {
    let mut out = String::new();
    for c in field.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Tokens that look like mountinfo fields, and some that almost do.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..5000).prop_map(|n| n.to_string()),
        Just("-".to_owned()),
        Just("shared:1".to_owned()),
        Just("0:52".to_owned()),
        Just("rw,relatime".to_owned()),
        Just(String::new()),
        "[0-9]{1,25}",
        "/[a-z\\\\0-9]{0,12}",
        "\\\\[0-9]{0,4}",
        any::<String>(),
    ]
}

/// Lines built from such tokens, joined by one space (sometimes two).
fn line() -> impl Strategy<Value = String> {
    vec((token(), any::<bool>()), 0..14).prop_map(|tokens| {
        tokens
            .into_iter()
            .map(|(t, double)| {
                if double {
                    format!("{t}  ")
                } else {
                    format!("{t} ")
                }
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        if let Ok(entries) = parse(&bytes) {
            for entry in &entries {
                let _ = display_path(&entry.mount_point);
                let _ = mount_containing(&entries, &entry.mount_point);
            }
        }
    }

    #[test]
    fn near_miss_lines_never_panic(lines in vec(line(), 0..6), path in "/[^\\x00]{0,20}") {
        let text = lines.join("\n");
        if let Ok(entries) = parse(&text) {
            let _ = mount_at(&entries, Path::new(&path));
            let _ = mount_containing(&entries, Path::new(&path));
            let _ = entries.iter().map(MountEntry::is_read_only).count();
        }
    }

    #[test]
    fn escaped_fields_round_trip(
        root in "/[^\\x00]{0,30}",
        mount_point in "/[^\\x00]{0,30}",
        fs_type in "[a-z0-9. \\t\\\\]{1,12}",
        source in "[^\\x00]{0,20}",
        optional in vec("(shared|master|propagate_from):[0-9]{1,3}|unbindable", 0..3),
        read_only in any::<bool>(),
    ) {
        let options = if read_only { "ro,nosuid" } else { "rw,nosuid" };
        let optional: String = optional.iter().map(|tag| format!("{tag} ")).collect();
        // An empty source stays empty: the line then has two spaces in a row there.
        let line = format!(
            "36 22 98:0 {} {} {options} {optional}- {} {} rw,size=1024k",
            escape(&root),
            escape(&mount_point),
            escape(&fs_type),
            escape(&source),
        );
        let entries = parse(&line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
        prop_assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        prop_assert_eq!(&entry.root, &PathBuf::from(&root));
        prop_assert_eq!(&entry.mount_point, &PathBuf::from(&mount_point));
        prop_assert_eq!(&entry.fs_type, &fs_type);
        prop_assert_eq!(&entry.source, &source);
        prop_assert_eq!(entry.is_read_only(), read_only);
        prop_assert_eq!(
            mount_at(&entries, Path::new(&mount_point)).map(|e| e.mount_id),
            Some(36)
        );
    }
}
