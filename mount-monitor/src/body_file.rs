//! Large response bodies kept in sealed memory files, so that the kernel sends them to a socket
//! from its own pages (`sendfile`) instead of copying them from this process's memory for every
//! response: the way nginx serves a static file. At 100 mounts the copy of `/healthz/status`
//! (34 KiB) was a fifth of the CPU time of a request.
//!
//! A kept body is a [`Bytes`] over a read-only mapping of the file, so it reads as any other
//! (tests, a HEAD request, a client that cannot take `sendfile`); [`WriteDeadline`] asks
//! [`find`] whether a buffer hyper writes lies in such a file, and sends that part with
//! `sendfile`. The file is sealed before it is mapped: nothing can change the pages while a
//! socket still holds them, and they outlive the file for as long as it does.
//!
//! Where memory files or the mapping are refused (a seccomp profile without `memfd_create`), the
//! body stays on the heap and is written as before; that is logged once.
//!
//! [`WriteDeadline`]: crate::deadline::WriteDeadline

use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, RwLock};

use axum::body::Bytes;
use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// Bodies smaller than this stay on the heap: their copy costs less than `sendfile`'s own turn
/// through a pipe, and a page-sized file for each would waste memory.
pub const MIN_FILE_BODY: usize = 16 << 10;

/// The memory files alive, by the address range of their mapping. A handful: the bodies kept for
/// the latest snapshot, and older ones still being written.
static FILES: RwLock<Vec<Entry>> = RwLock::new(Vec::new());

struct Entry {
    start: usize,
    len: usize,
    fd: Arc<OwnedFd>,
}

/// Part of a kept body: the file, and where in it.
pub struct FilePart {
    pub fd: Arc<OwnedFd>,
    pub offset: u64,
    pub len: usize,
}

/// `body` as a response body to keep: in a memory file when it is large enough (and the kernel
/// allows), else on the heap without spare capacity.
pub fn keep(mut body: Vec<u8>) -> Bytes {
    if body.len() >= MIN_FILE_BODY {
        match Mapped::new(&body) {
            Ok(mapped) => return Bytes::from_owner(mapped),
            Err(e) => {
                static LOGGED: Once = Once::new();
                LOGGED.call_once(|| {
                    tracing::info!(error = %e, "large bodies are kept on the heap and copied to each client: no memory file");
                });
            }
        }
    }
    body.shrink_to_fit();
    body.into()
}

/// Set once `sendfile` is refused (a sandbox without it): bodies are written from memory.
static SENDFILE_REFUSED: AtomicBool = AtomicBool::new(false);

/// `sendfile` failed with `error`: when the call itself is refused rather than the socket
/// failing, every body is written from memory from now on, and true is returned (the caller
/// writes this one so too).
pub fn refused(error: &std::io::Error) -> bool {
    let refused = is_refusal(error);
    if refused && !SENDFILE_REFUSED.swap(true, Ordering::Relaxed) {
        tracing::info!(%error, "sendfile is refused here: large bodies are copied to each client");
    }
    refused
}

/// The errors of a kernel or sandbox that has no `sendfile` for these files and sockets (a
/// seccomp profile answers `EPERM`), as against the socket's own (`EPIPE`, `ECONNRESET`).
fn is_refusal(error: &std::io::Error) -> bool {
    use nix::errno::Errno;
    error.raw_os_error().is_some_and(|code| {
        [
            Errno::EINVAL,
            Errno::ENOSYS,
            Errno::EOPNOTSUPP,
            Errno::EPERM,
        ]
        .contains(&Errno::from_raw(code))
    })
}

/// The file part `buf` is, when it lies within a kept body's file.
pub fn find(buf: &[u8]) -> Option<FilePart> {
    if buf.len() < MIN_FILE_BODY || SENDFILE_REFUSED.load(Ordering::Relaxed) {
        return None;
    }
    let at = buf.as_ptr() as usize;
    let files = FILES.read().unwrap_or_else(|e| e.into_inner());
    files
        .iter()
        .find(|file| at >= file.start && at + buf.len() <= file.start + file.len)
        .map(|file| FilePart {
            fd: Arc::clone(&file.fd),
            offset: (at - file.start) as u64,
            len: buf.len(),
        })
}

