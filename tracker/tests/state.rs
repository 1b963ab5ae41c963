//! The state machine and the connection driver over in-memory channels: offer and answer
//! relay, scrape, stopped, expiry (paused time), every limit, slow peers, idle close.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracker::protocol::Id20;
use tracker::socket::{Frame, WsSocket};
use tracker::{Connection, Reject, Tracker, TrackerConfig};

const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn id(seed: u8) -> String {
    Id20([seed; 20]).to_binary_string()
}

struct Peer {
    conn: Connection,
    rx: mpsc::Receiver<String>,
    id: String,
}

impl Peer {
    fn new(t: &Tracker, seed: u8) -> Peer {
        let (conn, rx) = t.connect(IP).unwrap();
        Peer { conn, rx, id: id(seed) }
    }

    fn send(&self, v: Value) -> Option<Value> {
        self.conn
            .handle_text(&v.to_string())
            .map(|r| serde_json::from_str(&r).unwrap())
    }

    fn announce(&self, hash: u8, offers: usize, extra: Value) -> Value {
        let mut v = json!({
            "action": "announce", "info_hash": id(hash), "peer_id": self.id, "numwant": 10,
            "offers": (0..offers).map(|i| json!({"offer": {"type": "offer", "sdp": format!("sdp{i}")},
                                                 "offer_id": id(100 + i as u8)})).collect::<Vec<_>>(),
        });
        if let Value::Object(m) = extra {
            v.as_object_mut().unwrap().extend(m);
        }
        self.send(v).unwrap()
    }

    fn queued(&mut self) -> Option<Value> {
        self.rx.try_recv().ok().map(|s| serde_json::from_str(&s).unwrap())
    }
}

#[tokio::test]
async fn offers_reach_other_peers_and_answers_come_back() {
    let t = Tracker::new(TrackerConfig::default());
    let mut a = Peer::new(&t, 1);
    let mut b = Peer::new(&t, 2);
    let r = a.announce(9, 1, json!({"event": "started"}));
    assert_eq!(
        (r["action"].as_str(), r["incomplete"].as_u64(), r["interval"].as_u64()),
        (Some("announce"), Some(1), Some(30))
    );
    assert_eq!(r["info_hash"], id(9));
    assert!(a.queued().is_none(), "no one to offer to");

    let r = b.announce(9, 3, json!({}));
    assert_eq!(r["incomplete"], 2);
    let offer = a.queued().expect("a got b's offer");
    assert_eq!(offer["peer_id"], b.id);
    assert_eq!(offer["info_hash"], id(9));
    assert_eq!(offer["offer"]["type"], "offer");
    assert!(a.queued().is_none(), "one offer per peer");
    assert_eq!(t.metrics().offers_relayed(), 1);

    let answer = json!({"action": "announce", "info_hash": id(9), "peer_id": a.id, "to_peer_id": b.id,
                        "answer": {"type": "answer", "sdp": "x"}, "offer_id": offer["offer_id"]});
    assert_eq!(a.send(answer.clone()), None, "no reply to an answer");
    let got = b.queued().expect("b got the answer");
    assert_eq!(
        (&got["peer_id"], &got["offer_id"], &got["answer"]["sdp"]),
        (&json!(a.id), &offer["offer_id"], &json!("x"))
    );
    assert_eq!(t.metrics().answers_relayed(), 1);

    // Answers go only to a peer of the same swarm, from a peer of that swarm.
    let mut wrong = answer.clone();
    wrong["to_peer_id"] = json!(id(77));
    assert_eq!(
        a.send(wrong).unwrap()["failure reason"],
        "no peer with that to_peer_id in the swarm"
    );
    let mut other_swarm = answer.clone();
    other_swarm["info_hash"] = json!(id(10));
    assert!(a.send(other_swarm).unwrap()["failure reason"].is_string());
    let c = Peer::new(&t, 3);
    let mut outsider = answer;
    outsider["peer_id"] = json!(c.id);
    assert_eq!(
        c.send(outsider).unwrap()["failure reason"],
        "answering peer has not announced in this swarm"
    );
    assert!(b.queued().is_none());
    assert_eq!(t.metrics().rejected(Reject::UnknownPeer), 1);
}

#[tokio::test]
async fn scrape_counts_seeders_and_stopped_leaves() {
    let t = Tracker::new(TrackerConfig::default());
    let a = Peer::new(&t, 1);
    let b = Peer::new(&t, 2);
    a.announce(5, 0, json!({"left": 0}));
    b.announce(5, 0, json!({"left": null}));
    let s = a
        .send(json!({"action": "scrape", "info_hash": [id(5), id(6)]}))
        .unwrap();
    assert_eq!(s["action"], "scrape");
    assert_eq!(
        s["files"][id(5)],
        json!({"complete": 1, "incomplete": 1, "downloaded": 0})
    );
    assert_eq!(
        s["files"][id(6)],
        json!({"complete": 0, "incomplete": 0, "downloaded": 0})
    );
    let r = b.announce(5, 0, json!({"event": "completed"}));
    assert_eq!((r["complete"].as_u64(), r["incomplete"].as_u64()), (Some(2), Some(0)));
    let r = b.announce(5, 0, json!({"event": "stopped"}));
    assert_eq!((r["complete"].as_u64(), r["incomplete"].as_u64()), (Some(1), Some(0)));
    let s = a.send(json!({"action": "scrape", "info_hash": id(5)})).unwrap();
    assert_eq!(
        s["files"][id(5)],
        json!({"complete": 1, "incomplete": 0, "downloaded": 1})
    );
    drop(a);
    assert_eq!(t.counts(), (0, 0), "a closed connection takes its peers along");
}

