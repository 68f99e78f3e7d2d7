//! How a path is shown to people (logs, `/healthz/status`, label values): shared by the checks and
//! the serving side, so that neither takes it from the other.

use std::path::Path;

/// A path for people and label values: UTF-8 as it is, any byte that is not UTF-8 as `\xNN`.
pub fn display_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}
