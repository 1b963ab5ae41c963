//! Who gets a connection slot: a sans-IO admission table, so that no amount of idle or slow
//! unauthenticated connections can keep a publisher with the right key out.
//!
//! - A connection is *pending* from accept until it starts a publish with a known key, then
//!   *publishing*. Pending connections are bounded twice: per address
//!   ([`Limits::per_address`]; IPv6 addresses count per /64, which one subscriber usually
//!   holds whole) and in all ([`Limits::pending`]).
//! - At either bound the new connection is admitted and the **oldest** pending connection
//!   (from that address, or from anyone) is evicted: an idle flood only ever pushes out
//!   itself, while a publisher needs its slot only for the moment its handshake takes.
//! - Publishing connections are never evicted; they are bounded separately
//!   ([`Limits::publishing`]) and only someone with a stream key can be one.
//!
//! The server owns one [`Admission`] behind a mutex; connection tasks report `publishing` and
//! `closed`, and the server closes the connections it is told to evict.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// Bounds of an [`Admission`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Pending connections in all.
    pub pending: usize,
    /// Pending connections from one address (IPv6: one /64).
    pub per_address: usize,
    /// Publishing connections in all.
    pub publishing: usize,
}

/// Identifies one admitted connection; increasing, so the smallest is the oldest.
pub(crate) type ConnId = u64;

/// Why a connection was closed by the admission rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// Its address had [`Limits::per_address`] pending connections and opened another.
    PerAddress,
    /// [`Limits::pending`] connections were pending and another one came.
    PoolFull,
}

/// What to do with a new connection: it is always admitted; `evict` names an older pending
/// connection to close for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub id: ConnId,
    pub evict: Option<(ConnId, Eviction)>,
}

/// Why a connection may not start publishing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PublishRefused {
    /// It was evicted (or already closed) before it got there.
    Gone,
    /// [`Limits::publishing`] connections are publishing.
    PublisherLimit,
}

#[derive(Debug)]
struct Entry {
    addr: AddrKey,
    publishing: bool,
}

/// An address as the per-address limit sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddrKey {
    V4([u8; 4]),
    /// The first 64 bits.
    V6([u8; 8]),
}

impl From<IpAddr> for AddrKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddrKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    AddrKey::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

/// The admission table (see the module docs).
#[derive(Debug)]
pub(crate) struct Admission {
    limits: Limits,
    next: ConnId,
    /// Every admitted connection still open, oldest first.
    conns: BTreeMap<ConnId, Entry>,
    /// Pending connections per address.
    pending_by_addr: HashMap<AddrKey, usize>,
    pending: usize,
    publishing: usize,
}

