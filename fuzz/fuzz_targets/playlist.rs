//! Playlists rendered from any MANIFEST_ROOT body that passes the decoder's checks
//! (canonical-encodable, the right fields, `validate`): rendering never panics, the result
//! parses as HLS with one entry per segment and rendition, and the body signs and verifies
//! back to itself. The input is the manifest as JSON (wire form or bare body: `v`, `type`
//! and `sig` are dropped); the signature is not checked, so the fuzzer reaches the renderer.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use manifest_signer::canonical::to_canonical;
use manifest_signer::playlist::{render_master, render_media};
use manifest_signer::{ManifestRoot, Signed, SignedObject, StreamKey};
use serde_json::Value;

fn key() -> &'static StreamKey {
    static KEY: OnceLock<StreamKey> = OnceLock::new();
    KEY.get_or_init(|| StreamKey::from_seed([7; 32]))
}

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for f in ["v", "type", "sig"] {
        obj.remove(f);
    }
    let value = Value::Object(obj);
    if to_canonical(&value).is_err() {
        return; // from_wire refuses what has no canonical encoding
    }
    let Ok(mut body) = serde_json::from_value::<ManifestRoot>(value) else {
        return;
    };
    if body.validate().is_err() {
        return;
    }

    let master = render_master(&body);
    match m3u8_rs::parse_playlist_res(master.as_bytes()) {
        // One entry per rendition: a variant, or (grouped audio, 1.4) an EXT-X-MEDIA.
        Ok(m3u8_rs::Playlist::MasterPlaylist(p)) => {
            assert_eq!(
                p.variants.len() + p.alternatives.len(),
                body.renditions.len(),
                "{master}"
            )
        }
        other => panic!("master playlist does not parse: {other:?}\n{master}"),
    }
    for r in &body.renditions {
        let media = render_media(r);
        match m3u8_rs::parse_playlist_res(media.as_bytes()) {
            Ok(m3u8_rs::Playlist::MediaPlaylist(p)) => {
                assert_eq!(p.segments.len(), r.segments.len(), "{media}");
                assert_eq!(p.end_list, r.ended);
                assert_eq!(p.media_sequence, r.media_sequence(0));
            }
            other => panic!("media playlist does not parse: {other:?}\n{media}"),
        }
    }

    body.stream = key().stream_id();
    if let Ok(signed) = Signed::sign(body.clone(), key()) {
        let back = Signed::<ManifestRoot>::from_wire(signed.wire())
            .unwrap_or_else(|e| panic!("a signed manifest does not verify: {e}"));
        assert_eq!(back.body, body);
        assert_eq!(back.id, signed.id);
    }
});
