//! The browser driver (web-client/test/e2e/driver.mjs) as the tests use it: it opens a page in
//! headless Chromium and prints the page's stats as one JSON line every 250 ms.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Chromium driver: one JSON line of page stats every 250 ms until stdin closes.
pub struct Browser {
    child: Child,
    lines: mpsc::Receiver<String>,
    last: Value,
}

impl Browser {
    pub fn open(url: &str, extra: &[&str]) -> Browser {
        let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/../web-client/test/e2e/driver.mjs");
        let mut child = Command::new("node")
            .arg(driver)
            .args(["--url", url, "--timeout-s", "120"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the browser driver");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Browser {
            child,
            lines,
            last: Value::Null,
        }
    }

    /// Take every line printed so far without waiting and return the latest stats (or Null).
    pub fn poll(&mut self) -> Value {
        while let Ok(line) = self.lines.try_recv() {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("driver printed {line:?}"));
            assert!(v.get("error").is_none(), "browser driver failed: {v}");
            if !v["stats"].is_null() {
                self.last = v["stats"].clone();
            }
        }
        self.last.clone()
    }

    /// Wait for the next stats line (every 250 ms) and return it, failing after `limit`.
    pub fn next(&mut self, limit: Duration) -> Value {
        self.wait("the next stats line", limit, |s| !s.is_null())
    }

    /// Read stats lines until `cond` holds on one, failing after `limit`.
    pub fn wait(&mut self, what: &str, limit: Duration, cond: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("timed out waiting for {what}; last stats: {}", self.last);
            };
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("driver printed {line:?}"));
            assert!(v.get("error").is_none(), "browser driver failed: {v}");
            let stats = v["stats"].clone();
            if !stats.is_null() {
                self.last = stats.clone();
            }
            if cond(&stats) {
                return stats;
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the driver closes Chromium and exits
        // Its stdout closing (the reader thread hangs up) is the sign it is done.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(_) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    break;
                }
            }
        }
        let _ = self.child.wait();
    }
}

/// Wait until `cond` holds on the latest stats of all `browsers` (checked on each new line from
/// the first one), failing after `limit` with everyone's last stats. Returns those stats.
pub fn wait_all(browsers: &mut [Browser], what: &str, limit: Duration, cond: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let all: Vec<Value> = if left.is_zero() {
            Vec::new()
        } else {
            browsers[0].next(left);
            browsers.iter_mut().map(Browser::poll).collect()
        };
        if !all.is_empty() && cond(&all) {
            return all;
        }
        if Instant::now() >= deadline {
            let last: Vec<Value> = browsers.iter_mut().map(Browser::poll).collect();
            panic!("timed out waiting for {what}; last stats: {last:#?}");
        }
    }
}

pub fn num(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}
