//! Running a release binary of any of our architectures on this machine: natively, through an
//! explicit QEMU user-mode emulator, or through a binfmt_misc registration of one.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use std::{fmt, thread};

use anyhow::{Context, bail};

use crate::targets::Arch;

const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// How to start a binary built for some architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    Native,
    /// The emulator is named on the command line, so nothing depends on binfmt_misc.
    Qemu(PathBuf),
    /// The kernel hands the binary to QEMU itself.
    Binfmt,
}

impl Runner {
    /// The way to run `arch` binaries here, looking at PATH and binfmt_misc.
    pub fn find(arch: Arch) -> Option<Runner> {
        let cpu = arch.target().cpu;
        let qemu = [format!("qemu-{cpu}-static"), format!("qemu-{cpu}")]
            .iter()
            .find_map(find_in_path);
        choose(Arch::host(), arch, qemu, binfmt_enabled(cpu))
    }

    /// A command that runs `binary` with this runner; add arguments to it.
    pub fn command(&self, binary: &Path) -> Command {
        match self {
            Runner::Native | Runner::Binfmt => Command::new(binary),
            Runner::Qemu(qemu) => {
                let mut command = Command::new(qemu);
                command.arg(binary);
                command
            }
        }
    }
}

impl fmt::Display for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Runner::Native => f.write_str("natively"),
            Runner::Qemu(qemu) => write!(f, "under {}", qemu.display()),
            Runner::Binfmt => f.write_str("through binfmt_misc"),
        }
    }
}

/// The decision behind [`Runner::find`], apart from looking at the machine.
pub fn choose(
    host: Option<Arch>,
    arch: Arch,
    qemu_on_path: Option<PathBuf>,
    binfmt_enabled: bool,
) -> Option<Runner> {
    if host == Some(arch) {
        return Some(Runner::Native);
    }
    qemu_on_path
        .map(Runner::Qemu)
        .or(binfmt_enabled.then_some(Runner::Binfmt))
}

/// What to tell someone who has no way to run `arch` binaries.
pub fn how_to_get_runner(arch: Arch) -> String {
    let cpu = arch.target().cpu;
    format!(
        "install QEMU user-mode emulation (Debian/Ubuntu: `apt-get install qemu-user-static`), which \
         provides qemu-{cpu}-static, or register it with binfmt_misc \
         (`mount -t binfmt_misc binfmt_misc {BINFMT_DIR}; update-binfmts --enable qemu-{cpu}`)"
    )
}

fn binfmt_enabled(cpu: &str) -> bool {
    let enabled = |path: &str| {
        std::fs::read_to_string(path).is_ok_and(|text| text.lines().next() == Some("enabled"))
    };
    enabled(&format!("{BINFMT_DIR}/status")) && enabled(&format!("{BINFMT_DIR}/qemu-{cpu}"))
}

/// The first executable file called `name` in PATH.
pub fn find_in_path(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name.as_ref()))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `command` to completion, capturing its output, and kills it after `timeout`.
pub fn output_within(mut command: Command, timeout: Duration) -> anyhow::Result<Output> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {shown}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            // Best effort: the child may exit on its own between the check and the kill.
            let _ = child.kill();
            let _ = child.wait();
            bail!("{shown} did not exit within {timeout:?}; killed it");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_architecture_runs_natively_even_with_qemu_around() {
        let qemu = Some(PathBuf::from("/usr/bin/qemu-x86_64-static"));
        assert_eq!(
            choose(Some(Arch::Amd64), Arch::Amd64, qemu, true),
            Some(Runner::Native)
        );
    }

    #[test]
    fn foreign_architecture_prefers_explicit_qemu_then_binfmt() {
        let qemu = PathBuf::from("/usr/bin/qemu-aarch64-static");
        assert_eq!(
            choose(Some(Arch::Amd64), Arch::Arm64, Some(qemu.clone()), true),
            Some(Runner::Qemu(qemu))
        );
        assert_eq!(
            choose(Some(Arch::Amd64), Arch::Arm64, None, true),
            Some(Runner::Binfmt)
        );
        assert_eq!(choose(Some(Arch::Amd64), Arch::Arm64, None, false), None);
        assert_eq!(choose(None, Arch::Amd64, None, false), None);
    }

    #[test]
    fn qemu_command_puts_the_binary_first() {
        let runner = Runner::Qemu(PathBuf::from("/usr/bin/qemu-aarch64-static"));
        let mut command = runner.command(Path::new("/tmp/mount-monitor-linux-arm64"));
        command.arg("--version");
        assert_eq!(command.get_program(), "/usr/bin/qemu-aarch64-static");
        let args: Vec<&OsStr> = command.get_args().collect();
        assert_eq!(args, ["/tmp/mount-monitor-linux-arm64", "--version"]);
    }

    #[test]
    fn fixture_for_this_host_runs_and_prints_its_line() {
        let host = Arch::host().unwrap_or_else(|| {
            panic!(
                "the xtask is developed on amd64 or arm64, not {}",
                std::env::consts::ARCH
            )
        });
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("static-{host}"));
        let mut command = Runner::Native.command(&fixture);
        command.arg("--version");
        let output = output_within(command, Duration::from_secs(10)).unwrap();
        assert!(output.status.success());
        assert_eq!(output.stdout, b"mount-monitor 0.0.0-fixture\n");
    }

    #[test]
    fn a_command_that_hangs_is_killed() {
        let mut command = Command::new("sleep");
        command.arg("5");
        let started = Instant::now();
        let err = output_within(command, Duration::from_millis(200)).unwrap_err();
        assert!(err.to_string().contains("did not exit"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(4));
    }
}
