//! A FUSE filesystem for the reliability tests: an empty directory whose `statfs` can be made to
//! hang, the way a network filesystem hangs when its server goes away.
//!
//! `hangfs MOUNTPOINT` mounts it (as root, without fusermount) and takes commands on stdin, one a
//! line:
//! - `hang`: from now on, `statfs` requests are read and held without an answer (a daemon whose
//!   backend stopped answering);
//! - `stall`: the daemon stops reading requests at all (a daemon wedged on another request): a
//!   helper process looks up `MOUNTPOINT/stall`, and that lookup never returns;
//! - `release`: answer every held request, end the stall, and stop holding.
//!
//! It reports on stdout, one line each: `mounted`, `hanging`, `held statfs` (a request is now
//! held), `stalled` and `released N`. When stdin closes (the test is over, or died), it releases
//! what it holds and unmounts, so a crashed test does not leave callers blocked. Killing it with
//! SIGKILL leaves a dead mount behind: its `statfs` then fails with ENOTCONN, as when rclone dies.

use std::ffi::OsStr;
use std::io::{BufRead, Write};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, INodeNo, MountOption, ReplyAttr,
    ReplyDirectory, ReplyEntry, ReplyStatfs, Request,
};

const TTL: Duration = Duration::from_secs(1);
/// The name whose lookup wedges the daemon while stalled.
const STALL: &str = "stall";

const ROOT: FileAttr = FileAttr {
    ino: INodeNo::ROOT,
    size: 0,
    blocks: 0,
    atime: UNIX_EPOCH,
    mtime: UNIX_EPOCH,
    ctime: UNIX_EPOCH,
    crtime: UNIX_EPOCH,
    kind: FileType::Directory,
    perm: 0o755,
    nlink: 2,
    uid: 0,
    gid: 0,
    rdev: 0,
    flags: 0,
    blksize: 4096,
};

/// A directory below the root, as the paths users give below a FUSE mount (`/mnt/zurg/__all__`).
const SUBDIR: &str = "__all__";
const SUBDIR_ATTR: FileAttr = FileAttr {
    ino: INodeNo(2),
    ..ROOT
};

#[derive(Default)]
struct HangFs {
    held: Mutex<Held>,
    unstalled: Condvar,
}

#[derive(Default)]
struct Held {
    hanging: bool,
    stalled: bool,
    replies: Vec<ReplyStatfs>,
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn answer(reply: ReplyStatfs) {
    // 1000 blocks of 4 KiB, half free; 1000 inodes, half free.
    reply.statfs(1000, 500, 500, 1000, 500, 4096, 255, 4096);
}

impl HangFs {
    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self) -> usize {
        let replies = {
            let mut held = self.held();
            held.hanging = false;
            held.stalled = false;
            std::mem::take(&mut held.replies)
        };
        self.unstalled.notify_all();
        let count = replies.len();
        replies.into_iter().for_each(answer);
        count
    }
}

/// The filesystem is shared between the session thread and the command loop on stdin.
struct Shared(std::sync::Arc<HangFs>);

impl Filesystem for Shared {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == INodeNo::ROOT && name == SUBDIR {
            reply.entry(&TTL, &SUBDIR_ATTR, fuser::Generation(0));
            return;
        }
        if name == STALL {
            // Blocks the only thread that reads requests: nothing else is read until release.
            let mut held = self.0.held();
            if held.stalled {
                say("stalled");
                while held.stalled {
                    held = self
                        .0
                        .unstalled
                        .wait(held)
                        .unwrap_or_else(|e| e.into_inner());
                }
            }
        }
        reply.error(Errno::ENOENT);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == INodeNo::ROOT {
            reply.attr(&TTL, &ROOT);
        } else if ino == SUBDIR_ATTR.ino {
            reply.attr(&TTL, &SUBDIR_ATTR);
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries: &[(INodeNo, &str)] = if ino == INodeNo::ROOT {
            &[
                (INodeNo::ROOT, "."),
                (INodeNo::ROOT, ".."),
                (SUBDIR_ATTR.ino, SUBDIR),
            ]
        } else if ino == SUBDIR_ATTR.ino {
            &[(SUBDIR_ATTR.ino, "."), (INodeNo::ROOT, "..")]
        } else {
            reply.error(Errno::ENOENT);
            return;
        };
        for (i, (entry, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(*entry, (i + 1) as u64, FileType::Directory, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let mut held = self.0.held();
        if held.hanging {
            held.replies.push(reply);
            drop(held);
            say("held statfs");
        } else {
            drop(held);
            answer(reply);
        }
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let [flag, path] = &args[..]
        && flag == "--lookup"
    {
        // The helper that wedges the daemon: its lookup returns only on release.
        let _ = std::fs::symlink_metadata(path);
        return std::process::ExitCode::SUCCESS;
    }
    let Some(mountpoint) = args.first() else {
        eprintln!("usage: hangfs MOUNTPOINT  (commands on stdin: hang, stall, release)");
        return std::process::ExitCode::from(2);
    };
    let fs = std::sync::Arc::new(HangFs::default());
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("hangfs".into()),
        // The kernel's own option (fuser's `Subtype` is for fusermount): the type is fuse.hangfs.
        MountOption::CUSTOM("subtype=hangfs".into()),
    ];
    let session = match fuser::spawn_mount(Shared(std::sync::Arc::clone(&fs)), mountpoint, &config)
    {
        Ok(session) => session,
        Err(e) => {
            eprintln!("hangfs: mounting on {}: {e}", mountpoint.to_string_lossy());
            return std::process::ExitCode::FAILURE;
        }
    };
    say("mounted");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "hang" => {
                fs.held().hanging = true;
                say("hanging");
            }
            "stall" => {
                fs.held().stalled = true;
                let helper = std::env::current_exe().and_then(|exe| {
                    std::process::Command::new(exe)
                        .arg("--lookup")
                        .arg(std::path::Path::new(mountpoint).join(STALL))
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .spawn()
                });
                if let Err(e) = helper {
                    eprintln!("hangfs: cannot start the stalling lookup: {e}");
                }
            }
            "release" => say(&format!("released {}", fs.release())),
            other => eprintln!("hangfs: unknown command {other:?}; use hang, stall or release"),
        }
    }
    fs.release();
    drop(session);
    std::process::ExitCode::SUCCESS
}
