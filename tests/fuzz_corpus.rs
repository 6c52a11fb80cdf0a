//! Replays every committed fuzz corpus file (`fuzz/corpus/{target}`, minimised by
//! `scripts/fuzz`) through the same entry points the fuzz targets use, on the stable
//! toolchain: a regression on an input the fuzzer once found interesting fails CI without a
//! nightly build.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // A panic names the file: `cargo +nightly fuzz run TARGET FILE` reproduces it.
        eprintln!("{}", path.display());
        f(&data);
        n += 1;
    }
    assert!(n > 0, "the {target} corpus is empty");
}

#[test]
fn rtmp_session_corpus() {
    replay("rtmp_session", relay::fuzzing::rtmp_session);
}

#[test]
fn flv_tags_corpus() {
    replay("flv_tags", relay::fuzzing::flv_tags);
}

#[test]
fn publish_path_corpus() {
    replay("publish_path", relay::fuzzing::publish_path);
}

#[test]
fn ll_hls_request_corpus() {
    replay("ll_hls_request", origin::fuzzing::ll_hls_request);
}

#[test]
fn config_corpus() {
    replay("config", glasscast::fuzzing::config);
}
