//! The only place where the engine touches the file system: positional writes and reads,
//! fdatasync, file creation, sizes, renames, removals, directory listings and directory
//! fsync. Three backends implement the same calls: `uring` (io_uring, one ring per thread,
//! each call submitted and waited for synchronously, write→fdatasync linked with IO_LINK
//! where both are wanted; plain buffered writes use pwrite, see `write_all_at`), `std` (pwrite/pread/fdatasync; the uring backend shares its
//! path-level calls) and `sim` (an in-memory file system for deterministic simulation, with
//! power loss and fault injection; see `sim.rs`). Every call returns only when the operation
//! has completed, so callers own their buffers again on return. The `fault` switch lets tests
//! inject EIO/ENOSPC into the std backend on the current thread.
//!
//! Files are named by `FileHandle`: a real `Arc<File>` for std/uring (shared with readers
//! for splice and with the server for fsync), or a simulated inode number. A call with a
//! handle of the other kind is a bug and fails with an error rather than touching a file.

pub mod direct;
#[cfg(feature = "sim")]
pub mod fault;
#[cfg(feature = "sim")]
pub mod sim;
mod std_backend;
mod uring;

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

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
    #[cfg(feature = "sim")]
    Sim,
}

/// An open file: a real one (std/uring backends) or a simulated inode (sim backend).
#[derive(Clone, Debug)]
pub(crate) enum FileHandle {
    Real(Arc<File>),
    /// The active segment's file in direct mode (see `direct.rs`).
    Direct(Arc<direct::DirectFile>),
    #[cfg(feature = "sim")]
    Sim(sim::Ino),
}

impl FileHandle {
    /// The real file behind this handle, shared with readers (splice) and the server (fsync).
    /// For a simulated file: a placeholder (`/dev/null`), since simulated bytes are read
    /// through the `Log` API (`Log::read_bytes`), never through the returned file.
    pub(crate) fn shared_file(&self) -> Arc<File> {
        match self {
            FileHandle::Real(f) => f.clone(),
            FileHandle::Direct(d) => d.buffered().clone(),
            #[cfg(feature = "sim")]
            FileHandle::Sim(_) => sim::placeholder_file(),
        }
    }

    /// For a direct-mode file, `[pos, pos + len)` as memory when any of it lies in the stage
    /// (bytes there must not be read from the file; see `direct/mod.rs`) or starts in the tail
    /// cache: shared piece by piece with the stage and the cached buffers when they cover it,
    /// else copied, the parts in neither read from the file. `None` for every other file, and for a
    /// range below the stage that the cache does not hold: read from the file as usual.
    pub(crate) fn memory_for(&self, io: Io, pos: u64, len: u64) -> io::Result<Option<direct::InMemory>> {
        let FileHandle::Direct(d) = self else { return Ok(None) };
        if len == 0 {
            return Ok(None);
        }
        match d.memory(pos, len)? {
            direct::Memory::Shared(m) => return Ok(Some(m)),
            direct::Memory::File => return Ok(None),
            direct::Memory::Copy => {}
        }
        let mut buf = vec![0u8; len as usize];
        if io.read_full_at(self, &mut buf, pos)? < buf.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        Ok(Some(direct::InMemory::One(buf.into())))
    }

    /// Whether this handle is the file's only holder: no read, send or sync of it is in flight
    /// and none can start (every reader clones the handle or its `shared_file`), so cutting the
    /// file short shortens nobody's read.
    pub(crate) fn is_sole_holder(&self) -> bool {
        match self {
            FileHandle::Real(f) => Arc::strong_count(f) == 1,
            FileHandle::Direct(d) => Arc::strong_count(d) == 1 && Arc::strong_count(d.buffered()) == 1,
            #[cfg(feature = "sim")]
            FileHandle::Sim(_) => true,
        }
    }

    /// Writes a direct-mode file's staged bytes (no fdatasync); nothing for other files.
    pub(crate) fn flush_staged(&self) -> io::Result<()> {
        match self {
            FileHandle::Direct(d) => d.flush(),
            _ => Ok(()),
        }
    }

    /// True when both handles name the same open file.
    pub(crate) fn same_file(&self, other: &FileHandle) -> bool {
        match (self, other) {
            (FileHandle::Real(a), FileHandle::Real(b)) => Arc::ptr_eq(a, b),
            (FileHandle::Direct(a), FileHandle::Direct(b)) => Arc::ptr_eq(a, b),
            (FileHandle::Direct(a), FileHandle::Real(b)) | (FileHandle::Real(b), FileHandle::Direct(a)) => {
                Arc::ptr_eq(a.buffered(), b)
            }
            #[cfg(feature = "sim")]
            (FileHandle::Sim(a), FileHandle::Sim(b)) => a == b,
            #[cfg(feature = "sim")]
            _ => false,
        }
    }
}

