//! How a stream maps onto MoQ (PROTOCOL §15.2): broadcast path, track names, group numbering,
//! frames, and the unsigned catalog that describes them. Pure data, no networking.

use manifest_signer::objects::limits;
use manifest_signer::{Container, ManifestRoot, StreamId};
use serde::{Deserialize, Serialize};

/// The STREAM_ANNOUNCE track: one group per announce, group sequence = the announce's `seq`,
/// one frame = the announce's wire bytes.
pub const ANNOUNCE_TRACK: &str = "announce";
/// The MANIFEST_ROOT track: one group per manifest, group sequence = the manifest's `seq`, one
/// frame = the manifest's wire bytes.
pub const MANIFEST_TRACK: &str = "manifest";
/// The catalog track: one group per change, one frame of JSON ([`Catalog`]). Unsigned, a hint.
pub const CATALOG_TRACK: &str = "catalog";
/// Prefix of a rendition's track name: `rendition/<name>`.
pub const RENDITION_PREFIX: &str = "rendition/";
/// Version of the catalog JSON.
pub const CATALOG_VERSION: u64 = 1;

/// Tracks a subscriber follows per broadcast at most (announce, manifest, catalog + renditions).
pub const MAX_TRACKS: usize = 3 + limits::MAX_RENDITIONS;
/// Frames in a rendition group: the init segment (fMP4 only) and the media segment.
pub const MAX_FRAMES_PER_GROUP: usize = 2;
/// Largest catalog frame a subscriber reads.
pub const MAX_CATALOG_BYTES: usize = 16 * 1024;

/// The broadcast path of a stream: its id, relative to the URL the session was opened with.
pub fn broadcast_path(id: &StreamId) -> String {
    id.to_string()
}

pub fn rendition_track(name: &str) -> String {
    format!("{RENDITION_PREFIX}{name}")
}

/// The rendition name in a track name, if it is a rendition track with a valid name.
pub fn rendition_of(track: &str) -> Option<&str> {
    let name = track.strip_prefix(RENDITION_PREFIX)?;
    manifest_signer::objects::check_rendition_name(name).ok()?;
    Some(name)
}

/// The catalog frame: what a player needs to pick tracks before the first manifest arrives.
/// Everything in it is repeated in the signed manifest, which is what a subscriber trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub version: u64,
    pub stream: String,
    pub announce: String,
    pub manifest: String,
    pub renditions: Vec<CatalogRendition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogRendition {
    pub name: String,
    pub track: String,
    pub container: Container,
    /// `true` when each group's first frame is the init segment (fMP4).
    pub init_in_group: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codecs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<u64>,
}

impl Catalog {
    pub fn of(m: &ManifestRoot) -> Catalog {
        Catalog {
            version: CATALOG_VERSION,
            stream: m.stream.to_string(),
            announce: ANNOUNCE_TRACK.into(),
            manifest: MANIFEST_TRACK.into(),
            renditions: m
                .renditions
                .iter()
                .map(|r| CatalogRendition {
                    name: r.name.clone(),
                    track: rendition_track(&r.name),
                    container: r.container,
                    init_in_group: r.container == Container::Fmp4,
                    codecs: r.codecs.clone(),
                    resolution: r.resolution.clone(),
                    bandwidth: r.bandwidth,
                })
                .collect(),
        }
    }
}

/// How long groups stay in MoQ caches behind the live edge, and how late a subscriber still
/// takes a segment: a few segment durations.
pub fn media_max_age(target_duration_s: u64) -> std::time::Duration {
    std::time::Duration::from_secs(target_duration_s.clamp(1, limits::MAX_TARGET_DURATION_S) * 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendition_tracks_round_trip_and_refuse_bad_names() {
        assert_eq!(rendition_of(&rendition_track("source")), Some("source"));
        assert_eq!(rendition_of("rendition/720p"), Some("720p"));
        assert_eq!(rendition_of("rendition/"), None);
        assert_eq!(rendition_of("rendition/../x"), None);
        assert_eq!(rendition_of("manifest"), None);
    }

    #[test]
    fn catalog_json_round_trips() {
        let c = Catalog {
            version: 1,
            stream: "x".into(),
            announce: ANNOUNCE_TRACK.into(),
            manifest: MANIFEST_TRACK.into(),
            renditions: vec![CatalogRendition {
                name: "source".into(),
                track: rendition_track("source"),
                container: Container::Fmp4,
                init_in_group: true,
                codecs: Some("avc1.64001f".into()),
                resolution: None,
                bandwidth: Some(1000),
            }],
        };
        let text = serde_json::to_string(&c).expect("serializes");
        assert!(text.contains("\"container\":\"fmp4\""), "{text}");
        assert_eq!(serde_json::from_str::<Catalog>(&text).expect("parses"), c);
    }
}
