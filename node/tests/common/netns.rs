//! Network namespaces a test creates, and deletes (with their links) when dropped: hosts on
//! networks of their own, for what crosses a network. The host's interfaces are never touched:
//! a veth pair is created inside one namespace with its peer put straight into the other.
//! Needs root (CI runs the tests as root) and iproute2.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Namespaces named by label; the real names carry the pid and a counter, so parallel tests
/// never share one.
pub struct Netns {
    names: Vec<(String, String)>,
}

/// `ip ARGS`, asserting it succeeds.
pub fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Netns {
    pub fn new(labels: &[&str]) -> Netns {
        super::require_root("it creates network namespaces");
        static N: AtomicUsize = AtomicUsize::new(0);
        let tag = format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut ns = Netns { names: Vec::new() };
        for l in labels {
            let name = format!("hlswarm-{l}-{tag}");
            ip(&["netns", "add", &name]);
            ns.names.push((l.to_string(), name));
            ip(&["-n", ns.ns(l), "link", "set", "lo", "up"]);
        }
        ns
    }

    /// The namespace's real name (for `ip netns exec`).
    pub fn ns(&self, label: &str) -> &str {
        &self
            .names
            .iter()
            .find(|(l, _)| l == label)
            .expect("a namespace of this test")
            .1
    }

    /// `ip -n NS ARGS` in the namespace `label`.
    pub fn ip(&self, label: &str, args: &[&str]) {
        let mut all = vec!["-n", self.ns(label)];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// A veth pair from `a` (device `a_dev`, address `a_ip`/24) to `b` (`b_dev`, `b_ip`/24), up.
    pub fn link(&self, (a, a_dev, a_ip): (&str, &str, &str), (b, b_dev, b_ip): (&str, &str, &str)) {
        self.ip(
            a,
            &[
                "link",
                "add",
                a_dev,
                "type",
                "veth",
                "peer",
                "name",
                b_dev,
                "netns",
                self.ns(b),
            ],
        );
        for (l, dev, addr) in [(a, a_dev, a_ip), (b, b_dev, b_ip)] {
            self.ip(l, &["addr", "add", &format!("{addr}/24"), "dev", dev]);
            self.ip(l, &["link", "set", dev, "up"]);
        }
    }

    /// Whether `label` has a route to `addr` at all.
    pub fn routes_to(&self, label: &str, addr: &str) -> bool {
        Command::new("ip")
            .args(["-n", self.ns(label), "route", "get", addr])
            .output()
            .unwrap()
            .status
            .success()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for (_, n) in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}
