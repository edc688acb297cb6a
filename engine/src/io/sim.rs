//! Simulated storage for deterministic simulation testing (TigerBeetle's VOPR approach): an
//! in-memory file system behind the engine's I/O interface, driven by one seed.
//!
//! Model. Per file (inode): the bytes a reader sees now, the bytes that are durable, and the
//! ordered list of writes and size changes not yet covered by a completed fdatasync. Per
//! directory: the entries a reader sees now and the durable entries; creates, renames,
//! unlinks and mkdirs become durable only when their directory is fsynced. A *power loss*
//! (`crash`) keeps the durable state and applies a seeded random subset of the pending
//! operations, in order: each pending write is lost, applied, or torn (a random subset of its
//! 512-byte sectors lands), so later writes may survive while earlier ones do not; each
//! pending directory operation is undone or kept. Files no durable entry names are gone.
//!
//! Faults (each a probability in parts per million, only while enabled): EIO or ENOSPC on
//! writes (with a random sector-aligned prefix written), on fdatasync and directory fsync, and
//! EIO on reads; transient bit flips in read data; latent sector errors (a bit flipped in
//! durable data at power loss); misdirected writes (landing some sectors away). Silent damage
//! (flips, latent errors, misdirection) goes only into `*.log` segment files, whose batches
//! carry CRCs: Kafka's index and checkpoint formats have none to detect it. A failed
//! fdatasync follows Linux: the pending writes stay visible but are never made durable by a
//! later successful fdatasync ("fsyncgate"). `halt_after(n)` cuts the power during the n-th
//! I/O call from now: it and every later call fail until `crash()` is called.
//!
//! All state is per thread (a `Log` is driven by one thread), so parallel tests are
//! independent. Time is virtual (`set_now_ms`); randomness comes only from the seed.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A simulated inode number.
pub type Ino = u64;

/// Granularity of torn writes, misdirection and latent errors.
pub const SECTOR_BYTES: u64 = 512;
const PPM: u64 = 1_000_000;

/// Fault probabilities, in parts per million per call (latent: per power loss).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    pub write_error_ppm: u32,
    pub sync_error_ppm: u32,
    pub read_error_ppm: u32,
    pub read_flip_ppm: u32,
    pub latent_error_ppm: u32,
    pub misdirect_ppm: u32,
}

impl Faults {
    /// True if any fault can damage bytes without an error being reported (bit flips, latent
    /// sector errors, misdirected writes): a single copy cannot keep acknowledged data then.
    pub fn damaging(&self) -> bool {
        self.read_flip_ppm > 0 || self.latent_error_ppm > 0 || self.misdirect_ppm > 0
    }
}

/// What the simulator did, for reports and docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub io_calls: u64,
    pub crashes: u64,
    pub writes_lost: u64,
    pub writes_torn: u64,
    pub dir_ops_undone: u64,
    pub write_errors: u64,
    pub sync_errors: u64,
    pub read_errors: u64,
    pub read_flips: u64,
    pub latent_errors: u64,
    pub misdirected_writes: u64,
}

impl Stats {
    /// Injected faults (errors and corruptions, not power-loss effects).
    pub fn faults(&self) -> u64 {
        self.write_errors
            + self.sync_errors
            + self.read_errors
            + self.read_flips
            + self.latent_errors
            + self.misdirected_writes
    }
}

/// splitmix64: small, fast, and good enough to drive a simulation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range");
        self.next_u64() % n
    }

    /// True with probability `ppm` / 1e6.
    pub fn chance_ppm(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.below(PPM) < u64::from(ppm)
    }
}

enum Pending {
    Write { pos: u64, bytes: Vec<u8> },
    SetLen(u64),
}

struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    /// Sectors whose writes were dropped by a failed fdatasync: visible, but never made
    /// durable unless written again (a new write dirties the page again).
    lost: BTreeSet<u64>,
    mtime_ms: i64,
    /// Named `*.log` (CRC-protected segment data): the only files silent damage is put in,
    /// since index files and checkpoints carry no checksum in Kafka's formats.
    damageable: bool,
}

enum DirOp {
    Link(PathBuf, Ino),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, Ino),
    Mkdir(PathBuf),
    Rmdir(PathBuf),
}

