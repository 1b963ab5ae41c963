//! The transport-agnostic tracker state machine.
//!
//! State lives behind one `std::sync::Mutex`: every operation is a short, synchronous map
//! update plus `try_send`s, never held across an `.await`, so an actor task would only add a
//! channel hop per message. Sends to other peers use bounded queues and `try_send`: a full queue
//! drops that peer's connection instead of blocking the announcer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;

use crate::protocol::{
    Action, AnnounceRequest, AnnounceResponse, AnswerOut, Event, Failure, InfoHash, OfferOut, PeerId, Request,
    Response, ScrapeRequest, ScrapeResponse, ScrapeStats, parse_request,
};
use crate::{Reject, Result, TrackerConfig, TrackerMetrics};

type ConnId = u64;

/// Longest `failure reason` sent for a malformed message.
const MAX_DETAIL: usize = 200;

/// A shared handle on one tracker.
#[derive(Debug, Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: TrackerConfig,
    metrics: TrackerMetrics,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    swarms: HashMap<InfoHash, Swarm>,
    conns: HashMap<ConnId, Conn>,
    per_ip: HashMap<IpAddr, usize>,
    next_id: ConnId,
    rng: u64,
}

#[derive(Debug)]
struct Conn {
    tx: mpsc::Sender<String>,
    /// The (swarm, peer) entries this connection announced, for removal when it goes.
    joined: Vec<(InfoHash, PeerId)>,
}

#[derive(Debug, Default)]
struct Swarm {
    peers: Peers,
    seeders: u64,
    downloaded: u64,
}

#[derive(Debug)]
struct Peer {
    id: PeerId,
    conn: ConnId,
    seeder: bool,
    last_seen: Instant,
}

/// A swarm's peers in a vector (random ones are picked by index, without walking the swarm)
/// with an index by peer id.
#[derive(Debug, Default)]
struct Peers {
    list: Vec<Peer>,
    index: HashMap<PeerId, usize>,
}

impl Peers {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn position(&self, id: &PeerId) -> Option<usize> {
        self.index.get(id).copied()
    }

    fn get(&self, id: &PeerId) -> Option<&Peer> {
        self.position(id).map(|i| &self.list[i])
    }

    fn get_mut(&mut self, id: &PeerId) -> Option<&mut Peer> {
        self.position(id).map(|i| &mut self.list[i])
    }

    fn contains(&self, id: &PeerId) -> bool {
        self.index.contains_key(id)
    }

    fn insert(&mut self, peer: Peer) {
        self.index.insert(peer.id, self.list.len());
        self.list.push(peer);
    }

    fn remove(&mut self, id: &PeerId) -> Option<Peer> {
        let i = self.index.remove(id)?;
        let peer = self.list.swap_remove(i);
        if let Some(moved) = self.list.get(i) {
            self.index.insert(moved.id, i);
        }
        Some(peer)
    }

    fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.list.iter()
    }

    /// Up to `n` distinct peers other than the one at `skip`, chosen at random.
    fn pick(&self, n: usize, skip: usize, rng: &mut u64, out: &mut Vec<usize>) {
        let others = self.list.len().saturating_sub(1);
        if n >= others {
            out.extend((0..self.list.len()).filter(|&i| i != skip));
            return;
        }
        // n < others: drawing until n distinct ones are found ends soon (n is at most
        // max_numwant, a handful).
        while out.len() < n {
            let i = (next(rng) % self.list.len() as u64) as usize;
            if i != skip && !out.contains(&i) {
                out.push(i);
            }
        }
    }
}

impl Swarm {
    fn counts(&self) -> (u64, u64) {
        (self.seeders, self.peers.len() as u64 - self.seeders)
    }
}

impl State {
    fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remove one peer entry (if it belongs to `conn`), and its swarm when empty.
    fn remove_peer(&mut self, hash: &InfoHash, peer: &PeerId, conn: ConnId) -> bool {
        let Some(swarm) = self.swarms.get_mut(hash) else {
            return false;
        };
        if swarm.peers.get(peer).is_none_or(|p| p.conn != conn) {
            return false;
        }
        if let Some(p) = swarm.peers.remove(peer)
            && p.seeder
        {
            swarm.seeders -= 1;
        }
        if swarm.peers.is_empty() {
            self.swarms.remove(hash);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.joined.retain(|(h, p)| !(h == hash && p == peer));
        }
        true
    }

