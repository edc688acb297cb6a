//! Fault injection for tests: a per-thread switch that makes the std backend fail its next
//! writes or syncs (or either real backend its segment-file opens and unlinks) with a chosen
//! errno. Per thread so parallel tests do not disturb each
//! other (a `Log` is driven by one thread). Never set in production code.

use std::cell::Cell;
use std::io;

/// Which operation fails, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every write fails with EIO.
    WriteEio,
    /// Every write fails with ENOSPC.
    WriteEnospc,
    /// Every fdatasync fails with EIO.
    SyncEio,
    /// Every open (create) or unlink of a segment file (`.log`, `.index`, `.timeindex`) or of a
    /// producer snapshot (`.snapshot`; its temp file is not one) fails with EIO: shows that a
    /// roll or retention pass does no such file work on this thread.
    SegmentFileEio,
}

thread_local! {
    static FAULT: Cell<Option<Fault>> = const { Cell::new(None) };
}

/// Sets (or with `None` clears) the fault injected on this thread's std-backend I/O.
pub fn inject(fault: Option<Fault>) {
    FAULT.with(|f| f.set(fault));
}

pub(crate) fn on_write() -> io::Result<()> {
    match FAULT.with(Cell::get) {
        Some(Fault::WriteEio) => Err(io::Error::from_raw_os_error(libc::EIO)),
        Some(Fault::WriteEnospc) => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
        _ => Ok(()),
    }
}

/// Called before a real backend opens or unlinks `path` (see `Fault::SegmentFileEio`).
pub(crate) fn on_segment_file(path: &std::path::Path) -> io::Result<()> {
    if FAULT.with(Cell::get) != Some(Fault::SegmentFileEio) {
        return Ok(());
    }
    let segment_file = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "log" | "index" | "timeindex" | "snapshot"));
    if segment_file {
        return Err(io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

pub(crate) fn on_sync() -> io::Result<()> {
    match FAULT.with(Cell::get) {
        Some(Fault::SyncEio) => Err(io::Error::from_raw_os_error(libc::EIO)),
        _ => Ok(()),
    }
}
