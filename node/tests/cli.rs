//! The `hlswarm` binary as a user runs it: keygen, sign an ffmpeg packager's output, verify a
//! directory and a URL served by a plain static server, and catch tampering.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn hlswarm(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hlswarm"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stream_id(o: &Output) -> String {
    let out = stdout(o);
    let line = out
        .lines()
        .find(|l| l.starts_with("stream id"))
        .expect("prints the stream id");
    line.split_whitespace().last().unwrap().to_string()
}

/// ffmpeg writing 4 s of HLS (1 s segments, fMP4) into `dir`, to completion.
fn package(dir: &Path) {
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "4",
        ])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "30",
            "-f",
            "hls",
            "-hls_time",
            "1",
        ])
        .args(["-hls_segment_type", "fmp4", "-hls_list_size", "0"])
        .arg(dir.join("out.m3u8"))
        .status()
        .expect("ffmpeg must be installed");
    assert!(status.success());
}

/// A plain static HTTP server (Python's) on an ephemeral loopback port: any mirror will do.
struct StaticServer {
    child: Child,
    port: u16,
}

impl StaticServer {
    fn start(root: &Path) -> Self {
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory"])
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
                if let Some(p) = line.split(" port ").nth(1).and_then(|r| r.split_whitespace().next()) {
                    let _ = tx.send(p.parse::<u16>().unwrap());
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("static server announces its port");
        StaticServer { child, port }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn keygen_sign_verify_dir_and_url_and_detect_tampering() {
    let data = tempfile::tempdir().unwrap();
    let hls = tempfile::tempdir().unwrap();

    let o = hlswarm(data.path(), &["keygen"]);
    assert!(o.status.success(), "{o:?}");
    let id = stream_id(&o);
    assert_eq!(id.len(), 43);
    let o = hlswarm(data.path(), &["keygen"]);
    assert!(!o.status.success(), "keygen never overwrites a key");
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing to overwrite"));

    package(hls.path());
    let o = hlswarm(
        data.path(),
        &[
            "sign",
            "--watch",
            hls.path().to_str().unwrap(),
            "--once",
            "--title",
            "CLI test",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stream_id(&o), id, "signs with the key keygen made");

    let o = hlswarm(data.path(), &["verify", data.path().to_str().unwrap(), "--archive"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let report = stdout(&o);
    assert!(
        report.contains("result      OK") && report.contains("CLI test"),
        "{report}"
    );

    // Any static server can mirror a stream; verify checks it over HTTP by the id in the URL.
    let server = StaticServer::start(data.path());
    let url = format!("http://127.0.0.1:{}/streams/{id}/", server.port);
    let o = hlswarm(data.path(), &["verify", &url]);
    assert!(o.status.success(), "{}", stdout(&o));
    let watch = format!("http://127.0.0.1:{}/watch/{id}", server.port);
    let o = hlswarm(data.path(), &["verify", &watch]);
    assert!(o.status.success(), "a watch link names the stream too: {}", stdout(&o));

    // One flipped byte in one segment: both checks fail, naming the segment.
    let seg_dir = data.path().join("streams").join(&id).join("seg");
    let victim = std::fs::read_dir(&seg_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "m4s"))
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    for target in [data.path().to_str().unwrap(), url.as_str()] {
        let o = hlswarm(data.path(), &["verify", target]);
        assert!(!o.status.success(), "tampering must fail verification of {target}");
        assert!(stdout(&o).contains("hash_mismatch"), "{}", stdout(&o));
    }

    // The wrong key pinned: refused.
    let other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let o = hlswarm(data.path(), &["verify", &url, "--stream", other]);
    assert!(!o.status.success());
    drop(server);
}

#[test]
fn a_group_readable_key_is_refused_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let data = tempfile::tempdir().unwrap();
    let hls = tempfile::tempdir().unwrap();
    assert!(hlswarm(data.path(), &["keygen"]).status.success());
    let key = data.path().join("keys/stream.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = hlswarm(
        data.path(),
        &["sign", "--watch", hls.path().to_str().unwrap(), "--once"],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("readable by group or others") && err.contains("chmod 600"),
        "{err}"
    );
}
