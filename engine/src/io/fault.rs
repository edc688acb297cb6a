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
    /// Every open (with or without create) and every unlink of any file fails with EIO:
    /// shows that a roll (with a spare segment ready) or a retention pass does no such file
    /// work on this thread.
    OpenUnlinkEio,
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

/// Called before a real backend opens or unlinks a file (see `Fault::OpenUnlinkEio`).
pub(crate) fn on_open_or_unlink() -> io::Result<()> {
    match FAULT.with(Cell::get) {
        Some(Fault::OpenUnlinkEio) => Err(io::Error::from_raw_os_error(libc::EIO)),
        _ => Ok(()),
    }
}

pub(crate) fn on_sync() -> io::Result<()> {
    match FAULT.with(Cell::get) {
        Some(Fault::SyncEio) => Err(io::Error::from_raw_os_error(libc::EIO)),
        _ => Ok(()),
    }
}
