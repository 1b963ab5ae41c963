//! CMAF / fragmented MP4 writer: the init segment (ftyp + moov) and media segments
//! (styp + moof + mdat). Only what HLS needs; sizes are bounded by the segmenter.

use bytes::Bytes;

use crate::codec::{AudioConfig, VideoCodec, VideoConfig};

/// Timescale of video tracks (90 kHz, as in MPEG-TS, so durations stay exact at 30/60 fps
/// and at 29.97).
pub(crate) const VIDEO_TIMESCALE: u32 = 90_000;

/// A track in the init segment.
#[derive(Debug, Clone)]
pub(crate) enum TrackSpec {
    Video {
        config: VideoConfig,
        width: u32,
        height: u32,
    },
    Audio(AudioConfig),
}

impl TrackSpec {
    pub(crate) fn timescale(&self) -> u32 {
        match self {
            TrackSpec::Video { .. } => VIDEO_TIMESCALE,
            TrackSpec::Audio(a) => a.sample_rate,
        }
    }
}

/// One sample of a run, in the track's timescale.
#[derive(Debug, Clone)]
pub(crate) struct RunSample {
    pub duration: u32,
    pub cts: i32,
    pub keyframe: bool,
    pub data: Bytes,
}

/// The samples of one track in one fragment.
#[derive(Debug, Clone)]
pub(crate) struct TrackRun<'a> {
    /// 1-based track id, the index in the init segment's track list + 1.
    pub track_id: u32,
    pub base_decode_time: u64,
    pub samples: &'a [RunSample],
}

/// Minimal box writer: `open` writes a header with a placeholder size, `close` patches it.
#[derive(Debug, Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn open(&mut self, fourcc: &[u8; 4]) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(fourcc);
        start
    }

    fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
        let start = self.open(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
        start
    }

    fn close(&mut self, start: usize) {
        let size = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    }

    fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }
    fn matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }
}

/// Builds the init segment for `tracks` (track ids are 1..=n in order).
pub(crate) fn init_segment(tracks: &[TrackSpec]) -> Bytes {
    let mut w = Writer::default();
    let ftyp = w.open(b"ftyp");
    w.bytes(b"iso6");
    w.u32(0);
    for brand in [b"iso6", b"cmfc", b"isom", b"mp41"] {
        w.bytes(brand);
    }
    w.close(ftyp);

    let moov = w.open(b"moov");
    let mvhd = w.open_full(b"mvhd", 0, 0);
    w.u32(0); // creation
    w.u32(0); // modification
    w.u32(1000); // timescale
    w.u32(0); // duration
    w.u32(0x0001_0000); // rate
    w.u16(0x0100); // volume
    w.zeros(10);
    w.matrix();
    w.zeros(24);
    w.u32(u32::try_from(tracks.len()).unwrap_or(0).saturating_add(1)); // next_track_ID
    w.close(mvhd);

    for (i, track) in tracks.iter().enumerate() {
        write_trak(&mut w, u32::try_from(i).unwrap_or(0) + 1, track);
    }

    let mvex = w.open(b"mvex");
    for i in 0..tracks.len() {
        let trex = w.open_full(b"trex", 0, 0);
        w.u32(u32::try_from(i).unwrap_or(0) + 1);
        w.u32(1); // default sample description index
        w.u32(0);
        w.u32(0);
        w.u32(0);
        w.close(trex);
    }
    w.close(mvex);
    w.close(moov);
    Bytes::from(w.buf)
}

