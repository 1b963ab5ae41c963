//! Arbitrary bytes as a client's TCP stream into one RTMP connection: the real handshake,
//! chunk guard, rml_rtmp session, publish authorisation, FLV demuxer and segmenter
//! (`ingest::fuzzing::rtmp_connection`). Byte 0 picks the container (bit 0: MPEG-TS); the
//! rest is what the client sends. App `live`, stream key `key`.

#![no_main]

mod common;

use ingest::Container;
use ingest::fuzzing::{config, rtmp_connection};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::contain_rml_panics();
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let container = if mode & 1 == 1 { Container::Ts } else { Container::Fmp4 };
    let events = rtmp_connection(config(container), stream).expect("runtime");
    common::check_events(&events);
});