#[cfg(feature = "sim")]
fn mismatch() -> io::Error {
    io::Error::other("file handle does not belong to this I/O backend")
}

impl Io {
    /// True for the simulated file system (which has no real directories to open).
    pub(crate) fn is_sim(self) -> bool {
        #[cfg(feature = "sim")]
        if self == Io::Sim {
            return true;
        }
        false
    }

    /// The simulator's planted bug (acknowledging before the sync), which the checker must
    /// catch; never on a real backend.
    pub(crate) fn ack_before_sync_planted(self) -> bool {
        #[cfg(feature = "sim")]
        if self == Io::Sim {
            return sim::ack_before_sync_planted();
        }
        false
    }

    /// Resolves `Auto` (probing io_uring, honouring `RIPTIDE_IO`) and checks `Uring` works.
    pub(crate) fn resolve(backend: IoBackend) -> Result<Io, LogError> {
        let env = std::env::var(IO_ENV).unwrap_or_default();
        match (backend, env.as_str()) {
            #[cfg(feature = "sim")]
            (IoBackend::Sim, _) => {
                if !sim::installed() {
                    return Err(LogError::Storage(
                        "simulated storage is not installed on this thread".into(),
                    ));
                }
                Ok(Io::Sim)
            }
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
            #[cfg(feature = "sim")]
            Io::Sim => IoBackend::Sim,
        }
    }

    /// Writes all of `buf` at `pos`.
    ///
    /// Both real backends use pwrite here. These are buffered writes, and io_uring cannot do
    /// a buffered ext4 write inline (ext4 refuses IOCB_NOWAIT for them), so every write on
    /// the synchronous ring was punted to an io-wq worker while the shard slept waiting for
    /// it: two thread switches per partition-batch. Measured (issue 22, 16 partitions with
    /// ~2 KiB batches, docs/BENCHMARKS.md): 39k shard + 17k worker context switches per
    /// second and 0.75 cores through the ring, 25k and 0.59 cores with pwrite, which copies
    /// into the page cache on the calling thread instead.
    pub(crate) fn write_all_at(self, file: &FileHandle, buf: &[u8], pos: u64) -> io::Result<()> {
        match (self, file) {
            (Io::Std | Io::Uring, FileHandle::Real(f)) => std_backend::write_all_at(f, buf, pos),
            (Io::Std | Io::Uring, FileHandle::Direct(d)) => d.append(buf, pos),
            #[cfg(feature = "sim")]
            (Io::Sim, FileHandle::Sim(ino)) => sim::write_all_at(*ino, buf, pos, false),
            #[cfg(feature = "sim")]
            _ => Err(mismatch()),
        }
    }

    /// Writes all of `buf` at `pos`, then fdatasyncs the file (one linked submission on io_uring).
    pub(crate) fn write_all_at_sync(self, file: &FileHandle, buf: &[u8], pos: u64) -> io::Result<()> {
        match (self, file) {
            (Io::Std, FileHandle::Real(f)) => {
                std_backend::write_all_at(f, buf, pos)?;
                std_backend::datasync(f)
            }
            (Io::Uring, FileHandle::Real(f)) => uring::write_all_at_sync(f, buf, pos),
            (Io::Std | Io::Uring, FileHandle::Direct(d)) => {
                d.append(buf, pos)?;
                d.sync()
            }
            #[cfg(feature = "sim")]
            (Io::Sim, FileHandle::Sim(ino)) => sim::write_all_at(*ino, buf, pos, true),
            #[cfg(feature = "sim")]
            _ => Err(mismatch()),
        }
    }

    /// Reads up to `buf.len()` bytes at `pos`; returns the count (0 at end of file).
    /// Small reads (batch headers on the fetch path) use pread on both real backends: the data
    /// is almost always in the page cache, where one pread costs less than an io_uring round
    /// trip (measured: sequential 1 MiB fetches went from ~5.7 to ~6.3+ GiB/s).
    pub(crate) fn read_at(self, file: &FileHandle, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        match (self, file) {
            (Io::Uring, FileHandle::Real(f)) if buf.len() > SMALL_READ_BYTES => uring::read_at(f, buf, pos),
            (Io::Std | Io::Uring, FileHandle::Real(f)) => std_backend::read_at(f, buf, pos),
            (Io::Std | Io::Uring, FileHandle::Direct(d)) => d.read_at(buf, pos),
            #[cfg(feature = "sim")]
            (Io::Sim, FileHandle::Sim(ino)) => sim::read_at(*ino, buf, pos),
            #[cfg(feature = "sim")]
            _ => Err(mismatch()),
        }
    }

