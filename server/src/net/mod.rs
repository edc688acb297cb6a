//! Networking: accepting connections, reading size-limited frames, answering pipelined
//! requests in order. Knows the Kafka frame (int32 size + bytes) and nothing of any API.

pub mod connection;
pub mod frame;
pub mod landing;
pub mod listener;
pub mod zerocopy;
