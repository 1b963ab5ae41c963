//! The swarm's wire formats (docs/PROTOCOL.md §15.1): gossip messages on a stream's topic, and
//! the request-response protocol that fetches blobs and a peer's latest signed objects.
//!
//! Everything is length-bounded before it is buffered: a request is at most
//! [`MAX_REQUEST_BYTES`], a response at most a segment's size limit plus a few bytes.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol};
use manifest_signer::objects::limits::{MAX_ANNOUNCE_BYTES, MAX_MANIFEST_BYTES, MAX_SEGMENT_BYTES};
use manifest_signer::{Hash, StreamId};

/// The request-response protocol.
pub const FETCH_PROTOCOL: StreamProtocol = StreamProtocol::new("/hlswarm/fetch/1");
/// Kademlia's protocol: a DHT of hlswarm nodes only.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/hlswarm/kad/1");
/// identify's protocol version string.
pub const IDENTIFY_VERSION: &str = "/hlswarm/1";

pub const MAX_REQUEST_BYTES: usize = 128;
const MAX_RESPONSE_BYTES: u64 = MAX_SEGMENT_BYTES + 16;

/// The gossipsub topic of a stream.
pub fn topic(stream: &StreamId) -> libp2p::gossipsub::IdentTopic {
    libp2p::gossipsub::IdentTopic::new(format!("hlswarm/1/stream/{stream}"))
}

/// The stream a topic names, if it is one of ours.
pub fn topic_stream(topic: &str) -> Option<StreamId> {
    topic.strip_prefix("hlswarm/1/stream/")?.parse().ok()
}

/// The Kademlia key under which the nodes carrying a stream are providers.
pub fn provider_key(stream: &StreamId) -> libp2p::kad::RecordKey {
    let mut k = b"hlswarm/1/stream/".to_vec();
    k.extend_from_slice(&stream.0);
    libp2p::kad::RecordKey::new(&k)
}

/// A message on a stream's topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gossip {
    /// MANIFEST_ROOT wire bytes.
    Manifest(Vec<u8>),
    /// STREAM_ANNOUNCE wire bytes.
    Announce(Vec<u8>),
    /// The author holds every blob of the stream's manifest `seq` (and serves it).
    Have(u64),
    /// PART statement wire bytes (§16); whoever forwards one serves the part's bytes.
    Part(Vec<u8>),
}

impl Gossip {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Gossip::Manifest(w) => [&[1u8][..], w].concat(),
            Gossip::Announce(w) => [&[2u8][..], w].concat(),
            Gossip::Have(seq) => [&[3u8][..], &seq.to_be_bytes()].concat(),
            Gossip::Part(w) => [&[4u8][..], w].concat(),
        }
    }

    pub fn decode(data: &[u8]) -> Result<Self, &'static str> {
        let (&kind, rest) = data.split_first().ok_or("empty message")?;
        match kind {
            1 if rest.len() <= MAX_MANIFEST_BYTES => Ok(Gossip::Manifest(rest.to_vec())),
            2 if rest.len() <= MAX_ANNOUNCE_BYTES => Ok(Gossip::Announce(rest.to_vec())),
            3 => Ok(Gossip::Have(u64::from_be_bytes(
                rest.try_into().map_err(|_| "have: not 8 bytes")?,
            ))),
            4 if rest.len() <= manifest_signer::part::MAX_WIRE_BYTES => Ok(Gossip::Part(rest.to_vec())),
            1 | 2 | 4 => Err("signed object over its size limit"),
            _ => Err("unknown message kind"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The bytes of a segment or init segment of `stream`.
    Blob { stream: StreamId, hash: Hash },
    /// The peer's latest served MANIFEST_ROOT and STREAM_ANNOUNCE of `stream`.
    Latest { stream: StreamId },
    /// Entries of `stream`'s Merkle log from index `from` (at most [`MAX_LOG_RESPONSE`] bytes).
    Log { stream: StreamId, from: u64 },
}

/// Most bytes of log lines in one answer.
pub const MAX_LOG_RESPONSE: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Blob(Vec<u8>),
    NotFound,
    /// All upload slots for this blob are taken: ask a peer that has it, or later.
    Busy,
    Latest {
        manifest: Vec<u8>,
        announce: Option<Vec<u8>>,
    },
    /// Log entries from the index asked for, as canonical JSON lines (`log.jsonl`).
    Log(Vec<u8>),
    /// A part this node has uploaded to its limit of peers: ask one of these, which have it
    /// or are getting it.
    Elsewhere(Vec<PeerId>),
}

