//! Kafka framing: a big-endian int32 size, then that many bytes. The size is checked against
//! `socket.request.max.bytes` before any buffer grows, and the buffer grows only as bytes
//! actually arrive (at most `GROWTH_STEP` ahead), so a peer announcing 2 GiB and sending
//! nothing costs no memory.

use bytes::{Buf, Bytes, BytesMut};

/// How far ahead of the received bytes the read buffer may be reserved.
pub const GROWTH_STEP: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Negative or above the limit: the connection is closed, as Kafka does.
    BadSize { size: i64, limit: u32 },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadSize { size, limit } => {
                write!(f, "frame size {size} outside 0..={limit} (socket.request.max.bytes)")
            }
        }
    }
}

/// Takes one complete frame (without its size prefix) off the front of `buf`, or says how many
/// more bytes the buffer should have room for.
pub fn take_frame(buf: &mut BytesMut, limit: u32) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        buf.reserve(4 + 4096);
        return Ok(None);
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if size < 0 || size as u32 > limit {
        return Err(FrameError::BadSize { size: i64::from(size), limit });
    }
    let total = 4 + size as usize;
    if buf.len() >= total {
        let mut frame = buf.split_to(total);
        frame.advance(4);
        return Ok(Some(frame.freeze()));
    }
    let want = (total - buf.len()).min(GROWTH_STEP);
    buf.reserve(want);
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_pipelined_frames_and_waits_for_partial_ones() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0, 0, 0, 2, b'a', b'b', 0, 0, 0, 3, b'c']);
        assert_eq!(take_frame(&mut buf, 100).unwrap().as_deref(), Some(&b"ab"[..]));
        assert_eq!(take_frame(&mut buf, 100).unwrap(), None);
        buf.extend_from_slice(b"de");
        assert_eq!(take_frame(&mut buf, 100).unwrap().as_deref(), Some(&b"cde"[..]));
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_negative_and_oversized_without_allocating() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(take_frame(&mut buf, 100 << 20).is_err());
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert!(take_frame(&mut buf, 100).is_err());
        // Large but legal: reserves at most one growth step ahead.
        let mut buf = BytesMut::from(&[0x05, 0, 0, 0][..]);
        assert_eq!(take_frame(&mut buf, u32::MAX / 2).unwrap(), None);
        assert!(buf.capacity() <= 4 + GROWTH_STEP + 4096);
    }
}
