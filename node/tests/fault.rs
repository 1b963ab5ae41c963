//! Faults a broadcast meets in practice, each with real ffmpeg pushing RTMP into `hlswarm run`:
//! the publisher dies and reconnects; the node is SIGKILLed mid-segment and restarted; the
//! store's disk fills up and then has room again. After each, what a consumer checks still
//! holds: every manifest seen passes the chain rules, the segment log never repeats a segment
//! or a media sequence number, `hlswarm verify` passes, ffmpeg plays the playlist, and the
//! stream goes on.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    ChainReport, ChainWatch, Launch, Node, RUN, SECRET, assert_log_sound, ended, ffmpeg_decodes, log_entries, manifest,
    manifest_file, metric, publish, publish_in, require_root, stream_dir, verify_archive, verify_in, wait_for,
    wait_until,
};
use manifest_signer::merkle::{LogEntry, MerkleLog};
use manifest_signer::{ManifestRoot, SegmentRef, Signed, StreamId};

/// 1 s segments; a window that holds the whole test broadcast, so the final playlist spans
/// every fault; no MoQ (not under test here, and the machine is small); a dropped publisher's
/// stream ends 2 s after the drop (tests/ending.rs covers a return within the grace).
const FLAGS: [&str; 7] = [
    "--segment-seconds",
    "1",
    "--window",
    "60",
    "--no-moq",
    "--end-grace-seconds",
    "2",
];

fn stream_of(node: &Node) -> StreamId {
    node.stream_id.parse().unwrap()
}

async fn wait_manifest(
    node: &Node,
    id: &StreamId,
    what: &str,
    limit: Duration,
    cond: impl Fn(&Signed<ManifestRoot>) -> bool,
) -> Signed<ManifestRoot> {
    wait_for(what, limit, || async { manifest(node, id).await.filter(|m| cond(m)) }).await
}

fn assert_chain_held(report: &ChainReport) {
    assert!(report.refused.is_empty(), "chain rules refused: {:?}", report.refused);
    assert!(report.accepted.len() >= 2, "the watch saw the stream move");
}

/// The log entries of the source rendition from `from` on.
fn source_after(entries: &[LogEntry], from: u64) -> Vec<&LogEntry> {
    entries
        .iter()
        .skip(from as usize)
        .filter(|e| e.rendition == "source")
        .collect()
}

/// The signed log of `m` is a prefix of the log now on disk: nothing it covered was lost.
fn assert_log_covers(entries: &[LogEntry], m: &Signed<ManifestRoot>) {
    let mut log = MerkleLog::new();
    for e in entries {
        log.push(e.leaf_hash().unwrap());
    }
    assert!(log.len() >= m.body.log.size, "log shrank below manifest {}", m.body.seq);
    assert_eq!(
        log.root_at(m.body.log.size).unwrap(),
        m.body.log.root,
        "the log no longer gives manifest {}'s root",
        m.body.seq
    );
}

