//! Binding the node's single-socket listeners (controller, REST, metrics). A predecessor killed
//! with SIGKILL can hold its listening socket for a moment after it is reaped (io_uring tears
//! its ring down asynchronously), so a restart on the same port retries EADDRINUSE for up to
//! 5 s instead of failing. Port 0 asks the kernel for a free port, as with any bind.

use std::net::SocketAddr;
use std::time::Duration;

pub fn bind_retrying(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let mut attempts = 0;
    loop {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        match socket.bind(&addr.into()).and_then(|_| socket.listen(128)) {
            Ok(()) => return Ok(socket.into()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The address a local client dials to reach a listener bound to `addr`: the loopback of the
/// same family when it is bound to the wildcard.
pub fn local_dial_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && addr.is_ipv6() => {
            SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], addr.port()))
        }
        ip if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        _ => addr,
    }
}
