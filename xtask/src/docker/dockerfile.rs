//! Reading the two Dockerfiles: their stages and instructions, the rules the release image must
//! keep, and what the development image's final stage must share with it.
//!
//! Hand-written rather than a crate: the Dockerfile parsers on crates.io bring a parser generator
//! into this quick-to-compile crate, and these files need only continuation lines, comments and
//! the instruction keyword; exec-form arguments are JSON, read with serde_json.

use std::collections::BTreeMap;

use crate::docker::plan::BUILD_ARGS;
use crate::targets::{Arch, BINARY};

/// The path of the binary inside the image, and the image's whole command.
pub const BINARY_IN_IMAGE: &str = "/mount-monitor";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Upper case: `COPY`.
    pub keyword: String,
    /// The rest, continuation lines joined and runs of whitespace made one space.
    pub args: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The image after `FROM` (and its `--platform=` flag, if any).
    pub base: String,
    pub instructions: Vec<Instruction>,
}

/// The instructions of `text`, in order: continuation lines (`\` at the end) joined, comment
/// and empty lines dropped, as Docker reads them.
pub fn instructions(text: &str) -> Vec<Instruction> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        logical.push(current);
    }
    logical
        .iter()
        .map(|line| {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or_default().to_ascii_uppercase();
            Instruction {
                keyword,
                args: words.collect::<Vec<_>>().join(" "),
            }
        })
        .collect()
}

/// The stages of `text`; instructions before the first `FROM` (global `ARG`s) belong to none.
pub fn stages(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in instructions(text) {
        if instruction.keyword == "FROM" {
            let base = instruction
                .args
                .split_whitespace()
                .take_while(|word| !word.eq_ignore_ascii_case("as"))
                .collect::<Vec<_>>()
                .join(" ");
            stages.push(Stage {
                base,
                instructions: Vec::new(),
            });
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(instruction);
        }
    }
    stages
}

impl Stage {
    fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a Instruction> + 'a {
        self.instructions
            .iter()
            .filter(move |instruction| instruction.keyword == keyword)
    }

    fn one<'a>(&'a self, keyword: &'a str) -> Option<&'a str> {
        self.all(keyword)
            .last()
            .map(|instruction| instruction.args.as_str())
    }

    /// `ARG NAME[=default]` of this stage: name → default.
    pub fn args(&self) -> BTreeMap<String, Option<String>> {
        self.all("ARG")
            .map(|arg| match arg.args.split_once('=') {
                Some((name, default)) => (name.to_owned(), Some(default.to_owned())),
                None => (arg.args.clone(), None),
            })
            .collect()
    }

    /// `LABEL key=value …` of this stage, quotes removed.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.all("LABEL")
            .flat_map(|label| shell_words(&label.args))
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                Some((key.to_owned(), value.to_owned()))
            })
            .collect()
    }

    /// The HEALTHCHECK command, exec form, without its options.
    pub fn healthcheck(&self) -> Option<Vec<String>> {
        let args = self.one("HEALTHCHECK")?;
        let (_, command) = args.split_once("CMD ")?;
        serde_json::from_str(command).ok()
    }

    pub fn entrypoint(&self) -> Option<Vec<String>> {
        serde_json::from_str(self.one("ENTRYPOINT")?).ok()
    }

    /// The `COPY` that puts the binary at [`BINARY_IN_IMAGE`]: (its flags, its source).
    fn binary_copy(&self) -> Option<(Vec<&str>, &str)> {
        self.all("COPY").find_map(|copy| {
            let words: Vec<&str> = copy.args.split_whitespace().collect();
            let (&destination, rest) = words.split_last()?;
            if destination != BINARY_IN_IMAGE {
                return None;
            }
            let (flags, sources): (Vec<&str>, Vec<&str>) =
                rest.iter().partition(|word| word.starts_with("--"));
            match sources[..] {
                [source] => Some((flags, source)),
                _ => None,
            }
        })
    }

    /// What a user of the image sees: user, ports, healthcheck, entrypoint, command, labels,
    /// environment, and where the binary lands with which mode.
    pub fn runtime_contract(&self) -> Vec<String> {
        const SEEN_BY_USERS: [&str; 9] = [
            "USER",
            "EXPOSE",
            "HEALTHCHECK",
            "ENTRYPOINT",
            "CMD",
            "ENV",
            "WORKDIR",
            "STOPSIGNAL",
            "VOLUME",
        ];
        let mut contract: Vec<String> = self
            .instructions
            .iter()
            .filter(|instruction| SEEN_BY_USERS.contains(&instruction.keyword.as_str()))
            .map(|instruction| format!("{} {}", instruction.keyword, instruction.args))
            .collect();
        contract.extend(
            self.labels()
                .into_iter()
                .map(|(key, value)| format!("LABEL {key}={value}")),
        );
        if let Some((flags, _)) = self.binary_copy() {
            let chmod: Vec<&str> = flags
                .into_iter()
                .filter(|flag| flag.starts_with("--chmod"))
                .collect();
            contract.push(format!("COPY {} {BINARY_IN_IMAGE}", chmod.join(" ")));
        }
        contract.sort();
        contract
    }
}