    /// Fills `buf` from `pos`, returning how many bytes were read before end of file.
    pub(crate) fn read_full_at(self, file: &FileHandle, buf: &mut [u8], pos: u64) -> io::Result<usize> {
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
    pub(crate) fn datasync_all(self, files: &[&FileHandle]) -> io::Result<()> {
        match self {
            Io::Std => files.iter().try_for_each(|f| match f {
                FileHandle::Real(f) => std_backend::datasync(f),
                FileHandle::Direct(d) => d.sync(),
                #[cfg(feature = "sim")]
                FileHandle::Sim(_) => Err(mismatch()),
            }),
            Io::Uring => {
                let mut real = Vec::with_capacity(files.len());
                for f in files {
                    match f {
                        FileHandle::Real(f) => real.push(f.as_ref()),
                        FileHandle::Direct(d) => {
                            d.flush()?;
                            real.push(d.buffered().as_ref());
                        }
                        #[cfg(feature = "sim")]
                        FileHandle::Sim(_) => return Err(mismatch()),
                    }
                }
                uring::datasync_all(&real)
            }
            #[cfg(feature = "sim")]
            Io::Sim => files.iter().try_for_each(|f| match f {
                #[cfg(feature = "sim")]
                FileHandle::Sim(ino) => sim::datasync(*ino),
                FileHandle::Real(_) | FileHandle::Direct(_) => Err(mismatch()),
            }),
        }
    }

    /// Opens `path` for reading and writing, creating it if missing; `truncate` empties it.
    pub(crate) fn open_rw(self, path: &Path, truncate: bool) -> io::Result<FileHandle> {
        match self {
            Io::Std | Io::Uring => {
                #[cfg(feature = "sim")]
                fault::on_open_or_unlink()?;
                std_backend::open_rw(path, truncate).map(|f| FileHandle::Real(Arc::new(f)))
            }
            #[cfg(feature = "sim")]
            Io::Sim => sim::open_rw(path, truncate).map(FileHandle::Sim),
        }
    }

    /// Sets the file's size (truncating or extending with zeros).
    pub(crate) fn set_len(self, file: &FileHandle, len: u64) -> io::Result<()> {
        match (self, file) {
            (Io::Std | Io::Uring, FileHandle::Real(f)) => f.set_len(len),
            (Io::Std | Io::Uring, FileHandle::Direct(d)) => d.set_len(len),
            #[cfg(feature = "sim")]
            (Io::Sim, FileHandle::Sim(ino)) => sim::set_len(*ino, len),
            #[cfg(feature = "sim")]
            _ => Err(mismatch()),
        }
    }

    /// Writes back the page cache of `len` bytes at `pos` and waits for it
    /// (`sync_file_range`): no durability (a datasync still has to follow, and the file's
    /// metadata goes with it), but what a writer put there no longer waits in the page cache
    /// for the next syncfs, which would write it back in one go while a group commit waits.
    /// Nothing to do for direct files (no page cache) and the simulator.
    pub(crate) fn write_back(self, file: &FileHandle, pos: u64, len: u64) -> io::Result<()> {
        match (self, file) {
            (Io::Std | Io::Uring, FileHandle::Real(f)) => std_backend::write_back(f, pos, len),
            _ => Ok(()),
        }
    }

    /// The file's current size in bytes.
    pub(crate) fn file_len(self, file: &FileHandle) -> io::Result<u64> {
        match (self, file) {
            (Io::Std | Io::Uring, FileHandle::Real(f)) => Ok(f.metadata()?.len()),
            (Io::Std | Io::Uring, FileHandle::Direct(d)) => d.logical_len(),
            #[cfg(feature = "sim")]
            (Io::Sim, FileHandle::Sim(ino)) => sim::file_len(*ino),
            #[cfg(feature = "sim")]
            _ => Err(mismatch()),
        }
    }

    /// The file's modification time in ms since the epoch, if known.
    pub(crate) fn modified_ms(self, file: &FileHandle) -> Option<i64> {
        match (self, file) {
            (Io::Std | Io::Uring, FileHandle::Real(f)) => std_backend::modified_ms(f),
            (Io::Std | Io::Uring, FileHandle::Direct(d)) => std_backend::modified_ms(d.buffered()),
            #[cfg(feature = "sim")]
            (Io::Sim, FileHandle::Sim(ino)) => sim::modified_ms(*ino),
            #[cfg(feature = "sim")]
            _ => None,
        }
    }

    /// Sets the file's modification time (best effort: errors are ignored by callers).
    pub(crate) fn set_modified_ms(self, file: &FileHandle, ms: i64) -> io::Result<()> {
        match (self, file) {
            (Io::Std | Io::Uring, FileHandle::Real(f)) => std_backend::set_modified_ms(f, ms),
            (Io::Std | Io::Uring, FileHandle::Direct(d)) => std_backend::set_modified_ms(d.buffered(), ms),
            #[cfg(feature = "sim")]
            (Io::Sim, FileHandle::Sim(ino)) => sim::set_modified_ms(*ino, ms),
            #[cfg(feature = "sim")]
            _ => Err(mismatch()),
        }
    }

    /// Reads a whole file by path.
    pub(crate) fn read_file(self, path: &Path) -> io::Result<Vec<u8>> {
        match self {
            Io::Std | Io::Uring => std::fs::read(path),
            #[cfg(feature = "sim")]
            Io::Sim => sim::read_file(path),
        }
    }

    /// Renames `from` over `to` (same directory); durable once the directory is fsynced.
    pub(crate) fn rename(self, from: &Path, to: &Path) -> io::Result<()> {
        match self {
            Io::Std | Io::Uring => {
                #[cfg(feature = "sim")]
                fault::on_rename()?;
                std::fs::rename(from, to)
            }
            #[cfg(feature = "sim")]
            Io::Sim => sim::rename(from, to),
        }
    }

    /// Removes a file's directory entry; durable once the directory is fsynced.
    pub(crate) fn remove_file(self, path: &Path) -> io::Result<()> {
        match self {
            Io::Std | Io::Uring => {
                #[cfg(feature = "sim")]
                fault::on_open_or_unlink()?;
                std::fs::remove_file(path)
            }
            #[cfg(feature = "sim")]
            Io::Sim => sim::remove_file(path),
        }
    }

    /// Names of the entries of `dir` (any order).
    pub(crate) fn list_dir(self, dir: &Path) -> io::Result<Vec<String>> {
        match self {
            Io::Std | Io::Uring => std_backend::list_dir(dir),
            #[cfg(feature = "sim")]
            Io::Sim => sim::list_dir(dir),
        }
    }

    pub(crate) fn exists(self, path: &Path) -> bool {
        match self {
            Io::Std | Io::Uring => path.exists(),
            #[cfg(feature = "sim")]
            Io::Sim => sim::exists(path),
        }
    }

    pub(crate) fn is_dir(self, path: &Path) -> bool {
        match self {
            Io::Std | Io::Uring => path.is_dir(),
            #[cfg(feature = "sim")]
            Io::Sim => sim::is_dir(path),
        }
    }

    /// Creates `dir` and its missing parents (the caller fsyncs the parent).
    pub(crate) fn create_dir_all(self, dir: &Path) -> io::Result<()> {
        match self {
            Io::Std | Io::Uring => std::fs::create_dir_all(dir),
            #[cfg(feature = "sim")]
            Io::Sim => sim::create_dir_all(dir),
        }
    }

    /// Removes `dir` and everything in it (the caller fsyncs the parent).
    pub(crate) fn remove_dir_all(self, dir: &Path) -> io::Result<()> {
        match self {
            Io::Std | Io::Uring => {
                #[cfg(feature = "sim")]
                fault::on_open_or_unlink()?;
                std::fs::remove_dir_all(dir)
            }
            #[cfg(feature = "sim")]
            Io::Sim => sim::remove_dir_all(dir),
        }
    }

    /// fsyncs a directory so that entries created, renamed or removed in it are durable.
    pub(crate) fn sync_dir(self, dir: &Path) -> io::Result<()> {
        match self {
            Io::Std | Io::Uring => File::open(dir)?.sync_all(),
            #[cfg(feature = "sim")]
            Io::Sim => sim::sync_dir(dir),
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
    #[cfg(feature = "sim")]
    fault::on_sync()?;
    // SAFETY: a valid open descriptor borrowed for the duration of the call.
    if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