/// After a fault: a new 4 s push (with a tone of `hz`) to the node continues the stream. The
/// chain held throughout, the log repeats nothing and still covers `before`, the first new
/// segment starts a discontinuity, and the stream verifies (served and archived) and plays.
/// Returns the final manifest and the first segment after the fault.
async fn resume_and_check(
    node: Node,
    data: &Path,
    watch: ChainWatch,
    before: &Signed<ManifestRoot>,
    hz: u32,
) -> (Signed<ManifestRoot>, SegmentRef) {
    let id = stream_of(&node);
    // The log may run past `before`'s: a crash after the append and before the manifest.
    let from = log_entries(data, &id).len() as u64;
    let push = publish_in(None, &node.rtmp_url(SECRET), 4, "320x240", hz)
        .wait()
        .unwrap();
    assert!(push.success(), "the publisher is accepted on the same key");
    let last = wait_manifest(&node, &id, "the resumed stream ended", Duration::from_secs(30), |m| {
        m.body.seq > before.body.seq && ended(m)
    })
    .await;
    assert_chain_held(&watch.finish().await);

    let entries = log_entries(data, &id);
    assert_log_sound(&entries);
    assert_log_covers(&entries, before);
    assert_log_covers(&entries, &last);
    let resumed = source_after(&entries, from);
    assert!(
        resumed.len() >= 3,
        "4 s pushed after the fault: {} segments",
        resumed.len()
    );
    assert!(
        resumed[0].segment.disc,
        "the first segment after the fault is a discontinuity"
    );

    verify_in(None, &node.url(&format!("/streams/{id}/")), &[]).unwrap();
    ffmpeg_decodes(None, &node.url(&format!("/streams/{id}/master.m3u8"))).unwrap();
    assert!(node.stop().success());
    verify_archive(data);
    (last, resumed[0].segment.clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn publisher_killed_and_reconnecting_continues_one_signed_stream() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &FLAGS);
    let id = stream_of(&node);
    let watch = ChainWatch::start(node.url(&format!("/streams/{id}/manifest.json")), id);

    let mut first = publish(&node.rtmp_url(SECRET), 120, "320x240");
    wait_manifest(&node, &id, "3 segments signed", Duration::from_secs(40), |m| {
        m.body.log.size >= 3
    })
    .await;
    first.kill().unwrap(); // SIGKILL: the RTMP connection just drops
    first.wait().unwrap();
    // Ended once the grace period passed with no publisher back.
    let gap = wait_manifest(&node, &id, "the stream marked ended", Duration::from_secs(20), ended).await;

    assert!(gap.body.log.size >= 3);
    let (last, resumed) = resume_and_check(node, data.path(), watch, &gap, 660).await;
    // A playlist never goes on after ENDLIST: the comeback starts a fresh window, numbered on
    // from the ended one, opening with a discontinuity.
    let window = &last.body.rendition("source").unwrap().segments;
    assert!(window.iter().all(|s| s.seq >= resumed.seq));
    assert!(window.iter().any(|s| s.disc && s.seq == resumed.seq));
}

#[tokio::test(flavor = "multi_thread")]
async fn node_killed_mid_segment_restarts_with_nothing_lost_or_repeated() {
    let data = tempfile::tempdir().unwrap();
    let mut node = Node::start(data.path(), &FLAGS);
    let id = stream_of(&node);
    // The commit point on disk, which outlives the process.
    let file = stream_dir(data.path(), &id).join("manifest.json");
    let watch = ChainWatch::start(file.to_string_lossy().into_owned(), id);

    // Three crashes at different points of a 1 s segment.
    let mut last_kill: Option<Signed<ManifestRoot>> = None;
    for (round, offset_ms) in [150u64, 500, 850].into_iter().enumerate() {
        let tone = 440 + 110 * round as u32;
        let mut push = publish_in(None, &node.rtmp_url(SECRET), 120, "320x240", tone);
        let floor = last_kill.as_ref().map_or(0, |m| m.body.log.size);
        let served = wait_manifest(&node, &id, "2 new segments signed", Duration::from_secs(40), |m| {
            m.body.log.size >= floor + 2
        })
        .await;
        let next = wait_manifest(&node, &id, "the next segment signed", Duration::from_secs(10), |m| {
            m.body.seq > served.body.seq
        })
        .await;
        // Fault injection, not synchronisation: the next segment is partly received.
        tokio::time::sleep(Duration::from_millis(offset_ms)).await;
        node.kill9();
        let _ = push.kill();
        push.wait().unwrap();

        let on_disk = manifest_file(data.path(), &id).expect("a manifest survives the crash");
        assert!(on_disk.body.seq >= next.body.seq, "a served manifest was lost");
        let entries = log_entries(data.path(), &id);
        assert_log_covers(&entries, &next);
        assert_log_covers(&entries, &on_disk);
        assert_log_sound(&entries);

        node = Node::start(data.path(), &FLAGS);
        assert_eq!(
            manifest(&node, &id).await.map(|m| m.id),
            Some(on_disk.id),
            "the restarted node serves the last committed manifest"
        );
        last_kill = Some(on_disk);
    }

    // The publisher comes back to the restarted node: the stream resumes.
    resume_and_check(node, data.path(), watch, &last_kill.unwrap(), 880).await;
}