impl Admission {
    /// An empty table; every limit is at least 1.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                pending: limits.pending.max(1),
                per_address: limits.per_address.max(1),
                publishing: limits.publishing.max(1),
            },
            next: 0,
            conns: BTreeMap::new(),
            pending_by_addr: HashMap::new(),
            pending: 0,
            publishing: 0,
        }
    }

    /// A connection from `ip` was accepted.
    pub(crate) fn admit(&mut self, ip: IpAddr) -> Admitted {
        let addr = AddrKey::from(ip);
        let evict = if self.pending_by_addr.get(&addr).copied().unwrap_or(0) >= self.limits.per_address {
            self.oldest_pending(Some(addr)).map(|id| (id, Eviction::PerAddress))
        } else if self.pending >= self.limits.pending {
            self.oldest_pending(None).map(|id| (id, Eviction::PoolFull))
        } else {
            None
        };
        if let Some((victim, _)) = evict {
            self.closed(victim);
        }
        self.next += 1;
        let id = self.next;
        self.conns.insert(
            id,
            Entry {
                addr,
                publishing: false,
            },
        );
        *self.pending_by_addr.entry(addr).or_default() += 1;
        self.pending += 1;
        Admitted { id, evict }
    }

    /// Connection `id` presented a valid stream key: it leaves the pending pool for good.
    pub(crate) fn publishing(&mut self, id: ConnId) -> Result<(), PublishRefused> {
        let Some(entry) = self.conns.get(&id) else {
            return Err(PublishRefused::Gone);
        };
        if entry.publishing {
            return Ok(());
        }
        if self.publishing >= self.limits.publishing {
            return Err(PublishRefused::PublisherLimit);
        }
        let addr = entry.addr;
        self.unpend(addr);
        if let Some(e) = self.conns.get_mut(&id) {
            e.publishing = true;
        }
        self.publishing += 1;
        Ok(())
    }

    /// Connection `id` is gone (closed, failed or evicted); unknown ids are ignored.
    pub(crate) fn closed(&mut self, id: ConnId) {
        let Some(entry) = self.conns.remove(&id) else { return };
        if entry.publishing {
            self.publishing -= 1;
        } else {
            self.unpend(entry.addr);
        }
    }

    /// (pending, publishing) connections now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.pending, self.publishing)
    }

    fn unpend(&mut self, addr: AddrKey) {
        self.pending -= 1;
        if let Some(n) = self.pending_by_addr.get_mut(&addr) {
            *n -= 1;
            if *n == 0 {
                self.pending_by_addr.remove(&addr);
            }
        }
    }

    /// Oldest pending connection, from `addr` if given. Linear in the table, which holds at
    /// most `pending + publishing` entries.
    fn oldest_pending(&self, addr: Option<AddrKey>) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(_, e)| !e.publishing && addr.is_none_or(|a| e.addr == a))
            .map(|(id, _)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn table(pending: usize, per_address: usize, publishing: usize) -> Admission {
        Admission::new(Limits {
            pending,
            per_address,
            publishing,
        })
    }

    #[test]
    fn an_idle_flood_from_one_address_evicts_only_itself() {
        let mut a = table(16, 4, 2);
        let flood: Vec<_> = (0..16).map(|_| a.admit(ip("10.0.0.1"))).collect();
        assert!(flood[..4].iter().all(|x| x.evict.is_none()));
        // From the fifth on, each new one pushes out the oldest of that address.
        for (i, x) in flood[4..].iter().enumerate() {
            assert_eq!(x.evict, Some((flood[i].id, Eviction::PerAddress)));
        }
        assert_eq!(a.counts(), (4, 0));
        // Another address is untouched by it.
        let other = a.admit(ip("10.0.0.2"));
        assert_eq!(other.evict, None);
        assert_eq!(a.publishing(other.id), Ok(()));
        assert_eq!(a.counts(), (4, 1));
    }

    #[test]
    fn the_publisher_gets_in_past_a_flood_from_its_own_address() {
        let mut a = table(16, 4, 2);
        for _ in 0..100 {
            a.admit(ip("127.0.0.1"));
        }
        let publisher = a.admit(ip("127.0.0.1"));
        assert!(matches!(publisher.evict, Some((_, Eviction::PerAddress))));
        assert_eq!(a.publishing(publisher.id), Ok(()));
        // Once publishing it is never chosen again, however many come after.
        for _ in 0..100 {
            let x = a.admit(ip("127.0.0.1"));
            assert_ne!(x.evict.map(|e| e.0), Some(publisher.id));
        }
        assert_eq!(a.counts(), (4, 1));
    }

    #[test]
    fn a_flood_from_many_addresses_fills_the_pool_and_evicts_the_oldest() {
        let mut a = table(8, 4, 2);
        let first: Vec<_> = (1..=8).map(|i| a.admit(ip(&format!("10.0.1.{i}")))).collect();
        assert!(first.iter().all(|x| x.evict.is_none()));
        let publisher = a.admit(ip("192.0.2.7"));
        assert_eq!(publisher.evict, Some((first[0].id, Eviction::PoolFull)));
        assert_eq!(a.publishing(publisher.id), Ok(()));
        // The pool is now 7 pending; the next two fill it and then evict the oldest again.
        assert_eq!(a.admit(ip("10.0.2.1")).evict, None);
        assert_eq!(a.admit(ip("10.0.2.2")).evict, Some((first[1].id, Eviction::PoolFull)));
        assert_eq!(a.counts(), (8, 1));
    }

    #[test]
    fn an_evicted_connection_cannot_publish_afterwards() {
        let mut a = table(1, 1, 2);
        let old = a.admit(ip("10.0.0.1"));
        let new = a.admit(ip("10.0.0.2"));
        assert_eq!(new.evict, Some((old.id, Eviction::PoolFull)));
        assert_eq!(a.publishing(old.id), Err(PublishRefused::Gone));
        // Its late close changes nothing.
        a.closed(old.id);
        assert_eq!(a.counts(), (1, 0));
    }

    #[test]
    fn publishers_are_limited_separately_and_free_their_slot_on_close() {
        let mut a = table(4, 4, 2);
        let ids: Vec<_> = (0..3).map(|_| a.admit(ip("10.0.0.1")).id).collect();
        assert_eq!(a.publishing(ids[0]), Ok(()));
        assert_eq!(a.publishing(ids[0]), Ok(()), "idempotent");
        assert_eq!(a.publishing(ids[1]), Ok(()));
        assert_eq!(a.publishing(ids[2]), Err(PublishRefused::PublisherLimit));
        assert_eq!(a.counts(), (1, 2));
        a.closed(ids[0]);
        assert_eq!(a.publishing(ids[2]), Ok(()));
        assert_eq!(a.counts(), (0, 2));
        a.closed(ids[1]);
        a.closed(ids[2]);
        assert_eq!(a.counts(), (0, 0));
        assert!(a.pending_by_addr.is_empty());
    }

    #[test]
    fn ipv6_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let mut a = table(16, 2, 1);
        assert_eq!(a.admit(ip("2001:db8:1:2::1")).evict, None);
        assert_eq!(a.admit(ip("2001:db8:1:2::ffff:1")).evict, None);
        // Same /64, third: evicts the first.
        assert!(matches!(
            a.admit(ip("2001:db8:1:2:abcd::9")).evict,
            Some((1, Eviction::PerAddress))
        ));
        // Another /64 is another address.
        assert_eq!(a.admit(ip("2001:db8:1:3::1")).evict, None);
        assert_eq!(a.admit(ip("::ffff:10.0.0.1")).evict, None);
        assert_eq!(a.admit(ip("10.0.0.1")).evict, None);
        assert!(matches!(a.admit(ip("10.0.0.1")).evict, Some((_, Eviction::PerAddress))));
    }

    #[test]
    fn zero_limits_are_raised_to_one() {
        let mut a = table(0, 0, 0);
        let x = a.admit(ip("10.0.0.1"));
        assert_eq!(x.evict, None);
        assert_eq!(a.publishing(x.id), Ok(()));
    }
}
