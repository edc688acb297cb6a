//! Replays every kept fuzz crash input (`fuzz/regressions/<target>/`) and the seed corpus
//! (`fuzz/corpus/<target>/`) through the functions the fuzz targets run, with plain `cargo test`:
//! a fixed crash stays fixed even where cargo-fuzz is not installed.

use std::path::Path;

use riptide_server::fuzzing::{record_set, request_stream, security};

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else { continue };
        for entry in entries {
            let path = entry.expect("readable directory entry").path();
            let data = std::fs::read(&path).expect("readable input");
            eprintln!("{}", path.display());
            run(&data);
            n += 1;
        }
    }
    n
}

#[test]
fn request_inputs_replay_without_crashing() {
    assert!(replay("request", request_stream) > 0, "no request inputs found under fuzz/");
}

#[test]
fn record_batch_inputs_replay_without_crashing() {
    assert!(replay("record_batch", record_set) > 0, "no record_batch inputs found under fuzz/");
}

#[test]
fn security_inputs_replay_without_crashing() {
    assert!(replay("security", security) > 0, "no security inputs found under fuzz/");
}
