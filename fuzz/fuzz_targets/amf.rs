//! Differential: the AMF0 depth pre-check (ingest) against rml_amf0 0.3, the decoder rml_rtmp
//! uses. Whenever rml_amf0 decodes the input, the pre-check accepts it exactly when the decoded
//! values nest no deeper than the bound.

#![no_main]

mod common;

use std::io::Cursor;

use ingest::fuzzing::{AMF0_MAX_DEPTH, amf0_depth_ok};
use libfuzzer_sys::fuzz_target;
use rml_rtmp::rml_amf0::{self, Amf0Value};

/// Container levels: 0 for a scalar, 1 + the deepest child for objects and arrays.
fn levels(v: &Amf0Value) -> usize {
    match v {
        Amf0Value::Object(m) => 1 + m.values().map(levels).max().unwrap_or(0),
        Amf0Value::StrictArray(a) => 1 + a.iter().map(levels).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    common::contain_rml_panics();
    let ok = amf0_depth_ok(data);
    // rml_amf0 recurses once per level (4 bytes each): 8 KiB stays well inside the stack.
    if data.len() > 8 * 1024 {
        return;
    }
    if let Ok(values) = rml_amf0::deserialize(&mut Cursor::new(data)) {
        let deepest = values.iter().map(levels).max().unwrap_or(0);
        assert_eq!(
            ok,
            deepest <= AMF0_MAX_DEPTH,
            "pre-check {ok} but rml_amf0 nests {deepest} levels"
        );
    }
});
