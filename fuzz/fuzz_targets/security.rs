//! Security decoders: SCRAM client messages and sealed batches read from disk (see
//! riptide_server::fuzzing::security).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| riptide_server::fuzzing::security(data));