#[tokio::test(start_paused = true)]
async fn silent_peers_expire() {
    let t = Tracker::new(TrackerConfig::default());
    let a = Peer::new(&t, 1);
    let b = Peer::new(&t, 2);
    a.announce(5, 0, json!({}));
    b.announce(5, 0, json!({}));
    tokio::time::advance(Duration::from_secs(100)).await;
    b.announce(5, 0, json!({}));
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(t.expire(), 1);
    assert_eq!(t.counts(), (1, 1));
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(t.expire(), 1);
    assert_eq!(t.counts(), (0, 0));
    // The expired peer can come back.
    assert_eq!(a.announce(5, 0, json!({}))["incomplete"], 1);
}

#[tokio::test]
async fn limits_are_refused_with_a_reason_and_counted() {
    let cfg = TrackerConfig {
        max_peers_per_swarm: 2,
        max_swarms: 2,
        max_connections_per_ip: 4,
        max_message_bytes: 2000,
        max_numwant: 2,
        ..TrackerConfig::default()
    };
    let t = Tracker::new(cfg);
    let a = Peer::new(&t, 1);
    let mut b = Peer::new(&t, 2);
    let c = Peer::new(&t, 3);
    let mut d = Peer::new(&t, 4);
    assert_eq!(t.connect(IP).unwrap_err(), Reject::TooManyConnections);
    assert!(
        t.connect(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))).is_ok(),
        "limit is per address"
    );

    assert_eq!(a.announce(1, 11, json!({}))["failure reason"], "too many offers");
    a.announce(1, 0, json!({}));
    b.announce(1, 0, json!({}));
    let r = c.announce(1, 0, json!({}));
    assert_eq!(
        (r["failure reason"].as_str(), r["info_hash"].as_str()),
        (Some("swarm is full"), Some(id(1).as_str()))
    );
    c.announce(2, 0, json!({}));
    assert_eq!(c.announce(3, 0, json!({}))["failure reason"], "too many swarms");
    assert_eq!(
        d.announce(1, 0, json!({"peer_id": a.id}))["failure reason"],
        "peer_id is in use by another connection"
    );
    let why = a.send(json!({"action": "announce"})).unwrap()["failure reason"].to_string();
    assert!(why.starts_with("\"malformed message: an announce needs"), "{why}");
    let why = a.send(json!({"action": "announce", "info_hash": id(1), "peer_id": a.id, "numwant": -1}));
    let why = why.unwrap()["failure reason"].to_string();
    assert!(why.contains("numwant must be a whole number"), "{why}");
    assert_eq!(
        a.conn.handle_text(&"x".repeat(2001)).map(|s| s.contains("too large")),
        Some(true)
    );

    // numwant caps the offers relayed.
    d.announce(2, 0, json!({}));
    c.announce(2, 5, json!({"numwant": 1}));
    assert!(d.queued().is_some() && d.queued().is_none());
    assert!(b.queued().is_none());
    for r in [
        Reject::TooManyOffers,
        Reject::SwarmFull,
        Reject::TooManySwarms,
        Reject::TooManyConnections,
        Reject::PeerIdInUse,
        Reject::TooLarge,
    ] {
        assert_eq!(t.metrics().rejected(r), 1, "{r:?}");
    }
    assert_eq!(t.metrics().rejected(Reject::Malformed), 2);
    let mut text = String::new();
    t.render_metrics(&mut text);
    assert!(
        text.contains("hlswarm_tracker_rejected_total{reason=\"swarm_full\"} 1"),
        "{text}"
    );
    assert!(text.contains("hlswarm_tracker_peers 4"), "{text}");
}

#[tokio::test]
async fn a_slow_peer_is_dropped_without_blocking_the_announcer() {
    let t = Tracker::new(TrackerConfig {
        outbound_queue: 2,
        ..TrackerConfig::default()
    });
    let mut slow = Peer::new(&t, 1);
    let fast = Peer::new(&t, 2);
    slow.announce(7, 0, json!({}));
    for _ in 0..3 {
        assert_eq!(fast.announce(7, 1, json!({}))["action"], "announce");
    }
    assert_eq!(t.counts(), (1, 1), "the slow peer left the swarm");
    assert!(slow.queued().is_some() && slow.queued().is_some());
    assert!(
        slow.rx.recv().await.is_none(),
        "its queue is closed: the driver closes its socket"
    );
}

/// A WebSocket made of channels; with `mark_flushes`, each flush shows as a "FLUSH" message.
struct MemSocket {
    from_client: mpsc::Receiver<Frame>,
    to_client: mpsc::Sender<String>,
    mark_flushes: bool,
}