struct Sim {
    rng: Rng,
    now_ms: i64,
    faults: Faults,
    faults_enabled: bool,
    stats: Stats,
    inodes: BTreeMap<Ino, Inode>,
    next_ino: Ino,
    names: BTreeMap<PathBuf, Ino>,
    durable_names: BTreeMap<PathBuf, Ino>,
    dirs: BTreeSet<PathBuf>,
    durable_dirs: BTreeSet<PathBuf>,
    dir_pending: BTreeMap<PathBuf, Vec<DirOp>>,
    halt_at_call: Option<u64>,
    halted: bool,
    ack_before_sync: bool,
    /// `RIPTIDE_SIM_TRACE` set: every mutation is printed (for replaying a failing seed).
    trace: bool,
}

thread_local! {
    static SIM: RefCell<Option<Sim>> = const { RefCell::new(None) };
    static PLACEHOLDER: RefCell<Option<Arc<File>>> = const { RefCell::new(None) };
}

fn with<T>(f: impl FnOnce(&mut Sim) -> io::Result<T>) -> io::Result<T> {
    SIM.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => match slot.as_mut() {
            Some(sim) => f(sim),
            None => Err(io::Error::other("simulated storage is not installed on this thread")),
        },
        Err(_) => Err(io::Error::other("simulated storage re-entered")),
    })
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"))
}

fn write_into(data: &mut Vec<u8>, pos: u64, bytes: &[u8]) {
    let end = pos as usize + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[pos as usize..end].copy_from_slice(bytes);
}

// ---- control API for tests -------------------------------------------------------------

/// Installs a fresh, empty simulated file system on this thread (replacing any other).
pub fn install(seed: u64, faults: Faults) {
    let root = PathBuf::from("/");
    let sim = Sim {
        rng: Rng::new(seed),
        now_ms: 0,
        faults,
        faults_enabled: true,
        stats: Stats::default(),
        inodes: BTreeMap::new(),
        next_ino: 1,
        names: BTreeMap::new(),
        durable_names: BTreeMap::new(),
        dirs: [root.clone()].into_iter().collect(),
        durable_dirs: [root].into_iter().collect(),
        dir_pending: BTreeMap::new(),
        halt_at_call: None,
        halted: false,
        ack_before_sync: false,
        trace: std::env::var_os("RIPTIDE_SIM_TRACE").is_some(),
    };
    SIM.with(|cell| *cell.borrow_mut() = Some(sim));
}

/// Creates `dir` and its ancestors durably, outside the engine (a broker's `log.dirs` root,
/// which exists before any partition is opened).
pub fn create_dir_durable(dir: &Path) {
    let _ = with(|s| {
        for d in dir.ancestors() {
            if !d.as_os_str().is_empty() {
                s.dirs.insert(d.to_path_buf());
                s.durable_dirs.insert(d.to_path_buf());
            }
        }
        Ok(())
    });
}

/// One machine's simulated disk, off this thread (see `detach`).
pub struct Disk(Sim);

/// Takes this thread's simulated file system off it, to be put back with `attach`: a
/// simulation of several brokers in one thread gives each its own disk, power and faults,
/// and attaches a broker's disk while it runs that broker's code. A file opened on one disk
/// must only be used while that disk is attached.
pub fn detach() -> Option<Disk> {
    SIM.with(|cell| cell.borrow_mut().take().map(Disk))
}

/// Puts a detached disk back on this thread (replacing any other).
pub fn attach(disk: Disk) {
    SIM.with(|cell| *cell.borrow_mut() = Some(disk.0));
}

/// Removes this thread's simulated file system.
pub fn uninstall() {
    SIM.with(|cell| *cell.borrow_mut() = None);
}

pub fn installed() -> bool {
    SIM.with(|cell| cell.try_borrow().map(|s| s.is_some()).unwrap_or(true))
}

/// Sets the virtual clock (file modification times).
pub fn set_now_ms(ms: i64) {
    let _ = with(|s| {
        s.now_ms = ms;
        Ok(())
    });
}

/// Turns fault injection on or off (power loss effects stay on).
pub fn set_faults_enabled(on: bool) {
    let _ = with(|s| {
        s.faults_enabled = on;
        Ok(())
    });
}

/// Cuts the power during the `calls`-th I/O call from now (1 = the next one).
pub fn halt_after(calls: u64) {
    let _ = with(|s| {
        s.halt_at_call = Some(s.stats.io_calls + calls.max(1));
        Ok(())
    });
}

