//! The only place that moves data between the engine and the kernel: positional writes and
//! reads, fdatasync, and directory fsync. Two backends implement the same calls:
//! `uring` (io_uring, one ring per thread, each call submitted and waited for synchronously,
//! write→fdatasync linked with IO_LINK where both are wanted) and `std` (pwrite/pread/
//! fdatasync). Every call returns only when the kernel has completed it, so callers own
//! their buffers again on return. The `fault` switch lets tests inject EIO/ENOSPC into the
//! std backend on the current thread.

pub mod fault;
mod std_backend;
mod uring;

use std::fs::File;
use std::io;
use std::path::Path;

use crate::config::IoBackend;
use crate::error::LogError;

/// Reads up to this size bypass io_uring (see `Io::read_at`).
const SMALL_READ_BYTES: usize = 4096;

/// Environment variable that forces a backend when the config says `Auto`.
pub const IO_ENV: &str = "RIPTIDE_IO";

/// A resolved I/O backend (never `Auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Io {
    Std,
    Uring,
}

impl Io {
    /// Resolves `Auto` (probing io_uring, honouring `RIPTIDE_IO`) and checks `Uring` works.
    pub(crate) fn resolve(backend: IoBackend) -> Result<Io, LogError> {
        let env = std::env::var(IO_ENV).unwrap_or_default();
        match (backend, env.as_str()) {
            (IoBackend::Std, _) | (IoBackend::Auto, "std") => Ok(Io::Std),
            (IoBackend::Uring, _) | (IoBackend::Auto, "uring") => {
                uring::probe().map_err(|e| LogError::Storage(format!("io_uring unavailable: {e}")))?;
                Ok(Io::Uring)
            }
            (IoBackend::Auto, _) => Ok(if uring::probe().is_ok() { Io::Uring } else { Io::Std }),
        }
    }

    /// The public enum value naming this backend.
    pub(crate) fn backend(self) -> IoBackend {
        match self {
            Io::Std => IoBackend::Std,
            Io::Uring => IoBackend::Uring,
        }
    }

    /// Writes all of `buf` at `pos`.
    pub(crate) fn write_all_at(self, file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
        match self {
            Io::Std => std_backend::write_all_at(file, buf, pos),
            Io::Uring => uring::write_all_at(file, buf, pos),
        }
    }

    /// Writes all of `buf` at `pos`, then fdatasyncs the file (one linked submission on io_uring).
    pub(crate) fn write_all_at_sync(self, file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
        match self {
            Io::Std => {
                std_backend::write_all_at(file, buf, pos)?;
                std_backend::datasync(file)
            }
            Io::Uring => uring::write_all_at_sync(file, buf, pos),
        }
    }

    /// Reads up to `buf.len()` bytes at `pos`; returns the count (0 at end of file).
    /// Small reads (batch headers on the fetch path) use pread on both backends: the data is
    /// almost always in the page cache, where one pread costs less than an io_uring round trip
    /// (measured: sequential 1 MiB fetches went from ~5.7 to ~6.3+ GiB/s).
    pub(crate) fn read_at(self, file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        match self {
            Io::Uring if buf.len() > SMALL_READ_BYTES => uring::read_at(file, buf, pos),
            _ => std_backend::read_at(file, buf, pos),
        }
    }

    /// Fills `buf` from `pos`, returning how many bytes were read before end of file.
    pub(crate) fn read_full_at(self, file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(file, &mut buf[done..], pos + done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        Ok(done)
    }

    /// fdatasyncs every file; on io_uring all are in flight at once. First error wins.
    pub(crate) fn datasync_all(self, files: &[&File]) -> io::Result<()> {
        match self {
            Io::Std => files.iter().try_for_each(|f| std_backend::datasync(f)),
            Io::Uring => uring::datasync_all(files),
        }
    }
}

/// Makes everything written to the file system holding `file` durable (`syncfs(2)`): one
/// journal commit and one device flush for all dirty files at once, where a group commit over
/// many partitions would otherwise pay one fdatasync (and one flush) per segment file. An error
/// says some file of that file system failed writeback since this descriptor last asked; the
/// per-file fdatasync that the caller falls back to names which (their error state is kept per
/// file, apart from this one).
pub fn syncfs(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    fault::on_sync()?;
    // SAFETY: a valid open descriptor borrowed for the duration of the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