    /// Forget a connection's queue and every peer it announced. Dropping the sender ends the
    /// connection's receive loop, which closes the socket.
    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            for (hash, peer) in c.joined {
                self.remove_peer(&hash, &peer, conn);
            }
        }
    }

    /// Queue a message for a connection; a full queue drops that connection.
    fn send(&mut self, conn: ConnId, msg: String, metrics: &TrackerMetrics) -> bool {
        let Some(c) = self.conns.get(&conn) else { return false };
        match c.tx.try_send(msg) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::info!(conn, "tracker peer too slow (queue full): dropping its connection");
                metrics
                    .slow_peers_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.drop_conn(conn);
                false
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }
}

impl Tracker {
    pub fn new(cfg: TrackerConfig) -> Tracker {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            // Peer choice only needs to be unpredictable enough to spread load.
            seed = (std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15).to_le_bytes();
        }
        let state = State {
            rng: u64::from_le_bytes(seed) | 1,
            ..State::default()
        };
        Tracker {
            inner: Arc::new(Inner {
                cfg,
                metrics: TrackerMetrics::default(),
                state: Mutex::new(state),
            }),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.inner.cfg
    }

    pub fn metrics(&self) -> &TrackerMetrics {
        &self.inner.metrics
    }

    /// (swarms, peers) right now.
    pub fn counts(&self) -> (usize, usize) {
        let st = State::lock(&self.inner.state);
        (st.swarms.len(), st.swarms.values().map(|s| s.peers.len()).sum())
    }

    /// Append the `hlswarm_tracker_*` metrics to a Prometheus text exposition.
    pub fn render_metrics(&self, out: &mut String) {
        let (swarms, peers) = self.counts();
        self.inner.metrics.render(out, swarms, peers);
    }

    /// Admit a connection from `ip`: its handle and the queue of messages to write to it.
    pub fn connect(&self, ip: IpAddr) -> Result<(Connection, mpsc::Receiver<String>)> {
        let m = &self.inner.metrics;
        let mut st = State::lock(&self.inner.state);
        let n = st.per_ip.entry(ip).or_default();
        if *n >= self.inner.cfg.max_connections_per_ip {
            drop(st);
            m.reject(Reject::TooManyConnections);
            tracing::info!(%ip, "tracker connection refused: too many from this address");
            return Err(Reject::TooManyConnections);
        }
        *n += 1;
        st.next_id += 1;
        let id = st.next_id;
        let (tx, rx) = mpsc::channel(self.inner.cfg.outbound_queue.max(1));
        st.conns.insert(id, Conn { tx, joined: Vec::new() });
        m.connections_open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        m.connections_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tracker = self.clone();
        Ok((Connection { tracker, id, ip }, rx))
    }

