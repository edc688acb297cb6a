//! The socket side of landing produced batches in the stage's memory (`api::landing`): a
//! landing buffer as the target of a socket read.

use riptide_engine::io::direct::LandingBuf;

/// A landing buffer as the target of a socket read: the read fills the batch's region from
/// what was received so far on.
pub struct Recv(pub LandingBuf);

impl compio::buf::IoBuf for Recv {
    fn as_init(&self) -> &[u8] {
        self.0.received()
    }
}

impl compio::buf::SetLen for Recv {
    unsafe fn set_len(&mut self, len: usize) {
        self.0.set_received(len);
    }
}

impl compio::buf::IoBufMut for Recv {
    fn as_uninit(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        let region = self.0.region_mut();
        // SAFETY: initialized bytes are valid `MaybeUninit<u8>`, and a read only writes them.
        unsafe { std::mem::transmute::<&mut [u8], &mut [std::mem::MaybeUninit<u8>]>(region) }
    }
}
