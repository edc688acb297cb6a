//! TLS on a compio TCP stream, for both ends (the broker's listeners, this crate's
//! connections): rustls's state machine between the socket and a connection's reader and
//! writer tasks. Both tasks share the `rustls::Connection` (never borrowed across an await);
//! every write of ciphertext to the socket happens under one async lock, so TLS records leave
//! in the order rustls produced them whoever (the writer's frames, the reader's handshake
//! replies and alerts) produced them.
//!
//! Costs zero copy: record bytes are read into memory and encrypted (kTLS would keep splice;
//! the kernel this was built on does not offer the `tls` ULP, see docs/SECURITY.md).

use std::cell::RefCell;
use std::io::{Read, Write};

use bytes::BytesMut;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use futures_util::lock::Mutex;
use rustls::pki_types::ServerName;

/// Ciphertext read per socket read.
const READ_CHUNK: usize = 64 * 1024;

pub struct TlsStream {
    stream: TcpStream,
    tls: RefCell<rustls::Connection>,
    write_lock: Mutex<()>,
    cipher: RefCell<Option<Vec<u8>>>,
}

impl TlsStream {
    /// The broker's end of an accepted connection.
    pub fn server(
        stream: TcpStream,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> std::io::Result<TlsStream> {
        let tls = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
        Ok(TlsStream::new(stream, tls.into()))
    }

    /// A client's end; `start` sends its first handshake message.
    pub fn client(
        stream: TcpStream,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> std::io::Result<TlsStream> {
        let tls = rustls::ClientConnection::new(config, server_name).map_err(std::io::Error::other)?;
        Ok(TlsStream::new(stream, tls.into()))
    }

    fn new(stream: TcpStream, tls: rustls::Connection) -> TlsStream {
        TlsStream {
            stream,
            tls: RefCell::new(tls),
            write_lock: Mutex::new(()),
            cipher: RefCell::new(Some(Vec::with_capacity(READ_CHUNK))),
        }
    }

    /// Sends what rustls has to say first (a client's hello).
    pub async fn start(&self) -> std::io::Result<()> {
        self.flush().await
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.stream
    }

    pub fn is_handshaking(&self) -> bool {
        self.tls.borrow().is_handshaking()
    }

    /// The client certificate's DER, when the client showed one.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        self.tls.borrow().peer_certificates().and_then(|c| c.first()).map(|c| c.as_ref().to_vec())
    }

    /// Appends decrypted bytes to `out`; `Ok(0)` when the peer closed.
    pub async fn read_into(&self, out: &mut BytesMut) -> std::io::Result<usize> {
        loop {
            let n = self.take_plaintext(out)?;
            if n > 0 {
                return Ok(n);
            }
            if self.tls.borrow().wants_read() || self.is_handshaking() {
                let buf = self.cipher.borrow_mut().take().unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
                let mut buf = buf;
                buf.clear();
                let mut reader: &TcpStream = &self.stream;
                let compio::BufResult(res, buf) = reader.append(buf).await;
                let got = res?;
                if got == 0 {
                    return Ok(0);
                }
                let fed = self.feed(&buf, out);
                *self.cipher.borrow_mut() = Some(buf);
                // Whatever rustls wants to say (handshake, alert) goes out before an error
                // ends the connection, so the client learns why.
                self.flush().await?;
                let n = fed?;
                if n > 0 {
                    return Ok(n);
                }
            } else {
                return Ok(0); // close_notify received
            }
        }
    }

    /// Decrypts `bytes` into `out`, draining the plaintext after every record so rustls's
    /// plaintext buffer (bounded) never fills; how many plaintext bytes came out.
    fn feed(&self, mut bytes: &[u8], out: &mut BytesMut) -> std::io::Result<usize> {
        let mut total = 0;
        while !bytes.is_empty() {
            {
                let mut tls = self.tls.borrow_mut();
                tls.read_tls(&mut bytes)?;
                tls.process_new_packets()
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            }
            total += self.take_plaintext(out)?;
        }
        Ok(total)
    }

    fn take_plaintext(&self, out: &mut BytesMut) -> std::io::Result<usize> {
        let mut tls = self.tls.borrow_mut();
        let mut total = 0;
        loop {
            let start = out.len();
            out.resize(start + 16 * 1024, 0);
            match tls.reader().read(&mut out[start..]) {
                Ok(n) => {
                    out.truncate(start + n);
                    total += n;
                    if n == 0 {
                        return Ok(total);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    out.truncate(start);
                    return Ok(total);
                }
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            }
        }
    }

    /// Encrypts and sends `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> std::io::Result<()> {
        let _guard = self.write_lock.lock().await;
        while !data.is_empty() {
            let n = self.tls.borrow_mut().writer().write(data)?;
            data = &data[n..];
            self.flush_locked().await?;
            if n == 0 && !data.is_empty() {
                return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "TLS buffer full"));
            }
        }
        Ok(())
    }

    /// Sends close_notify (best effort).
    pub async fn close(&self) {
        self.tls.borrow_mut().send_close_notify();
        let _ = self.flush().await;
    }

    async fn flush(&self) -> std::io::Result<()> {
        let _guard = self.write_lock.lock().await;
        self.flush_locked().await
    }

    async fn flush_locked(&self) -> std::io::Result<()> {
        loop {
            let out = {
                let mut tls = self.tls.borrow_mut();
                if !tls.wants_write() {
                    return Ok(());
                }
                let mut out = Vec::with_capacity(READ_CHUNK);
                while tls.wants_write() {
                    tls.write_tls(&mut out)?;
                }
                out
            };
            let mut writer: &TcpStream = &self.stream;
            writer.write_all(out).await.0?;
        }
    }
}

/// A client TLS config that trusts the CA certificates in `ca_pem` and, for mTLS, shows the
/// certificate chain and key in `identity` (PEM files).
#[allow(deprecated)] // ring: see the server's security::tls::provider for why
pub fn client_config(
    ca_pem: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca_pem).map_err(|e| format!("{}: {e}", ca_pem.display()))? {
        roots
            .add(c.map_err(|e| format!("{}: {e}", ca_pem.display()))?)
            .map_err(|e| format!("{}: {e}", ca_pem.display()))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| format!("{}: {e}", cert.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?
        }
    };
    Ok(std::sync::Arc::new(config))
}