/// Everything wrong with `Dockerfile.release`; empty when it builds the image we ship.
pub fn release_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let stages = stages(text);
    let [stage] = &stages[..] else {
        return vec![format!(
            "it has {} stages; it must be one `FROM scratch` stage that only copies the binary",
            stages.len()
        )];
    };
    if stage.base != "scratch" {
        problems.push(format!(
            "it starts `FROM {}`; it must be `FROM scratch` (the static binary needs nothing else)",
            stage.base
        ));
    }
    let global_args: Vec<Instruction> = instructions(text)
        .into_iter()
        .take_while(|instruction| instruction.keyword != "FROM")
        .collect();
    if !global_args.is_empty() {
        problems.push(
            "instructions before FROM: declare `ARG TARGETARCH` and the label arguments after \
             FROM, where the stage can see them"
                .to_owned(),
        );
    }
    let args = stage.args();
    match args.get("TARGETARCH") {
        None => problems.push("`ARG TARGETARCH` is missing after FROM".to_owned()),
        Some(Some(default)) => problems.push(format!(
            "`ARG TARGETARCH={default}` has a default, which overrides the engine's value and puts \
             the {default} binary into every platform's image: write `ARG TARGETARCH`"
        )),
        Some(None) => {}
    }
    for name in BUILD_ARGS {
        if !args.contains_key(name) {
            problems.push(format!(
                "`ARG {name}` is missing: `cargo xtask docker` passes it for the labels"
            ));
        }
    }
    if stage.all("RUN").next().is_some() {
        problems.push(
            "it has a RUN instruction: the release image only copies binaries that dist built \
             and checked (no shell in scratch, no QEMU in the build)"
                .to_owned(),
        );
    }
    match stage.binary_copy() {
        None => problems.push(format!(
            "no `COPY --chmod=0755 {BINARY}-linux-${{TARGETARCH}} {BINARY_IN_IMAGE}`"
        )),
        Some((flags, source)) => {
            if !flags
                .iter()
                .any(|flag| matches!(*flag, "--chmod=0755" | "--chmod=755"))
            {
                problems.push(format!(
                    "the COPY to {BINARY_IN_IMAGE} must set `--chmod=0755`"
                ));
            }
            for arch in Arch::ALL {
                let resolved = source
                    .replace("${TARGETARCH}", arch.docker_arch())
                    .replace("$TARGETARCH", arch.docker_arch());
                if resolved != arch.artifact_name() {
                    problems.push(format!(
                        "COPY {source} names {resolved} for {arch}, but dist writes {}",
                        arch.artifact_name()
                    ));
                }
            }
        }
    }
    problems.extend(runtime_problems(stage));
    let labels = stage.labels();
    for (label, arg) in [
        ("version", "VERSION"),
        ("revision", "REVISION"),
        ("created", "CREATED"),
        ("source", "SOURCE"),
    ] {
        let key = format!("org.opencontainers.image.{label}");
        if labels.get(&key) != Some(&format!("${{{arg}}}")) {
            problems.push(format!("LABEL {key} must be \"${{{arg}}}\""));
        }
    }
    problems
}

