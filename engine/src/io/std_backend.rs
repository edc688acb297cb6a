//! Std backend: positional `pwrite`/`pread` and `fdatasync` through the standard library,
//! with the test fault switch consulted before each write and sync.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::fault;

pub(super) fn write_all_at(file: &File, buf: &[u8], pos: u64) -> io::Result<()> {
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
    fault::on_sync()?;
    file.sync_data()
}