/// Cancels a power cut scheduled by `halt_after` that has not happened yet.
pub fn cancel_halt() {
    let _ = with(|s| {
        s.halt_at_call = None;
        Ok(())
    });
}

/// True once the power is cut (every I/O call fails until `crash`).
pub fn halted() -> bool {
    with(|s| Ok(s.halted)).unwrap_or(false)
}

pub fn stats() -> Stats {
    with(|s| Ok(s.stats)).unwrap_or_default()
}

/// The planted bug for testing the simulator itself: when on, `Log::sync` on the sim backend
/// reports offsets durable without fdatasyncing them (an acknowledgement before its fsync).
pub fn plant_ack_before_sync(on: bool) {
    let _ = with(|s| {
        s.ack_before_sync = on;
        Ok(())
    });
}

pub(crate) fn ack_before_sync_planted() -> bool {
    with(|s| Ok(s.ack_before_sync)).unwrap_or(false)
}

/// Current contents of the file at `path`, bypassing faults (for checkers).
pub fn file_bytes(path: &Path) -> Option<Vec<u8>> {
    with(|s| {
        let ino = s.names.get(path).ok_or_else(not_found)?;
        Ok(s.inodes.get(ino).map(|i| i.data.clone()).unwrap_or_default())
    })
    .ok()
}

/// Names of the files in `dir`, bypassing faults (for checkers and debugging).
pub fn file_names(dir: &Path) -> Vec<String> {
    with(|s| {
        let names = s.names.keys().filter(|p| p.parent() == Some(dir));
        Ok(names.filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect())
    })
    .unwrap_or_default()
}

/// Simulated power loss: keeps what was durable plus a seeded subset of pending operations,
/// then restarts the file system from that state (see the module docs).
pub fn crash() {
    let _ = with(|s| {
        s.crash();
        Ok(())
    });
}

/// A real file standing in for simulated ones in `ReadSlice`/`SyncTarget` (never read).
pub(crate) fn placeholder_file() -> Arc<File> {
    PLACEHOLDER.with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(|| Arc::new(File::open("/dev/null").expect("open /dev/null")))
            .clone()
    })
}

// ---- the engine's calls ----------------------------------------------------------------

pub(crate) fn write_all_at(ino: Ino, buf: &[u8], pos: u64, sync: bool) -> io::Result<()> {
    with(|s| {
        s.tick()?;
        s.write(ino, buf, pos)?;
        if sync {
            s.datasync(ino)?;
        }
        Ok(())
    })
}

pub(crate) fn read_at(ino: Ino, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    with(|s| {
        s.tick()?;
        if s.fault(s.faults.read_error_ppm) {
            s.stats.read_errors += 1;
            return Err(eio());
        }
        let inode = s.inodes.get(&ino).ok_or_else(not_found)?;
        let (data, damageable) = (&inode.data, inode.damageable);
        let start = (pos as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        if damageable {
            s.maybe_flip(&mut buf[..n]);
        }
        Ok(n)
    })
}

pub(crate) fn datasync(ino: Ino) -> io::Result<()> {
    with(|s| {
        s.tick()?;
        s.datasync(ino)
    })
}

pub(crate) fn open_rw(path: &Path, truncate: bool) -> io::Result<Ino> {
    with(|s| {
        s.tick()?;
        if !s.dirs.contains(&parent(path)) {
            return Err(not_found());
        }
        if s.trace {
            eprintln!("  sim: open {} (ino {:?}) truncate {truncate}", path.display(), s.names.get(path));
        }
        if let Some(&ino) = s.names.get(path) {
            if truncate {
                s.set_len(ino, 0)?;
            }
            return Ok(ino);
        }
        let ino = s.next_ino;
        s.next_ino += 1;
        let now = s.now_ms;
        s.inodes.insert(
            ino,
            Inode {
                data: Vec::new(),
                durable: Vec::new(),
                pending: Vec::new(),
                lost: BTreeSet::new(),
                mtime_ms: now,
                damageable: is_log(path),
            },
        );
        s.names.insert(path.to_path_buf(), ino);
        s.dir_op(parent(path), DirOp::Link(path.to_path_buf(), ino));
        Ok(ino)
    })
}

pub(crate) fn set_len(ino: Ino, len: u64) -> io::Result<()> {
    with(|s| {
        s.tick()?;
        s.set_len(ino, len)
    })
}

pub(crate) fn file_len(ino: Ino) -> io::Result<u64> {
    with(|s| Ok(s.inodes.get(&ino).ok_or_else(not_found)?.data.len() as u64))
}

pub(crate) fn modified_ms(ino: Ino) -> Option<i64> {
    with(|s| Ok(s.inodes.get(&ino).map(|i| i.mtime_ms))).ok().flatten()
}

pub(crate) fn set_modified_ms(ino: Ino, ms: i64) -> io::Result<()> {
    with(|s| {
        s.inodes.get_mut(&ino).ok_or_else(not_found)?.mtime_ms = ms;
        Ok(())
    })
}

pub(crate) fn read_file(path: &Path) -> io::Result<Vec<u8>> {
    with(|s| {
        s.tick()?;
        let ino = *s.names.get(path).ok_or_else(not_found)?;
        if s.fault(s.faults.read_error_ppm) {
            s.stats.read_errors += 1;
            return Err(eio());
        }
        let (mut data, damageable) =
            s.inodes.get(&ino).map(|i| (i.data.clone(), i.damageable)).unwrap_or_default();
        if damageable {
            s.maybe_flip(&mut data);
        }
        Ok(data)
    })
}

pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    with(|s| {
        s.tick()?;
        if s.trace {
            eprintln!("  sim: rename {} -> {}", from.display(), to.display());
        }
        let ino = s.names.remove(from).ok_or_else(not_found)?;
        s.names.insert(to.to_path_buf(), ino);
        if let Some(inode) = s.inodes.get_mut(&ino) {
            inode.damageable = is_log(to);
        }
        s.dir_op(parent(to), DirOp::Rename(from.to_path_buf(), to.to_path_buf(), ino));
        Ok(())
    })
}

