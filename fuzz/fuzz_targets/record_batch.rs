//! Record-batch validator: a Produce record set through validate / assign / check_stored /
//! decompress / walk_records (see riptide_server::fuzzing::record_set).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| riptide_server::fuzzing::record_set(data));