impl WsSocket for MemSocket {
    async fn recv(&mut self) -> Option<Frame> {
        self.from_client.recv().await
    }
    async fn send_text(&mut self, text: String) -> bool {
        self.to_client.send(text).await.is_ok()
    }
    async fn flush(&mut self) -> bool {
        !self.mark_flushes || self.to_client.send("FLUSH".into()).await.is_ok()
    }
    async fn close(&mut self) {}
}

fn socket_pair(
    t: &Tracker,
) -> (
    mpsc::Sender<Frame>,
    mpsc::Receiver<String>,
    tokio::task::JoinHandle<&'static str>,
) {
    let (conn, rx) = t.connect(IP).unwrap();
    let (in_tx, from_client) = mpsc::channel(8);
    let (to_client, out_rx) = mpsc::channel(8);
    let socket = MemSocket {
        from_client,
        to_client,
        mark_flushes: false,
    };
    let task = tokio::spawn(tracker::socket::serve(conn, rx, socket));
    (in_tx, out_rx, task)
}

#[tokio::test(start_paused = true)]
async fn the_driver_relays_and_closes_idle_binary_and_oversized_clients() {
    let t = Tracker::new(TrackerConfig::default());
    let (a_in, mut a_out, a_task) = socket_pair(&t);
    let (b_in, mut b_out, b_task) = socket_pair(&t);
    let ann = |pid: u8, offers: usize| {
        Frame::Text(
            json!({"action": "announce", "info_hash": id(1), "peer_id": id(pid),
            "offers": (0..offers).map(|_| json!({"offer": {}, "offer_id": id(50)})).collect::<Vec<_>>()})
            .to_string(),
        )
    };
    a_in.send(ann(1, 0)).await.unwrap();
    assert!(a_out.recv().await.unwrap().contains("\"interval\":30"));
    b_in.send(ann(2, 1)).await.unwrap();
    assert!(b_out.recv().await.unwrap().contains("\"incomplete\":2"));
    assert!(
        a_out.recv().await.unwrap().contains("\"offer_id\""),
        "the offer reached a through its socket"
    );

    b_in.send(Frame::Binary).await.unwrap();
    assert!(b_out.recv().await.unwrap().contains("binary"));
    assert_eq!(b_task.await.unwrap(), "binary message");

    let (c_in, mut c_out, c_task) = socket_pair(&t);
    c_in.send(Frame::Text("y".repeat(70_000))).await.unwrap();
    assert!(c_out.recv().await.unwrap().contains("too large"));
    assert_eq!(c_task.await.unwrap(), "message too large");
    // Past the WebSocket library's own limit the message never arrives as text: the same.
    let (d_in, mut d_out, d_task) = socket_pair(&t);
    d_in.send(Frame::TooLarge).await.unwrap();
    assert!(
        d_out
            .recv()
            .await
            .unwrap()
            .contains("\"failure reason\":\"message too large\"")
    );
    assert_eq!(d_task.await.unwrap(), "message too large");
    let mut m = String::new();
    t.render_metrics(&mut m);
    assert!(
        m.contains("hlswarm_tracker_rejected_total{reason=\"too_large\"} 2"),
        "{m}"
    );

    // a says nothing more: closed after the idle time (time is paused; it auto-advances).
    assert_eq!(a_task.await.unwrap(), "idle");
    assert_eq!(t.counts(), (0, 0));
    assert_eq!(t.metrics().connections_open(), 0);
    drop((a_in, b_in, c_in, d_in));
}

#[tokio::test]
async fn messages_queued_meanwhile_go_out_in_one_flush() {
    let t = Tracker::new(TrackerConfig::default());
    let (conn, rx) = t.connect(IP).unwrap();
    let (in_tx, from_client) = mpsc::channel(8);
    let (to_client, mut out) = mpsc::channel(8);
    let b = Peer::new(&t, 2);
    b.announce(1, 0, json!({}));
    // Two offers for a wait in its queue (the test runtime runs one task at a time, so the
    // driver has not run yet) when a's own announce arrives.
    let a_id = id(1);
    let a_ann = json!({"action": "announce", "info_hash": id(1), "peer_id": a_id}).to_string();
    assert_eq!(conn.handle_text(&a_ann).map(|r| r.contains("announce")), Some(true));
    b.announce(1, 1, json!({}));
    b.announce(1, 1, json!({}));
    in_tx.send(Frame::Text(a_ann)).await.unwrap();
    let socket = MemSocket {
        from_client,
        to_client,
        mark_flushes: true,
    };
    let task = tokio::spawn(tracker::socket::serve(conn, rx, socket));
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(out.recv().await.unwrap());
    }
    let kinds: Vec<&str> = seen
        .iter()
        .map(|m| match m.as_str() {
            "FLUSH" => "flush",
            m if m.contains("\"offer\"") => "offer",
            _ => "reply",
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "flush").count(), 1, "{seen:?}");
    assert_eq!(kinds.last(), Some(&"flush"), "{seen:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "offer").count(), 2, "{seen:?}");
    drop(in_tx);
    assert_eq!(task.await.unwrap(), "closed by the client");
}