/// Peers named in one "elsewhere" answer at most.
pub const MAX_ELSEWHERE: usize = 8;

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Blob { stream, hash } => [&[1u8][..], &stream.0, &hash.0].concat(),
            Request::Latest { stream } => [&[2u8][..], &stream.0].concat(),
            Request::Log { stream, from } => [&[3u8][..], &stream.0, &from.to_be_bytes()].concat(),
        }
    }

    pub fn decode(b: &[u8]) -> Result<Self, &'static str> {
        let id = |s: &[u8]| -> Result<StreamId, &'static str> {
            Ok(StreamId(s.try_into().map_err(|_| "bad stream id length")?))
        };
        match b.split_first() {
            Some((1, rest)) if rest.len() == 64 => Ok(Request::Blob {
                stream: id(&rest[..32])?,
                hash: Hash(rest[32..].try_into().map_err(|_| "bad hash length")?),
            }),
            Some((2, rest)) if rest.len() == 32 => Ok(Request::Latest { stream: id(rest)? }),
            Some((3, rest)) if rest.len() == 40 => Ok(Request::Log {
                stream: id(&rest[..32])?,
                from: u64::from_be_bytes(rest[32..].try_into().map_err(|_| "bad index length")?),
            }),
            _ => Err("malformed request"),
        }
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Blob(b) => {
                out.push(1);
                out.extend_from_slice(b);
            }
            Response::NotFound => out.push(2),
            Response::Busy => out.push(3),
            Response::Latest { manifest, announce } => {
                out.push(4);
                out.extend_from_slice(&(manifest.len() as u32).to_be_bytes());
                out.extend_from_slice(manifest);
                if let Some(a) = announce {
                    out.extend_from_slice(a);
                }
            }
            Response::Log(lines) => {
                out.push(5);
                out.extend_from_slice(lines);
            }
            Response::Elsewhere(peers) => {
                out.push(6);
                for p in peers.iter().take(MAX_ELSEWHERE) {
                    let b = p.to_bytes();
                    out.push(b.len() as u8);
                    out.extend_from_slice(&b);
                }
            }
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Self, &'static str> {
        match b.split_first() {
            Some((1, rest)) if rest.len() as u64 <= MAX_SEGMENT_BYTES => Ok(Response::Blob(rest.to_vec())),
            Some((2, [])) => Ok(Response::NotFound),
            Some((3, [])) => Ok(Response::Busy),
            Some((4, rest)) if rest.len() >= 4 => {
                let (len, rest) = rest.split_at(4);
                let len = u32::from_be_bytes(len.try_into().map_err(|_| "bad length")?) as usize;
                if len > MAX_MANIFEST_BYTES || len > rest.len() {
                    return Err("manifest length out of range");
                }
                let (m, a) = rest.split_at(len);
                if a.len() > MAX_ANNOUNCE_BYTES {
                    return Err("announce over its size limit");
                }
                Ok(Response::Latest {
                    manifest: m.to_vec(),
                    announce: (!a.is_empty()).then(|| a.to_vec()),
                })
            }
            Some((5, rest)) if rest.len() <= MAX_LOG_RESPONSE => Ok(Response::Log(rest.to_vec())),
            Some((6, mut rest)) => {
                let mut peers = Vec::new();
                while let Some((&len, tail)) = rest.split_first() {
                    if peers.len() == MAX_ELSEWHERE || tail.len() < usize::from(len) {
                        return Err("malformed elsewhere answer");
                    }
                    let (id, tail) = tail.split_at(usize::from(len));
                    peers.push(PeerId::from_bytes(id).map_err(|_| "bad peer id")?);
                    rest = tail;
                }
                Ok(Response::Elsewhere(peers))
            }
            _ => Err("malformed response"),
        }
    }
}

