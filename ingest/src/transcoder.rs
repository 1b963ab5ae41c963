//! The ABR ladder at run time: one ffmpeg child per source publish session.
//!
//! ```text
//! source connection --Ladder::push (try_send, never waits)--> bounded queue
//!   --> supervisor task: FLV on ffmpeg's stdin; restarts ffmpeg with backoff
//!   --> ffmpeg: one x264+AAC output per rung, FLV to a Unix socket in a private 0700 directory
//!   --> one reader task per rung: FLV tags --> Segmenter (rendition = rung name) --> events
//! ```
//!
//! The source never waits for the ladder: when the queue is full the ladder's input is
//! dropped up to the next source keyframe (counted in [`crate::IngestStats`]). Rungs come
//! back over Unix sockets that only this user can reach, one connection per ffmpeg run, so
//! they never touch the RTMP listener, its keys or its connection limit.

mod feed;
mod rung;
mod supervisor;

use bytes::Bytes;
use std::time::Duration;

use crate::flv_stream::TAG_VIDEO;

pub(crate) use feed::Ladder;

/// The feed gives the session's first frame this timestamp, so that ffmpeg's B-frame and
/// AAC priming offsets never make a rung timestamp negative.
const FEED_ORIGIN_MS: u64 = 10_000;
/// Queue between the source connection and ffmpeg's stdin: tags (~13 s at 30 fps + AAC) ...
const QUEUE_TAGS: usize = 1024;
/// ... and bytes.
const QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// After this many ffmpeg failures in a row (runs shorter than [`STABLE_RUN`]) the ladder gives up.
const MAX_FAILURES: u32 = 5;
/// A run this long resets the failure count.
const STABLE_RUN: Duration = Duration::from_secs(60);
/// Backoff before restart `n` is 1 s * 2^(n-1), at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(16);
/// After its input ends, ffmpeg gets this long to flush and exit before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(4);
/// After ffmpeg exits, rung readers get this long to flush their last segment.
const READER_GRACE: Duration = Duration::from_secs(3);
/// Safety net over the whole drain at the end of a session.
const FINISH_DEADLINE: Duration = Duration::from_secs(10);
/// ffmpeg must connect every rung output within this time after it starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of ffmpeg's stderr kept for the failure message, and their maximum length.
const STDERR_TAIL: usize = 12;
const STDERR_LINE: usize = 512;
/// Drop episodes logged at warn level; later ones at debug.
const LOUD_DROPS: u32 = 5;

/// One FLV tag on its way to ffmpeg.
#[derive(Debug, Clone)]
struct Item {
    kind: u8,
    ts_ms: u32,
    body: Bytes,
    keyframe: bool,
    config: bool,
}

impl Item {
    fn is_keyframe(&self) -> bool {
        self.kind == TAG_VIDEO && self.keyframe && !self.config
    }
}