/// The user, port, healthcheck and entrypoint every image of ours has.
fn runtime_problems(stage: &Stage) -> Vec<String> {
    let mut problems = Vec::new();
    if stage.one("USER") != Some("65534:65534") {
        problems.push("`USER 65534:65534` is missing (nobody:nogroup, never root)".to_owned());
    }
    if !matches!(stage.one("EXPOSE"), Some("8080" | "8080/tcp")) {
        problems.push("`EXPOSE 8080` is missing".to_owned());
    }
    if stage.healthcheck() != Some(vec![BINARY_IN_IMAGE.to_owned(), "healthcheck".to_owned()]) {
        problems.push(format!(
            "`HEALTHCHECK CMD [\"{BINARY_IN_IMAGE}\", \"healthcheck\"]` is missing (exec form: \
             scratch has no shell)"
        ));
    }
    if stage.entrypoint() != Some(vec![BINARY_IN_IMAGE.to_owned()]) {
        problems.push(format!("`ENTRYPOINT [\"{BINARY_IN_IMAGE}\"]` is missing"));
    }
    problems
}

/// How the development `Dockerfile`'s final stage differs from `Dockerfile.release` where a user
/// would notice; empty when it does not.
pub fn development_differences(development: &str, release: &str) -> Vec<String> {
    let (Some(dev), Some(rel)) = (stages(development).pop(), stages(release).pop()) else {
        return vec!["a Dockerfile has no FROM".to_owned()];
    };
    let mut differences = Vec::new();
    if dev.base != rel.base {
        differences.push(format!(
            "the final stage is `FROM {}`, the release image's `FROM {}`",
            dev.base, rel.base
        ));
    }
    let (dev_contract, rel_contract) = (dev.runtime_contract(), rel.runtime_contract());
    for line in &rel_contract {
        if !dev_contract.contains(line) {
            differences.push(format!("missing `{line}`"));
        }
    }
    for line in &dev_contract {
        if !rel_contract.contains(line) {
            differences.push(format!("`{line}` is not in Dockerfile.release"));
        }
    }
    for name in BUILD_ARGS {
        if !dev.args().contains_key(name) {
            differences.push(format!("`ARG {name}` is missing from the final stage"));
        }
    }
    differences.extend(runtime_problems(&dev));
    differences
}

/// Words split on whitespace outside double quotes, the quotes removed (for LABEL pairs).
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => word.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project_root;

    fn read(name: &str) -> String {
        let path = project_root().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {path}: {err}"))
    }

    #[test]
    fn release_dockerfile_keeps_every_rule() {
        let problems = release_problems(&read("Dockerfile.release"));
        assert!(problems.is_empty(), "Dockerfile.release: {problems:#?}");
    }

    #[test]
    fn development_image_ends_like_the_release_image() {
        let differences = development_differences(&read("Dockerfile"), &read("Dockerfile.release"));
        assert!(
            differences.is_empty(),
            "Dockerfile's final stage: {differences:#?}"
        );
        let stages = stages(&read("Dockerfile"));
        assert!(
            stages.len() >= 2,
            "Dockerfile compiles in a builder stage: {stages:#?}"
        );
        let contract = stages.last().unwrap().runtime_contract();
        for expected in [
            "USER 65534:65534",
            "EXPOSE 8080",
            "ENTRYPOINT [\"/mount-monitor\"]",
            "COPY --chmod=0755 /mount-monitor",
        ] {
            assert!(
                contract.iter().any(|line| line == expected),
                "{expected}: {contract:#?}"
            );
        }
    }

    const GOOD: &str = r#"
