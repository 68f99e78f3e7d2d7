//! Is this file a static ELF executable for the architecture we meant to build?
//!
//! Static means what the kernel and a `FROM scratch` image need: no `PT_INTERP` (no dynamic loader is
//! asked for) and no `DT_NEEDED` (no shared library is asked for). Rust's musl binaries are
//! static-pie: they do have a `PT_DYNAMIC` segment for self-relocation, and that is fine.

use std::fmt;

use object::elf::{DT_NEEDED, FileHeader64};
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::{Endianness, elf};

use crate::targets::{Arch, TARGETS};

/// One reason a file is not a static executable for the expected architecture.
#[derive(Debug, PartialEq, Eq)]
pub enum Problem {
    NotElf64(String),
    WrongMachine { expected: Arch, found: elf::Machine },
    NotExecutable(elf::FileType),
    Interpreter(String),
    NeedsLibraries(Vec<String>),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotElf64(why) => write!(f, "not a 64-bit ELF file ({why})"),
            Problem::WrongMachine { expected, found } => {
                let found_name = TARGETS
                    .iter()
                    .find(|t| t.elf_machine == *found)
                    .map_or_else(|| format!("e_machine {found}"), |t| t.cpu.to_owned());
                write!(
                    f,
                    "built for {found_name}, expected {} for {expected}",
                    expected.target().cpu
                )
            }
            Problem::NotExecutable(kind) => write!(f, "ELF type {kind} is not an executable"),
            Problem::Interpreter(path) => {
                write!(f, "asks for the dynamic loader {path} (PT_INTERP)")
            }
            Problem::NeedsLibraries(names) => {
                write!(f, "needs shared libraries {} (DT_NEEDED)", names.join(", "))
            }
        }
    }
}

/// Every problem found, or an empty list when `bytes` is a static executable for `arch`.
pub fn static_executable_problems(bytes: &[u8], arch: Arch) -> Vec<Problem> {
    match inspect(bytes, arch) {
        Ok(problems) => problems,
        Err(err) => vec![Problem::NotElf64(err.to_string())],
    }
}

fn inspect(bytes: &[u8], arch: Arch) -> object::read::Result<Vec<Problem>> {
    let header = FileHeader64::<Endianness>::parse(bytes)?;
    let endian = header.endian()?;
    let mut problems = Vec::new();

    let machine = header.e_machine(endian);
    if machine != arch.target().elf_machine {
        problems.push(Problem::WrongMachine {
            expected: arch,
            found: machine,
        });
    }
    let kind = header.e_type(endian);
    if kind != elf::ET_EXEC && kind != elf::ET_DYN {
        problems.push(Problem::NotExecutable(kind));
    }

    let mut needed_count = 0;
    for segment in header.program_headers(endian, bytes)? {
        if let Some(interpreter) = segment.interpreter(endian, bytes)? {
            problems.push(Problem::Interpreter(
                String::from_utf8_lossy(interpreter).into_owned(),
            ));
        }
        // The loader reads PT_DYNAMIC, not the section table, so the verdict comes from here.
        if let Some(entries) = segment.dynamic(endian, bytes)? {
            needed_count += entries
                .iter()
                .take_while(|entry| entry.d_tag(endian) != elf::DT_NULL)
                .filter(|entry| entry.d_tag(endian) == DT_NEEDED)
                .count();
        }
    }
    if needed_count > 0 {
        problems.push(Problem::NeedsLibraries(
            needed_names(header, endian, bytes)
                .unwrap_or_else(|| vec![format!("{needed_count} unnamed")]),
        ));
    }
    Ok(problems)
}

/// The names behind `DT_NEEDED`, for the error message; `None` when the section table is gone.
fn needed_names(
    header: &FileHeader64<Endianness>,
    endian: Endianness,
    bytes: &[u8],
) -> Option<Vec<String>> {
    let table = header
        .sections(endian, bytes)
        .ok()?
        .dynamic_table(endian, bytes)
        .ok()?;
    let names: Vec<String> = table
        .iter()
        .filter(|entry| entry.tag == DT_NEEDED)
        .map(|entry| {
            table.string(entry).map_or_else(
                |_| "?".to_owned(),
                |name| String::from_utf8_lossy(name).into_owned(),
            )
        })
        .collect();
    (!names.is_empty()).then_some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    #[test]
    fn static_pie_amd64_is_accepted() {
        assert_eq!(
            static_executable_problems(&fixture("static-amd64"), Arch::Amd64),
            []
        );
    }

    #[test]
    fn static_arm64_is_accepted() {
        assert_eq!(
            static_executable_problems(&fixture("static-arm64"), Arch::Arm64),
            []
        );
    }

    #[test]
    fn wrong_architecture_is_rejected_and_named() {
        let problems = static_executable_problems(&fixture("static-arm64"), Arch::Amd64);
        assert_eq!(
            problems,
            [Problem::WrongMachine {
                expected: Arch::Amd64,
                found: elf::EM_AARCH64
            }]
        );
        assert_eq!(
            problems[0].to_string(),
            "built for aarch64, expected x86_64 for amd64"
        );
        assert!(!static_executable_problems(&fixture("static-amd64"), Arch::Arm64).is_empty());
    }

    #[test]
    fn dynamically_linked_binary_is_rejected_with_loader_and_libraries() {
        let problems = static_executable_problems(&fixture("dynamic-amd64"), Arch::Amd64);
        assert_eq!(
            problems,
            [
                Problem::Interpreter("/lib64/ld-linux-x86-64.so.2".into()),
                Problem::NeedsLibraries(vec!["libc.so.6".into()]),
            ]
        );
    }

    #[test]
    fn non_elf_input_is_rejected() {
        let problems = static_executable_problems(b"#!/bin/sh\necho mount-monitor\n", Arch::Amd64);
        assert!(
            matches!(problems.as_slice(), [Problem::NotElf64(_)]),
            "{problems:?}"
        );
        assert!(matches!(
            static_executable_problems(&[], Arch::Arm64).as_slice(),
            [Problem::NotElf64(_)]
        ));
    }
}