pub(crate) fn remove_file(path: &Path) -> io::Result<()> {
    with(|s| {
        s.tick()?;
        if s.trace {
            eprintln!("  sim: unlink {}", path.display());
        }
        s.names.remove(path).ok_or_else(not_found)?;
        s.dir_op(parent(path), DirOp::Unlink(path.to_path_buf()));
        Ok(())
    })
}

pub(crate) fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    with(|s| {
        s.tick()?;
        if !s.dirs.contains(dir) {
            return Err(not_found());
        }
        let files = s.names.keys().filter(|p| p.parent() == Some(dir));
        let dirs = s.dirs.iter().filter(|p| p.parent() == Some(dir));
        Ok(files
            .chain(dirs)
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect())
    })
}

pub(crate) fn exists(path: &Path) -> bool {
    with(|s| Ok(s.names.contains_key(path) || s.dirs.contains(path))).unwrap_or(false)
}

pub(crate) fn is_dir(path: &Path) -> bool {
    with(|s| Ok(s.dirs.contains(path))).unwrap_or(false)
}

pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    with(|s| {
        s.tick()?;
        let mut chain: Vec<PathBuf> = dir.ancestors().map(Path::to_path_buf).collect();
        chain.reverse();
        for d in chain {
            if !d.as_os_str().is_empty() && s.dirs.insert(d.clone()) {
                s.dir_op(parent(&d), DirOp::Mkdir(d));
            }
        }
        Ok(())
    })
}

pub(crate) fn remove_dir_all(dir: &Path) -> io::Result<()> {
    with(|s| {
        s.tick()?;
        if !s.dirs.contains(dir) {
            return Err(not_found());
        }
        s.names.retain(|p, _| !p.starts_with(dir));
        s.dirs.retain(|p| !p.starts_with(dir));
        s.dir_op(parent(dir), DirOp::Rmdir(dir.to_path_buf()));
        Ok(())
    })
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    with(|s| {
        s.tick()?;
        if !s.dirs.contains(dir) {
            return Err(not_found());
        }
        let failed = s.fault(s.faults.sync_error_ppm);
        if s.trace {
            eprintln!("  sim: fsync dir {} failed {failed}", dir.display());
        }
        if failed {
            s.stats.sync_errors += 1;
            return Err(eio());
        }
        for op in s.dir_pending.remove(dir).unwrap_or_default() {
            s.apply_dir_op(op);
        }
        Ok(())
    })
}

// ---- the model ---------------------------------------------------------------------------

