//! Fault injection for tests: a per-thread switch that makes the std backend fail its next
//! writes or syncs (or either real backend its segment-file opens and unlinks) with a chosen
//! errno. Per thread so parallel tests do not disturb each
//! other (a `Log` is driven by one thread). Never set in production code.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::{Arc, Condvar, Mutex};

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
    /// Opening a file for direct writes fails with EINVAL, as on a file system without
    /// O_DIRECT.
    DirectEinval,
}

thread_local! {
    static FAULT: Cell<Option<Fault>> = const { Cell::new(None) };
    static STALL: RefCell<Option<Arc<Gate>>> = const { RefCell::new(None) };
}

/// A stalled disk for one thread (see `stall`): its opens, unlinks and renames wait until the
/// gate opens. Shows that another thread (a log's owner) goes on meanwhile.
#[derive(Default)]
pub struct Gate {
    /// (open, calls waiting or passed)
    state: Mutex<(bool, u64)>,
    cv: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::default()
    }

    /// Lets every waiting and later call through.
    pub fn open(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).0 = true;
        self.cv.notify_all();
    }

    /// How many calls reached the gate so far.
    pub fn reached(&self) -> u64 {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1
    }

    fn pass(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.1 += 1;
        self.cv.notify_all();
        while !st.0 {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until `n` calls reached the gate (a test's helper thread is stalled in one).
    pub fn wait_reached(&self, n: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.1 < n {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Makes this thread's opens, unlinks and renames on the real backends wait at `gate` (or
/// with `None`, no longer).
pub fn stall(gate: Option<Arc<Gate>>) {
    STALL.with(|s| *s.borrow_mut() = gate);
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

/// Called before a file is opened for direct writes.
pub(crate) fn on_open_direct() -> io::Result<()> {
    match FAULT.with(Cell::get) {
        Some(Fault::DirectEinval) => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        _ => Ok(()),
    }
}

/// Called before a real backend opens, unlinks or renames a file (see
/// `Fault::OpenUnlinkEio` and `stall`).
pub(crate) fn on_open_or_unlink() -> io::Result<()> {
    if let Some(gate) = STALL.with(|s| s.borrow().clone()) {
        gate.pass();
    }
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

/// Called before a real backend renames a file: only a stall applies (renames are not opens
/// or unlinks for `Fault::OpenUnlinkEio`, whose tests let a roll rename its spare).
pub(crate) fn on_rename() -> io::Result<()> {
    if let Some(gate) = STALL.with(|s| s.borrow().clone()) {
        gate.pass();
    }
    Ok(())
}