    /// Remove peers not heard from within the idle time; returns how many.
    pub fn expire(&self) -> usize {
        let idle = self.inner.cfg.idle_timeout();
        let now = Instant::now();
        let mut st = State::lock(&self.inner.state);
        let stale: Vec<(InfoHash, PeerId, ConnId)> = st
            .swarms
            .iter()
            .flat_map(|(h, s)| {
                s.peers
                    .iter()
                    .filter(|p| now.duration_since(p.last_seen) >= idle)
                    .map(|p| (*h, p.id, p.conn))
            })
            .collect();
        for (h, p, c) in &stale {
            st.remove_peer(h, p, *c);
        }
        self.inner
            .metrics
            .peers_expired
            .fetch_add(stale.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if !stale.is_empty() {
            tracing::debug!(peers = stale.len(), "tracker peers expired");
        }
        stale.len()
    }

    /// Run [`Tracker::expire`] every quarter of the idle time, forever.
    pub async fn run_expiry(self) {
        let mut tick = tokio::time::interval(self.inner.cfg.idle_timeout() / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.expire();
        }
    }
}

/// One client connection. Dropping it removes the connection and every peer it announced.
#[derive(Debug)]
pub struct Connection {
    tracker: Tracker,
    id: ConnId,
    ip: IpAddr,
}

impl Drop for Connection {
    fn drop(&mut self) {
        let inner = &self.tracker.inner;
        let mut st = State::lock(&inner.state);
        st.drop_conn(self.id);
        if let Some(n) = st.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                st.per_ip.remove(&self.ip);
            }
        }
        inner
            .metrics
            .connections_open
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Connection {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Count and log a refusal; the failure reply to send.
    pub fn refuse(&self, why: Reject, action: Option<Action>, info_hash: Option<InfoHash>) -> String {
        self.refuse_because(why, action, info_hash, why.to_string())
    }

    /// [`Connection::refuse`] with a `failure reason` that says more than the [`Reject`]'s.
    fn refuse_because(
        &self,
        why: Reject,
        action: Option<Action>,
        info_hash: Option<InfoHash>,
        reason: String,
    ) -> String {
        self.tracker.inner.metrics.reject(why);
        tracing::debug!(conn = self.id, reason = why.label(), "tracker message refused");
        Response::Failure(Failure {
            action,
            info_hash,
            reason,
        })
        .to_json()
    }

    /// Handle one text message; the reply to send to this client, if any. Messages for other
    /// peers go to their queues.
    pub fn handle_text(&self, text: &str) -> Option<String> {
        if text.len() > self.tracker.inner.cfg.max_message_bytes {
            return Some(self.refuse(Reject::TooLarge, None, None));
        }
        match parse_request(text) {
            Err(e) => {
                tracing::debug!(conn = self.id, error = %e, "unparsable tracker message");
                // The parser's words say what was wrong (a bad numwant, a short info_hash).
                let mut why = format!("{}: {e}", Reject::Malformed);
                if let Some((cut, _)) = why.char_indices().nth(MAX_DETAIL) {
                    why.truncate(cut);
                }
                Some(self.refuse_because(Reject::Malformed, None, None, why))
            }
            Ok(Request::Announce(req)) => {
                let hash = req.info_hash;
                match self.announce(req) {
                    Ok(reply) => reply.map(|r| r.to_json()),
                    Err(why) => Some(self.refuse(why, Some(Action::Announce), Some(hash))),
                }
            }
            Ok(Request::Scrape(req)) => Some(match self.scrape(req) {
                Ok(r) => r.to_json(),
                Err(why) => self.refuse(why, Some(Action::Scrape), None),
            }),
        }
    }

    fn announce(&self, req: AnnounceRequest) -> Result<Option<Response>> {
        let inner = &self.tracker.inner;
        let (cfg, m) = (&inner.cfg, &inner.metrics);
        m.announces.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = Instant::now();
        let mut st = State::lock(&inner.state);
        let (hash, me) = (req.info_hash, req.peer_id);
        if let Some(p) = st.swarms.get(&hash).and_then(|s| s.peers.get(&me))
            && p.conn != self.id
        {
            return Err(Reject::PeerIdInUse);
        }
        if req.answer.is_some() {
            self.answer(&mut st, req, now)?;
            return Ok(None);
        }
        if req.event == Some(Event::Stopped) {
            st.remove_peer(&hash, &me, self.id);
            let (complete, incomplete) = st.swarms.get(&hash).map_or((0, 0), Swarm::counts);
            return Ok(Some(self.reply(hash, complete, incomplete)));
        }
        let offers = req.offers.unwrap_or_default();
        if offers.len() > cfg.max_offers {
            return Err(Reject::TooManyOffers);
        }
        if !st.swarms.contains_key(&hash) && st.swarms.len() >= cfg.max_swarms {
            return Err(Reject::TooManySwarms);
        }
        let State { swarms, conns, rng, .. } = &mut *st;
        let swarm = swarms.entry(hash).or_default();
        if !swarm.peers.contains(&me) {
            if swarm.peers.len() >= cfg.max_peers_per_swarm {
                if swarm.peers.is_empty() {
                    swarms.remove(&hash);
                }
                return Err(Reject::SwarmFull);
            }
            swarm.peers.insert(Peer {
                id: me,
                conn: self.id,
                seeder: false,
                last_seen: now,
            });
            if let Some(c) = conns.get_mut(&self.id) {
                c.joined.push((hash, me));
            }
        }
        let completed = req.event == Some(Event::Completed);
        let seeder_now = match req.left {
            _ if completed => Some(true),
            Some(left) => Some(left == 0.0),
            None => None,
        };
        let mut delta: i64 = 0;
        let mine = swarm.peers.position(&me).unwrap_or(usize::MAX);
        if let Some(p) = swarm.peers.list.get_mut(mine) {
            p.last_seen = now;
            if let Some(s) = seeder_now
                && s != p.seeder
            {
                p.seeder = s;
                delta = if s { 1 } else { -1 };
            }
        }
        swarm.seeders = swarm.seeders.saturating_add_signed(delta);
        if completed && delta == 1 {
            swarm.downloaded += 1;
        }

        // Relay each offer to a different random other peer. Only the announcer's own peer_id
        // is skipped: the npm client shares one socket between all torrents (and clients) of a
        // process, so other peers may share our connection.
        let want = req.numwant.map_or(usize::MAX, |n| n as usize);
        let n = want.min(offers.len()).min(cfg.max_numwant);
        let mut picks = Vec::new();
        if n > 0 {
            swarm.peers.pick(n, mine, rng, &mut picks);
        }
        let targets: Vec<ConnId> = picks.iter().map(|&i| swarm.peers.list[i].conn).collect();
        let (complete, incomplete) = swarm.counts();
        for (offer, conn) in offers.into_iter().zip(targets) {
            let msg = Response::Offer(OfferOut {
                action: Action::Announce,
                info_hash: hash,
                peer_id: me,
                offer: offer.offer,
                offer_id: offer.offer_id,
            });
            if st.send(conn, msg.to_json(), m) {
                m.offers_relayed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(Some(self.reply(hash, complete, incomplete)))
    }

    fn reply(&self, info_hash: InfoHash, complete: u64, incomplete: u64) -> Response {
        Response::Announce(AnnounceResponse {
            action: Action::Announce,
            info_hash,
            interval: self.tracker.inner.cfg.announce_interval_secs,
            complete,
            incomplete,
        })
    }

    /// Relay an answer to `to_peer_id` in the same swarm; the answering peer must be in it too.
    fn answer(&self, st: &mut State, req: AnnounceRequest, now: Instant) -> Result<()> {
        let (Some(to), Some(offer_id), Some(answer)) = (req.to_peer_id, req.offer_id, req.answer) else {
            return Err(Reject::BadAnswer);
        };
        let swarm = st.swarms.get_mut(&req.info_hash).ok_or(Reject::NotInSwarm)?;
        let me = swarm
            .peers
            .get_mut(&req.peer_id)
            .filter(|p| p.conn == self.id)
            .ok_or(Reject::NotInSwarm)?;
        me.last_seen = now;
        let conn = swarm.peers.get(&to).ok_or(Reject::UnknownPeer)?.conn;
        let msg = Response::Answer(AnswerOut {
            action: Action::Announce,
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            answer,
            offer_id,
        });
        let m = &self.tracker.inner.metrics;
        if st.send(conn, msg.to_json(), m) {
            m.answers_relayed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    fn scrape(&self, req: ScrapeRequest) -> Result<Response> {
        let inner = &self.tracker.inner;
        inner.metrics.scrapes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let max = inner.cfg.max_scrape_hashes;
        let st = State::lock(&inner.state);
        let stats = |s: &Swarm| {
            let (complete, incomplete) = s.counts();
            ScrapeStats {
                complete,
                incomplete,
                downloaded: s.downloaded,
            }
        };
        let files = match &req.info_hash {
            Some(list) => {
                let list = list.as_slice();
                if list.len() > max {
                    return Err(Reject::TooManyHashes);
                }
                list.iter()
                    .map(|h| (*h, st.swarms.get(h).map(stats).unwrap_or_default()))
                    .collect()
            }
            // No list: some swarms, at most `max`.
            None => st.swarms.iter().take(max).map(|(h, s)| (*h, stats(s))).collect(),
        };
        Ok(Response::Scrape(ScrapeResponse {
            action: Action::Scrape,
            files,
        }))
    }
}

fn next(rng: &mut u64) -> u64 {
    let mut x = *rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}