impl Sim {
    /// Counts an I/O call; fails it (and all later ones) once the power is cut.
    fn tick(&mut self) -> io::Result<()> {
        self.stats.io_calls += 1;
        if self.halt_at_call.is_some_and(|at| self.stats.io_calls >= at) {
            self.halted = true;
        }
        if self.halted {
            return Err(eio());
        }
        Ok(())
    }

    fn fault(&mut self, ppm: u32) -> bool {
        self.faults_enabled && self.rng.chance_ppm(ppm)
    }

    fn maybe_flip(&mut self, buf: &mut [u8]) {
        if !buf.is_empty() && self.fault(self.faults.read_flip_ppm) {
            let i = self.rng.below(buf.len() as u64) as usize;
            buf[i] ^= 1 << self.rng.below(8);
            self.stats.read_flips += 1;
        }
    }

    fn dir_op(&mut self, dir: PathBuf, op: DirOp) {
        self.dir_pending.entry(dir).or_default().push(op);
    }

    fn write(&mut self, ino: Ino, buf: &[u8], mut pos: u64) -> io::Result<()> {
        if !self.inodes.contains_key(&ino) {
            return Err(not_found());
        }
        let mut len = buf.len();
        let mut error = None;
        if self.fault(self.faults.write_error_ppm) {
            self.stats.write_errors += 1;
            let errno = if self.rng.below(2) == 0 { libc::EIO } else { libc::ENOSPC };
            error = Some(io::Error::from_raw_os_error(errno));
            let sectors = (buf.len() as u64).div_ceil(SECTOR_BYTES);
            len = ((self.rng.below(sectors + 1) * SECTOR_BYTES) as usize).min(buf.len());
        } else if self.inodes.get(&ino).is_some_and(|i| i.damageable) && self.fault(self.faults.misdirect_ppm)
        {
            self.stats.misdirected_writes += 1;
            let shift = (1 + self.rng.below(8)) * SECTOR_BYTES;
            pos = if self.rng.below(2) == 0 { pos + shift } else { pos.saturating_sub(shift) };
        }
        let now = self.now_ms;
        if self.trace {
            eprintln!("  sim: write ino {ino} at {pos} len {len}/{} error {error:?}", buf.len());
        }
        let inode = self.inodes.get_mut(&ino).ok_or_else(not_found)?;
        let bytes = &buf[..len];
        write_into(&mut inode.data, pos, bytes);
        let end = pos + len as u64;
        if len > 0 {
            inode
                .lost
                .retain(|&sector| !(sector >= pos / SECTOR_BYTES && sector <= (end - 1) / SECTOR_BYTES));
        }
        inode.pending.push(Pending::Write { pos, bytes: bytes.to_vec() });
        inode.mtime_ms = now;
        error.map_or(Ok(()), Err)
    }

    fn set_len(&mut self, ino: Ino, len: u64) -> io::Result<()> {
        let now = self.now_ms;
        if self.trace {
            eprintln!("  sim: set_len ino {ino} to {len}");
        }
        let inode = self.inodes.get_mut(&ino).ok_or_else(not_found)?;
        inode.data.resize(len as usize, 0);
        inode.lost.retain(|&sector| sector * SECTOR_BYTES < len);
        inode.pending.push(Pending::SetLen(len));
        inode.mtime_ms = now;
        Ok(())
    }

    fn datasync(&mut self, ino: Ino) -> io::Result<()> {
        if !self.inodes.contains_key(&ino) {
            return Err(not_found());
        }
        let failed = self.fault(self.faults.sync_error_ppm);
        if self.trace {
            eprintln!("  sim: fdatasync ino {ino} failed {failed}");
        }
        let inode = self.inodes.get_mut(&ino).ok_or_else(not_found)?;
        if failed {
            self.stats.sync_errors += 1;
            // Linux marks the pages clean: they stay visible but will never reach the disk.
            for p in inode.pending.drain(..) {
                if let Pending::Write { pos, bytes } = p {
                    if !bytes.is_empty() {
                        let end = pos + bytes.len() as u64;
                        inode.lost.extend(pos / SECTOR_BYTES..=(end - 1) / SECTOR_BYTES);
                    }
                }
            }
            return Err(eio());
        }
        let old = std::mem::replace(&mut inode.durable, inode.data.clone());
        for &sector in &inode.lost {
            for i in sector * SECTOR_BYTES..(sector + 1) * SECTOR_BYTES {
                if let Some(b) = inode.durable.get_mut(i as usize) {
                    *b = old.get(i as usize).copied().unwrap_or(0);
                }
            }
        }
        inode.pending.clear();
        Ok(())
    }

