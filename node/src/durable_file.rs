//! Small files of the data directory that must never be seen half-written.

use std::io::Write as _;
use std::path::Path;

/// Writes `bytes` to `path` so that a crash leaves either the old file (or none) or the whole
/// new one: write a temporary file beside it, sync it, rename it over `path`, sync the
/// directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    // Durable before the rename publishes it.
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