fn write_trak(w: &mut Writer, id: u32, track: &TrackSpec) {
    let (is_video, width, height) = match track {
        TrackSpec::Video { width, height, .. } => (true, *width, *height),
        TrackSpec::Audio(_) => (false, 0, 0),
    };
    let trak = w.open(b"trak");
    let tkhd = w.open_full(b"tkhd", 0, 0x3); // enabled, in movie
    w.u32(0);
    w.u32(0);
    w.u32(id);
    w.u32(0);
    w.u32(0); // duration
    w.zeros(8);
    w.u16(0); // layer
    w.u16(0); // alternate group
    w.u16(if is_video { 0 } else { 0x0100 });
    w.u16(0);
    w.matrix();
    w.u32(width << 16);
    w.u32(height << 16);
    w.close(tkhd);

    let mdia = w.open(b"mdia");
    let mdhd = w.open_full(b"mdhd", 0, 0);
    w.u32(0);
    w.u32(0);
    w.u32(track.timescale());
    w.u32(0);
    w.u16(0x55c4); // 'und'
    w.u16(0);
    w.close(mdhd);
    let hdlr = w.open_full(b"hdlr", 0, 0);
    w.u32(0);
    w.bytes(if is_video { b"vide" } else { b"soun" });
    w.zeros(12);
    w.bytes(if is_video { b"VideoHandler\0" } else { b"SoundHandler\0" });
    w.close(hdlr);

    let minf = w.open(b"minf");
    if is_video {
        let vmhd = w.open_full(b"vmhd", 0, 1);
        w.zeros(8);
        w.close(vmhd);
    } else {
        let smhd = w.open_full(b"smhd", 0, 0);
        w.zeros(4);
        w.close(smhd);
    }
    let dinf = w.open(b"dinf");
    let dref = w.open_full(b"dref", 0, 0);
    w.u32(1);
    let url = w.open_full(b"url ", 0, 1);
    w.close(url);
    w.close(dref);
    w.close(dinf);

    let stbl = w.open(b"stbl");
    let stsd = w.open_full(b"stsd", 0, 0);
    w.u32(1);
    match track {
        TrackSpec::Video { config, .. } => write_video_entry(w, config, width, height),
        TrackSpec::Audio(a) => write_audio_entry(w, a),
    }
    w.close(stsd);
    for fourcc in [b"stts", b"stsc", b"stco"] {
        let b = w.open_full(fourcc, 0, 0);
        w.u32(0);
        w.close(b);
    }
    let stsz = w.open_full(b"stsz", 0, 0);
    w.u32(0);
    w.u32(0);
    w.close(stsz);
    w.close(stbl);
    w.close(minf);
    w.close(mdia);
    w.close(trak);
}

fn write_video_entry(w: &mut Writer, config: &VideoConfig, width: u32, height: u32) {
    let (entry, cfg_box): (&[u8; 4], &[u8; 4]) = match config.codec {
        VideoCodec::Avc => (b"avc1", b"avcC"),
        VideoCodec::Hevc => (b"hvc1", b"hvcC"),
        VideoCodec::Av1 => (b"av01", b"av1C"),
    };
    let e = w.open(entry);
    w.zeros(6);
    w.u16(1); // data reference index
    w.zeros(16); // pre_defined, reserved
    w.u16(u16::try_from(width).unwrap_or(u16::MAX));
    w.u16(u16::try_from(height).unwrap_or(u16::MAX));
    w.u32(0x0048_0000);
    w.u32(0x0048_0000);
    w.u32(0);
    w.u16(1); // frame count
    w.zeros(32); // compressor name
    w.u16(0x0018);
    w.u16(0xffff);
    let c = w.open(cfg_box);
    w.bytes(&config.record);
    w.close(c);
    w.close(e);
}

/// Writes an MPEG-4 descriptor header with a 4-byte expandable size.
fn descriptor(w: &mut Writer, tag: u8, len: usize) {
    let len = u32::try_from(len).unwrap_or(0) & 0x0fff_ffff;
    w.u8(tag);
    w.u8(0x80 | (len >> 21) as u8 & 0x7f);
    w.u8(0x80 | (len >> 14) as u8 & 0x7f);
    w.u8(0x80 | (len >> 7) as u8 & 0x7f);
    w.u8(len as u8 & 0x7f);
}

fn write_audio_entry(w: &mut Writer, a: &AudioConfig) {
    let e = w.open(b"mp4a");
    w.zeros(6);
    w.u16(1);
    w.zeros(8);
    w.u16(u16::from(a.channels.max(1)));
    w.u16(16);
    w.u16(0);
    w.u16(0);
    w.u32(a.sample_rate.min(0xffff) << 16);
    let esds = w.open_full(b"esds", 0, 0);
    let asc_len = a.asc.len();
    let dcd_len = 13 + 5 + asc_len;
    let es_len = 3 + 5 + dcd_len + 5 + 1;
    descriptor(w, 0x03, es_len);
    w.u16(0); // ES_ID
    w.u8(0); // flags
    descriptor(w, 0x04, dcd_len);
    w.u8(0x40); // MPEG-4 audio
    w.u8(0x15); // audio stream
    w.bytes(&[0, 0, 0]); // buffer size
    w.u32(0); // max bitrate
    w.u32(0); // avg bitrate
    descriptor(w, 0x05, asc_len);
    w.bytes(&a.asc);
    descriptor(w, 0x06, 1);
    w.u8(0x02);
    w.close(esds);
    w.close(e);
}

