//! Security and stored-state decoders: SCRAM client messages, sealed batches read from disk,
//! and the coordinators' internal-topic records (see riptide_server::fuzzing::security).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| riptide_server::fuzzing::security(data));