/// A sealed memory file holding a body, mapped read-only.
struct Mapped {
    at: NonNull<u8>,
    len: NonZeroUsize,
}

// SAFETY: the mapping is read-only and sealed against writes, so it is plain immutable memory,
// which any thread may read; it is unmapped once, by the owner's drop.
unsafe impl Send for Mapped {}
// SAFETY: as above: shared references only read memory that never changes.
unsafe impl Sync for Mapped {}

impl Mapped {
    fn new(body: &[u8]) -> nix::Result<Mapped> {
        let len = NonZeroUsize::new(body.len()).ok_or(nix::errno::Errno::EINVAL)?;
        let fd = memfd_create(
            "mount-monitor-body",
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let mut written = 0;
        while written < body.len() {
            match nix::unistd::write(&fd, &body[written..]) {
                Ok(n) => written += n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        fcntl(
            &fd,
            FcntlArg::F_ADD_SEALS(
                SealFlag::F_SEAL_SHRINK
                    | SealFlag::F_SEAL_GROW
                    | SealFlag::F_SEAL_WRITE
                    | SealFlag::F_SEAL_SEAL,
            ),
        )?;
        // SAFETY: a new shared mapping of a file that no one can write or shrink any more (its
        // seals), of exactly its length; nothing else is placed at the address.
        let at = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                0,
            )?
        }
        .cast::<u8>();
        FILES
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Entry {
                start: at.as_ptr() as usize,
                len: len.get(),
                fd: Arc::new(fd),
            });
        Ok(Mapped { at, len })
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes long, readable, never written, and lives as long as
        // `self`.
        unsafe { std::slice::from_raw_parts(self.at.as_ptr(), self.len.get()) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let start = self.at.as_ptr() as usize;
        FILES
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|file| file.start != start);
        // SAFETY: the mapping made in `new`, unmapped once: no `Bytes` over it is left (this is
        // their owner), and `find` no longer names it. A write under way holds the file, not the
        // mapping. The file closes with its last holder.
        let _ = unsafe { munmap(self.at.cast(), self.len.get()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_body_is_kept_in_a_file_and_reads_the_same() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let kept = keep(body.clone());
        assert_eq!(&kept[..], &body[..]);
        let part = find(&kept[1000..50_000]).expect("a slice of a kept body is in its file");
        assert_eq!(part.offset, 1000);
        assert_eq!(part.len, 49_000);
        // The file holds the same bytes, and can no longer be written.
        let file = std::fs::File::from(part.fd.try_clone().unwrap());
        let mut read = vec![0; 10];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut read, 1000).unwrap();
        assert_eq!(&read[..], &body[1000..1010]);
        assert!(nix::unistd::write(&file, b"x").is_err());
        // A clone keeps the file; the last holder's drop forgets it.
        let clone = kept.slice(20_000..);
        drop(kept);
        assert!(find(&clone).is_some());
        let at = clone.as_ptr() as usize;
        drop(clone);
        let files = FILES.read().unwrap();
        assert!(!files.iter().any(|f| at >= f.start && at < f.start + f.len));
    }

    #[test]
    fn only_a_refused_call_turns_sendfile_off() {
        use std::io::Error;
        for code in [nix::libc::ENOSYS, nix::libc::EINVAL, nix::libc::EPERM] {
            assert!(is_refusal(&Error::from_raw_os_error(code)), "{code}");
        }
        for code in [nix::libc::EPIPE, nix::libc::ECONNRESET, nix::libc::EAGAIN] {
            assert!(!is_refusal(&Error::from_raw_os_error(code)), "{code}");
        }
    }

    #[test]
    fn small_bodies_and_other_memory_are_not_files() {
        let small = keep(vec![7; MIN_FILE_BODY - 1]);
        assert!(find(&small).is_none());
        let heap = vec![7u8; 100_000];
        assert!(find(&heap).is_none());
        // A slice too short to be worth it is written as it is.
        let kept = keep(vec![1; 100_000]);
        assert!(find(&kept[..100]).is_none());
    }
}
