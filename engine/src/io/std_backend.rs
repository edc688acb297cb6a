//! Std backend: positional `pwrite`/`pread` and `fdatasync` through the standard library,
//! with the test fault switch consulted before each write and sync.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

#[cfg(feature = "sim")]
use super::fault;

pub(super) fn write_all_at(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
    #[cfg(feature = "sim")]
    fault::on_write()?;
    file.write_all_at(buf, pos)
}

pub(super) fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, pos) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

pub(super) fn datasync(file: &File) -> io::Result<()> {
    #[cfg(feature = "sim")]
    fault::on_sync()?;
    file.sync_data()
}

pub(super) fn write_back(file: &File, pos: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let flags =
        libc::SYNC_FILE_RANGE_WAIT_BEFORE | libc::SYNC_FILE_RANGE_WRITE | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    let (pos, len) =
        (i64::try_from(pos).map_err(io::Error::other)?, i64::try_from(len).map_err(io::Error::other)?);
    // SAFETY: a valid open descriptor borrowed for the duration of the call; no memory passed.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), pos, len, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub(super) fn open_rw(path: &std::path::Path, truncate: bool) -> io::Result<File> {
    std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(truncate).open(path)
}

pub(super) fn modified_ms(file: &File) -> Option<i64> {
    let t = file.metadata().ok()?.modified().ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as i64)
}

pub(super) fn set_modified_ms(file: &File, ms: i64) -> io::Result<()> {
    file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
}

pub(super) fn list_dir(dir: &std::path::Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        out.push(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(out)
}
