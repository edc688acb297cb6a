//! Zero-copy file → socket for Fetch responses: `splice` from the segment file into a pipe and
//! from the pipe into the socket, so record bytes never enter user space. Ranges served from
//! memory go by io_uring zero-copy send instead (`send_pinned`).
//!
//! io_uring driver: both splices are io_uring operations (the accepted socket is blocking, so
//! the pipe → socket half runs in io_uring's worker pool without blocking the shard).
//! epoll driver: file → pipe is a direct `splice(2)` (a page-cache read, as `sendfile` would do),
//! pipe → socket waits for readiness through the event loop.
//! Any splice failure other than the peer going away falls back to a copy for the rest of the
//! range, so an exotic filesystem costs speed, never correctness.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use bytes::Buf;
use compio::driver::op::Splice;
use compio::io::{AsyncWriteExt, AsyncWriteZerocopy};
use compio::net::TcpStream;
use riptide_engine::ReadSlice;
use rustix::pipe::SpliceFlags;

/// Pipe capacity asked for: one splice pair moves up to this many bytes.
const PIPE_BYTES: usize = 1 << 20;

pub struct ZeroCopy {
    pipe_read: Arc<OwnedFd>,
    pipe_write: Arc<OwnedFd>,
    socket: Arc<OwnedFd>,
    pipe_bytes: usize,
    uring: bool,
}

impl ZeroCopy {
    pub fn new(stream: &TcpStream) -> std::io::Result<ZeroCopy> {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created by pipe2 and are owned by nobody else.
        let (pipe_read, pipe_write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on a pipe we own; failure only leaves the default size.
        let size =
            unsafe { libc::fcntl(pipe_write.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BYTES as libc::c_int) };
        let pipe_bytes = if size > 0 { size as usize } else { 64 * 1024 };
        let socket = socket2::SockRef::from(stream).try_clone()?;
        let uring = on_uring();
        Ok(ZeroCopy {
            pipe_read: Arc::new(pipe_read),
            pipe_write: Arc::new(pipe_write),
            socket: Arc::new(OwnedFd::from(socket)),
            pipe_bytes,
            uring,
        })
    }

    /// Sends `slice` to the socket. On error the connection must be closed (the pipe may hold
    /// bytes of a half-sent range).
    pub async fn send(&self, stream: &TcpStream, slice: &ReadSlice) -> std::io::Result<()> {
        let mut sent = 0usize;
        let total = slice.len as usize;
        while sent < total {
            let chunk = (total - sent).min(self.pipe_bytes);
            let position = slice.position + sent as u64;
            let filled = match self.fill_pipe(slice, position, chunk).await {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "segment shorter than its index",
                    ))
                }
                Ok(n) => n,
                Err(e) if is_unsupported(&e) => return copy_rest(stream, slice, sent).await,
                Err(e) => return Err(e),
            };
            self.drain_pipe(filled).await?;
            sent += filled;
        }
        Ok(())
    }

    async fn fill_pipe(&self, slice: &ReadSlice, position: u64, len: usize) -> std::io::Result<usize> {
        if self.uring {
            let op = Splice::new(
                slice.file.clone(),
                position as i64,
                self.pipe_write.clone(),
                -1,
                len,
                SpliceFlags::empty(),
            );
            return compio::runtime::submit(op).await.0;
        }
        let mut offset = position as libc::loff_t;
        // SAFETY: valid descriptors owned by `slice` and `self`; `offset` outlives the call.
        let n = unsafe {
            libc::splice(
                slice.file.as_fd().as_raw_fd(),
                &mut offset,
                self.pipe_write.as_raw_fd(),
                std::ptr::null_mut(),
                len,
                0,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    async fn drain_pipe(&self, mut len: usize) -> std::io::Result<()> {
        while len > 0 {
            let op = Splice::new(self.pipe_read.clone(), -1, self.socket.clone(), -1, len, SpliceFlags::MORE);
            let n = compio::runtime::submit(op).await.0?;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "peer closed"));
            }
            len -= n;
        }
        Ok(())
    }
}

/// Whether this thread's event loop is io_uring (the epoll fallback has neither io_uring
/// splices nor zero-copy sends).
pub fn on_uring() -> bool {
    compio::runtime::Runtime::with_current(|r| r.driver_type()).is_iouring()
}

/// Sends `bytes` by io_uring zero-copy send: the kernel references the pages instead of
/// copying them, and keeps them until the peer has acknowledged the data. Each send's buffer
/// (a reference to the tail cache's or the stage's memory, which is not reused while any
/// reference lives) is held by a task until the kernel's completion notice frees it, so the
/// next send need not wait for the peer's acknowledgement.
pub async fn send_pinned(tcp: &TcpStream, mut bytes: bytes::Bytes) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let mut writer: &TcpStream = tcp;
        let compio::BufResult(sent, released) = writer.write_zerocopy(bytes.clone()).await;
        compio::runtime::spawn(released).detach();
        match sent? {
            0 => return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "peer closed")),
            n => bytes.advance(n),
        }
    }
    Ok(())
}

fn is_unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP))
}

/// The copying path: read the rest of the range and write it.
async fn copy_rest(stream: &TcpStream, slice: &ReadSlice, from: usize) -> std::io::Result<()> {
    let mut buf = vec![0u8; slice.len as usize - from];
    slice.read_into_from(&mut buf, from as u64)?;
    let mut writer: &TcpStream = stream;
    writer.write_all(buf).await.0
}
