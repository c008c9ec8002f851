//! A WAL file as a crash may leave it, after a valid header: replay hands back whole records,
//! cuts the rest from the file, and never panics; what it hands back is what was framed there.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A version-1 WAL file header: magic and format version.
const HEADER: &[u8; 12] = b"CLEWWAL\0\x01\0\0\0";

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(format!("{:020}.wal", 1));
    std::fs::write(&path, [HEADER.as_slice(), data].concat()).expect("write");
    let mut records = Vec::new();
    clew_wal::replay(dir.path(), |_, payload| {
        records.push(payload.to_vec());
        true
    })
    .expect("a file with a valid header replays");
    let framed: Vec<u8> = records.iter().flat_map(|record| clew_wal::frame(record)).collect();
    assert!(data.starts_with(&framed), "replayed records that were not in the file");
    let kept = std::fs::read(&path).expect("read back");
    assert_eq!(kept, [HEADER.as_slice(), &framed].concat(), "the file keeps exactly the records replayed");
});