const FLAGS_SYNC: u32 = 0x0200_0000;
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// A CMAF chunk: one moof with a traf per run, and one mdat holding the runs' samples in
/// order, after a styp when it opens a segment. The chunks of a segment, concatenated, are the
/// segment (data offsets are relative to each moof).
pub(crate) fn fragment(sequence: u32, runs: &[TrackRun<'_>], opens_segment: bool) -> Bytes {
    let mut w = Writer::default();
    if opens_segment {
        let styp = w.open(b"styp");
        w.bytes(b"msdh");
        w.u32(0);
        w.bytes(b"msdh");
        w.bytes(b"msix");
        w.close(styp);
    }

    let moof = w.open(b"moof");
    let mfhd = w.open_full(b"mfhd", 0, 0);
    w.u32(sequence);
    w.close(mfhd);
    let mut offset_slots = Vec::with_capacity(runs.len());
    for run in runs {
        let traf = w.open(b"traf");
        let tfhd = w.open_full(b"tfhd", 0, 0x02_0000); // default-base-is-moof
        w.u32(run.track_id);
        w.close(tfhd);
        let tfdt = w.open_full(b"tfdt", 1, 0);
        w.u64(run.base_decode_time);
        w.close(tfdt);
        // data offset, duration, size, flags, composition offset present
        let trun = w.open_full(b"trun", 1, 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800);
        w.u32(u32::try_from(run.samples.len()).unwrap_or(u32::MAX));
        offset_slots.push(w.buf.len());
        w.u32(0);
        for s in run.samples {
            w.u32(s.duration);
            w.u32(u32::try_from(s.data.len()).unwrap_or(u32::MAX));
            w.u32(if s.keyframe { FLAGS_SYNC } else { FLAGS_NON_SYNC });
            w.u32(s.cts as u32); // version 1: signed
        }
        w.close(trun);
        w.close(traf);
    }
    w.close(moof);
    let moof_size = w.buf.len() - moof;

    let mdat = w.open(b"mdat");
    let mut data_start = moof_size + 8;
    for (run, slot) in runs.iter().zip(offset_slots) {
        let off = u32::try_from(data_start).unwrap_or(u32::MAX);
        w.buf[slot..slot + 4].copy_from_slice(&off.to_be_bytes());
        for s in run.samples {
            w.bytes(&s.data);
            data_start += s.data.len();
        }
    }
    w.close(mdat);
    Bytes::from(w.buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{parse_asc, parse_avcc, tests::avcc};

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    /// Walks top-level boxes and checks their sizes add up.
    fn top_level(b: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let size = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
            out.push(String::from_utf8_lossy(&b[i + 4..i + 8]).into_owned());
            assert!(size >= 8);
            i += size;
        }
        assert_eq!(i, b.len());
        out
    }

    #[test]
    fn init_has_expected_boxes() {
        let v = parse_avcc(Bytes::from(avcc())).unwrap();
        let a = parse_asc(Bytes::from_static(&[0x11, 0x90])).unwrap();
        let init = init_segment(&[
            TrackSpec::Video {
                config: v,
                width: 640,
                height: 360,
            },
            TrackSpec::Audio(a),
        ]);
        assert_eq!(top_level(&init), ["ftyp", "moov"]);
        for b in [&b"avcC"[..], b"esds", b"trex", b"mp4a", b"vmhd", b"smhd"] {
            assert!(find(&init, b).is_some());
        }
    }

    #[test]
    fn media_offsets_point_into_mdat() {
        let v = [
            RunSample {
                duration: 3000,
                cts: 6000,
                keyframe: true,
                data: Bytes::from_static(b"AAAA"),
            },
            RunSample {
                duration: 3000,
                cts: -3000,
                keyframe: false,
                data: Bytes::from_static(b"BB"),
            },
        ];
        let a = [RunSample {
            duration: 1024,
            cts: 0,
            keyframe: true,
            data: Bytes::from_static(b"CCC"),
        }];
        let seg = fragment(
            7,
            &[
                TrackRun {
                    track_id: 1,
                    base_decode_time: 90_000,
                    samples: &v,
                },
                TrackRun {
                    track_id: 2,
                    base_decode_time: 48_000,
                    samples: &a,
                },
            ],
            true,
        );
        assert_eq!(top_level(&seg), ["styp", "moof", "mdat"]);
        let moof = find(&seg, b"moof").unwrap() - 4;
        let trun = find(&seg, b"trun").unwrap() - 4;
        let off = u32::from_be_bytes(seg[trun + 16..trun + 20].try_into().unwrap()) as usize;
        assert_eq!(&seg[moof + off..moof + off + 6], b"AAAABB");
        let trun2 = trun + 8 + find(&seg[trun + 8..], b"trun").unwrap() - 4;
        let off2 = u32::from_be_bytes(seg[trun2 + 16..trun2 + 20].try_into().unwrap()) as usize;
        assert_eq!(&seg[moof + off2..moof + off2 + 3], b"CCC");
        assert!(seg.ends_with(b"AAAABBCCC"));
    }
}
