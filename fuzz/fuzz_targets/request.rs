//! Request decoder: bytes a client sends -> frames -> header -> body, for every API the broker
//! answers (see riptide_fuzz::request_stream).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| riptide_fuzz::request_stream(data));