    fn apply_dir_op(&mut self, op: DirOp) {
        match op {
            DirOp::Link(p, ino) => {
                self.durable_names.insert(p, ino);
            }
            DirOp::Unlink(p) => {
                self.durable_names.remove(&p);
            }
            DirOp::Rename(from, to, ino) => {
                self.durable_names.remove(&from);
                self.durable_names.insert(to, ino);
            }
            DirOp::Mkdir(p) => {
                self.durable_dirs.insert(p);
            }
            DirOp::Rmdir(p) => {
                self.durable_names.retain(|n, _| !n.starts_with(&p));
                self.durable_dirs.retain(|d| !d.starts_with(&p));
            }
        }
    }

    fn crash(&mut self) {
        self.stats.crashes += 1;
        for (_, ops) in std::mem::take(&mut self.dir_pending) {
            for op in ops {
                if self.rng.below(2) == 0 {
                    self.apply_dir_op(op);
                } else {
                    self.stats.dir_ops_undone += 1;
                }
            }
        }
        let dirs = &self.durable_dirs;
        self.durable_names
            .retain(|p, _| p.ancestors().skip(1).all(|a| a.as_os_str().is_empty() || dirs.contains(a)));
        let live: BTreeSet<Ino> = self.durable_names.values().copied().collect();
        self.inodes.retain(|ino, _| live.contains(ino));
        let inos: Vec<Ino> = self.inodes.keys().copied().collect();
        for ino in inos {
            self.settle(ino);
        }
        if self.fault(self.faults.latent_error_ppm) {
            self.latent_error();
        }
        self.names = self.durable_names.clone();
        self.dirs = self.durable_dirs.clone();
        self.halt_at_call = None;
        self.halted = false;
    }

    /// Power loss for one file: durable bytes plus a random subset of its pending operations.
    fn settle(&mut self, ino: Ino) {
        let Some(mut inode) = self.inodes.remove(&ino) else { return };
        if self.trace {
            eprintln!(
                "  sim: power loss ino {ino}: durable {} bytes, {} pending",
                inode.durable.len(),
                inode.pending.len()
            );
        }
        let mut data = std::mem::take(&mut inode.durable);
        for p in inode.pending.drain(..) {
            match p {
                Pending::SetLen(len) => {
                    if self.rng.below(2) == 0 {
                        data.resize(len as usize, 0);
                    }
                }
                Pending::Write { pos, bytes } => match self.rng.below(10) {
                    0..=2 => self.stats.writes_lost += 1,
                    3..=7 => write_into(&mut data, pos, &bytes),
                    _ => {
                        self.stats.writes_torn += 1;
                        self.torn_write(&mut data, pos, &bytes);
                    }
                },
            }
        }
        inode.data = data.clone();
        inode.durable = data;
        inode.lost.clear();
        self.inodes.insert(ino, inode);
    }

    /// Lands a random subset of the write's sectors (aligned to file positions).
    fn torn_write(&mut self, data: &mut Vec<u8>, pos: u64, bytes: &[u8]) {
        let end = pos + bytes.len() as u64;
        let mut at = pos;
        while at < end {
            let next = ((at / SECTOR_BYTES) + 1) * SECTOR_BYTES;
            let stop = next.min(end);
            if self.rng.below(2) == 0 {
                write_into(data, at, &bytes[(at - pos) as usize..(stop - pos) as usize]);
            }
            at = stop;
        }
    }

    fn latent_error(&mut self) {
        let candidates: Vec<Ino> =
            self.inodes.iter().filter(|(_, i)| i.damageable && !i.data.is_empty()).map(|(k, _)| *k).collect();
        if candidates.is_empty() {
            return;
        }
        let ino = candidates[self.rng.below(candidates.len() as u64) as usize];
        let bit = self.rng.below(8);
        if let Some(inode) = self.inodes.get_mut(&ino) {
            let i = self.rng.below(inode.data.len() as u64) as usize;
            inode.data[i] ^= 1 << bit;
            inode.durable[i] ^= 1 << bit;
            self.stats.latent_errors += 1;
        }
    }
}

fn is_log(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "log")
}