# A comment.
FROM scratch
ARG TARGETARCH
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
ARG SOURCE=https://example.com
LABEL org.opencontainers.image.version="${VERSION}" \
      # comments inside continuations are dropped, as Docker does
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" org.opencontainers.image.source="${SOURCE}"
COPY --chmod=0755 mount-monitor-linux-${TARGETARCH} /mount-monitor
EXPOSE 8080
USER 65534:65534
HEALTHCHECK --interval=30s CMD ["/mount-monitor", "healthcheck"]
ENTRYPOINT ["/mount-monitor"]
"#;

    #[test]
    fn a_minimal_release_dockerfile_passes() {
        assert_eq!(release_problems(GOOD), Vec::<String>::new());
        let stage = &stages(GOOD)[0];
        assert_eq!(stage.labels().len(), 4);
        assert_eq!(
            stage.labels()["org.opencontainers.image.created"],
            "${CREATED}"
        );
    }

    fn problems_with(from: &str, to: &str) -> Vec<String> {
        assert!(GOOD.contains(from), "{from}");
        release_problems(&GOOD.replacen(from, to, 1))
    }

    #[test]
    fn a_targetarch_default_is_refused_with_the_reason() {
        let problems = problems_with("ARG TARGETARCH\n", "ARG TARGETARCH=amd64\n");
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("amd64 binary into every platform's image"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn targetarch_before_from_is_refused() {
        let problems = problems_with(
            "FROM scratch\nARG TARGETARCH\n",
            "ARG TARGETARCH\nFROM scratch\n",
        );
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems.iter().any(|p| p.contains("before FROM")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`ARG TARGETARCH` is missing after FROM"))
        );
    }

    #[test]
    fn each_broken_rule_is_named() {
        for (from, to, expected) in [
            ("FROM scratch", "FROM alpine", "must be `FROM scratch`"),
            ("USER 65534:65534", "USER root", "USER 65534:65534"),
            ("EXPOSE 8080", "EXPOSE 9090", "EXPOSE 8080"),
            ("\"healthcheck\"]", "\"check\"]", "HEALTHCHECK"),
            (
                "HEALTHCHECK --interval=30s CMD [\"/mount-monitor\", \"healthcheck\"]",
                "HEALTHCHECK CMD /mount-monitor healthcheck",
                "exec form",
            ),
            (
                "ENTRYPOINT [\"/mount-monitor\"]",
                "CMD [\"/mount-monitor\"]",
                "ENTRYPOINT",
            ),
            ("--chmod=0755 ", "", "--chmod=0755"),
            (
                "linux-${TARGETARCH}",
                "${TARGETARCH}",
                "dist writes mount-monitor-linux-amd64",
            ),
            (
                "ARG CREATED=1970-01-01T00:00:00Z\n",
                "",
                "`ARG CREATED` is missing",
            ),
            (
                "=\"${SOURCE}\"",
                "=\"https://example.com\"",
                "org.opencontainers.image.source",
            ),
            (
                "EXPOSE 8080\n",
                "EXPOSE 8080\nRUN [\"/mount-monitor\", \"--version\"]\n",
                "RUN",
            ),
        ] {
            let problems = problems_with(from, to);
            assert!(
                problems.iter().any(|problem| problem.contains(expected)),
                "{from} -> {to}: expected {expected:?} in {problems:#?}"
            );
        }
    }

    #[test]
    fn development_differences_name_what_users_would_notice() {
        let dev = format!(
            "FROM rust:1-alpine AS build\nRUN cargo build\n{}",
            GOOD.replace(
                "COPY --chmod=0755 mount-monitor-linux-${TARGETARCH} /mount-monitor",
                "COPY --from=build --chmod=0755 /out/mount-monitor /mount-monitor"
            )
        );
        assert_eq!(development_differences(&dev, GOOD), Vec::<String>::new());

        let root = dev.replace("USER 65534:65534", "USER 0");
        let differences = development_differences(&root, GOOD);
        assert!(
            differences.contains(&"missing `USER 65534:65534`".to_owned()),
            "{differences:#?}"
        );
        assert!(differences.contains(&"`USER 0` is not in Dockerfile.release".to_owned()));

        let port = dev.replace("EXPOSE 8080", "EXPOSE 8080 9090");
        assert!(!development_differences(&port, GOOD).is_empty());
        let no_healthcheck = dev.replace("HEALTHCHECK --interval=30s", "HEALTHCHECK --interval=5s");
        assert!(!development_differences(&no_healthcheck, GOOD).is_empty());
    }

    #[test]
    fn continuation_lines_and_case_are_read_as_docker_does() {
        let parsed = instructions("from scratch\nlabel a=\"x y\" \\\n\n  b=2\nexpose   8080\n");
        assert_eq!(
            parsed,
            [
                Instruction {
                    keyword: "FROM".into(),
                    args: "scratch".into()
                },
                Instruction {
                    keyword: "LABEL".into(),
                    args: "a=\"x y\" b=2".into()
                },
                Instruction {
                    keyword: "EXPOSE".into(),
                    args: "8080".into()
                },
            ]
        );
        let stage =
            &stages("FROM --platform=$BUILDPLATFORM rust AS build\nRUN x\nFROM scratch\n")[0];
        assert_eq!(stage.base, "--platform=$BUILDPLATFORM rust");
        assert_eq!(shell_words(r#"a="x \"y\"" b=2"#), ["a=x \"y\"", "b=2"]);
    }
}