/// The request-response codec: one message per stream, read to its end with a size cap.
#[derive(Debug, Clone, Default)]
pub struct Codec;

async fn read_bounded<T: AsyncRead + Unpin + Send>(io: &mut T, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(limit + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message over its size limit",
        ));
    }
    Ok(buf)
}

fn invalid(e: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Request> {
        Request::decode(&read_bounded(io, MAX_REQUEST_BYTES as u64).await?).map_err(invalid)
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Response> {
        Response::decode(&read_bounded(io, MAX_RESPONSE_BYTES).await?).map_err(invalid)
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()> {
        io.write_all(&req.encode()).await?;
        io.close().await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()> {
        io.write_all(&res.encode()).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip() {
        let stream = manifest_signer::StreamKey::from_seed([1; 32]).stream_id();
        for g in [
            Gossip::Manifest(b"{}".to_vec()),
            Gossip::Announce(vec![7; 9]),
            Gossip::Have(42),
        ] {
            assert_eq!(Gossip::decode(&g.encode()).unwrap(), g);
        }
        for r in [
            Request::Blob {
                stream,
                hash: Hash::of(b"x"),
            },
            Request::Latest { stream },
            Request::Log { stream, from: 1 << 40 },
        ] {
            assert_eq!(Request::decode(&r.encode()).unwrap(), r);
        }
        for r in [
            Response::Blob(vec![1, 2, 3]),
            Response::Blob(vec![]),
            Response::NotFound,
            Response::Busy,
            Response::Latest {
                manifest: b"m".to_vec(),
                announce: None,
            },
            Response::Latest {
                manifest: b"m".to_vec(),
                announce: Some(b"a".to_vec()),
            },
            Response::Log(b"{}\n".to_vec()),
            Response::Elsewhere(vec![]),
            Response::Elsewhere(vec![PeerId::random(), PeerId::random()]),
        ] {
            assert_eq!(Response::decode(&r.encode()).unwrap(), r);
        }
        assert_eq!(topic_stream(&topic(&stream).to_string()), Some(stream));
    }

    #[test]
    fn oversize_and_junk_are_refused() {
        assert!(Gossip::decode(&[]).is_err());
        assert!(Gossip::decode(&[9, 1]).is_err());
        assert!(Gossip::decode(&[3, 1, 2]).is_err());
        let mut big = vec![1u8];
        big.resize(MAX_MANIFEST_BYTES + 2, b' ');
        assert!(Gossip::decode(&big).is_err());
        assert!(Request::decode(&[1; 10]).is_err());
        // "elsewhere": a truncated id, junk for an id, more than 8 peers.
        assert!(Response::decode(&[6, 40, 1, 2]).is_err());
        assert!(Response::decode(&[6, 2, 0xff, 0xff]).is_err());
        let eight = Response::Elsewhere((0..9).map(|_| PeerId::random()).collect()).encode();
        assert!(
            matches!(Response::decode(&eight), Ok(Response::Elsewhere(v)) if v.len() == MAX_ELSEWHERE),
            "encode names 8 at most"
        );
        let mut nine = eight.clone();
        let one = PeerId::random().to_bytes();
        nine.push(one.len() as u8);
        nine.extend_from_slice(&one);
        assert!(Response::decode(&nine).is_err());
        let mut lying = vec![4u8];
        lying.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Response::decode(&lying).is_err());
        assert!(Response::decode(&[2, 0]).is_err());
        assert!(Request::decode(&[3; 40]).is_err());
        let mut long_log = vec![5u8];
        long_log.resize(MAX_LOG_RESPONSE + 2, b'\n');
        assert!(Response::decode(&long_log).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Gossip::decode(&data);
            let _ = Request::decode(&data);
            let _ = Response::decode(&data);
        }
    }
}