/// A tmpfs of `size` mounted on a fresh directory; unmounted (lazily, so a leftover process
/// cannot keep it) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        require_root("it mounts a small tmpfs to fill");
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs on {}", dir.path().display());
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Fill the file system holding `path` with a file of zeros until a write fails, then give
/// back `slack` bytes for the stream itself to fill; the file's path.
fn fill(path: &Path, slack: u64) -> PathBuf {
    use std::io::Write;
    let filler = path.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
        assert!(written < 1 << 30, "a small tmpfs fills within 1 GiB");
    }
    f.set_len(written.saturating_sub(slack)).unwrap();
    filler
}

#[tokio::test(flavor = "multi_thread")]
async fn full_disk_drops_segments_loudly_and_the_stream_resumes_when_space_returns() {
    let disk = Tmpfs::mount("24m");
    let launch = Launch {
        keep_log: true,
        ..Launch::default()
    };
    let mut node = Node::launch_with(disk.path(), &RUN, &FLAGS, true, launch);
    let id = stream_of(&node);
    let watch = ChainWatch::start(node.url(&format!("/streams/{id}/manifest.json")), id);

    let mut push = publish(&node.rtmp_url(SECRET), 120, "640x360");
    wait_manifest(&node, &id, "2 segments signed", Duration::from_secs(40), |m| {
        m.body.log.size >= 2
    })
    .await;
    // Some room left: the stream itself fills the disk, at whatever step of a publish.
    let filler = fill(disk.path(), 512 * 1024);
    wait_until(
        "2 segments refused for want of space",
        Duration::from_secs(30),
        || async { metric(&node, "hlswarm_store_write_errors_total").await >= 2.0 },
    )
    .await;
    assert!(node.alive(), "the node survives a full disk");
    assert!(metric(&node, "hlswarm_ingest_segments_dropped_total").await >= 2.0);
    assert!(
        node.log_has(&["cannot sign segment", "No space left on device"]),
        "the log says why segments are dropped"
    );
    // What is served while the disk is full is still a valid signed stream.
    let full = manifest(&node, &id).await.unwrap();
    verify_in(None, &node.url(&format!("/streams/{id}/")), &[]).unwrap();

    std::fs::remove_file(&filler).unwrap();
    wait_manifest(&node, &id, "segments signed again", Duration::from_secs(30), |m| {
        m.body.log.size >= full.body.log.size + 3
    })
    .await;
    assert!(node.alive());
    let _ = push.kill();
    push.wait().unwrap();
    wait_manifest(&node, &id, "the stream ended", Duration::from_secs(20), ended).await;
    assert_chain_held(&watch.finish().await);

    verify_in(None, &node.url(&format!("/streams/{id}/")), &[]).unwrap();
    ffmpeg_decodes(None, &node.url(&format!("/streams/{id}/master.m3u8"))).unwrap();
    assert!(node.stop().success());
    let entries = log_entries(disk.path(), &id);
    assert_log_sound(&entries);
    // Each dropped segment leaves a hole in the stream's time: the segment after it is marked
    // a discontinuity, so players do not take the jump for continuous media.
    let source = source_after(&entries, 0);
    let mut holes = 0;
    for w in source.windows(2) {
        let (a, b) = (&w[0].segment, &w[1].segment);
        let end = a.pdt_ms.unwrap() + a.dur_us / 1000;
        if b.pdt_ms.unwrap() > end + 500 {
            holes += 1;
            assert!(
                b.disc,
                "segment {} follows a hole of {} ms unmarked",
                b.seq,
                b.pdt_ms.unwrap() - end
            );
        }
    }
    assert!(holes >= 1, "the dropped segments left a hole");
    verify_archive(disk.path());
    // The store opens again: nothing the full disk interrupted left it unreadable.
    let node = Node::start(disk.path(), &FLAGS);
    assert_eq!(
        manifest(&node, &id).await.map(|m| m.id),
        manifest_file(disk.path(), &id).map(|m| m.id)
    );
    assert!(node.stop().success());
}
