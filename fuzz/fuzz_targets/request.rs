//! Request decoder: bytes a client sends -> frames -> header -> body, for every API the broker
//! answers (see riptide_server::fuzzing::request_stream).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| riptide_server::fuzzing::request_stream(data));
