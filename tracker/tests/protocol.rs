//! Protocol: the binary-string codec, a round trip of every message type, the exact JSON the
//! npm client sends, and properties (any input parses or fails without panicking).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use tracker::protocol::*;

fn id(seed: u8) -> Id20 {
    Id20(std::array::from_fn(|i| seed.wrapping_add(i as u8 * 13)))
}

#[test]
fn binary_strings_cover_every_byte_and_refuse_the_rest() {
    for start in (0..=255u8).step_by(20) {
        let bytes: [u8; 20] = std::array::from_fn(|i| start.wrapping_add(i as u8));
        let s = Id20(bytes).to_binary_string();
        assert_eq!(s.chars().count(), 20);
        assert_eq!(Id20::from_binary_str(&s), Some(Id20(bytes)));
        // Through JSON, as on the wire (bytes > 0x7f are two UTF-8 bytes, < 0x20 are escaped).
        let wire = serde_json::to_string(&Id20(bytes)).unwrap();
        assert_eq!(serde_json::from_str::<Id20>(&wire).unwrap(), Id20(bytes));
    }
    let high = "\u{ff}".repeat(20);
    assert_eq!(Id20::from_binary_str(&high), Some(Id20([0xff; 20])));
    assert_eq!(Id20::from_binary_str(&"a".repeat(19)), None);
    assert_eq!(Id20::from_binary_str(&"a".repeat(21)), None);
    assert_eq!(Id20::from_binary_str(&format!("{}\u{100}", "a".repeat(19))), None);
    assert_eq!(
        Id20::from_binary_str(&format!("{}é", "a".repeat(19))),
        Some(Id20({
            let mut b = [b'a'; 20];
            b[19] = 0xe9;
            b
        }))
    );
    assert_eq!(Id20::from_binary_str(&format!("{}😀", "a".repeat(19))), None);
    assert!(serde_json::from_str::<Id20>("42").is_err());
}

fn round_trip_request(r: Request) {
    let text = serde_json::to_string(&r).unwrap();
    assert_eq!(parse_request(&text).unwrap(), r, "{text}");
}

#[test]
fn every_request_round_trips() {
    round_trip_request(Request::Announce(AnnounceRequest {
        info_hash: id(1),
        peer_id: id(2),
        numwant: Some(5),
        uploaded: Some(10.0),
        downloaded: Some(20.0),
        left: Some(0.0),
        event: Some(Event::Started),
        offers: Some(vec![Offer {
            offer: json!({"type": "offer", "sdp": "v=0\r\n"}).into(),
            offer_id: id(3),
        }]),
        ..AnnounceRequest::default()
    }));
    for event in [Event::Stopped, Event::Completed, Event::Update, Event::Paused] {
        round_trip_request(Request::Announce(AnnounceRequest {
            info_hash: id(4),
            peer_id: id(250),
            event: Some(event),
            ..AnnounceRequest::default()
        }));
    }
    round_trip_request(Request::Announce(AnnounceRequest {
        info_hash: id(1),
        peer_id: id(2),
        answer: Some(json!({"type": "answer", "sdp": "v=0\r\n"}).into()),
        to_peer_id: Some(id(9)),
        offer_id: Some(id(3)),
        ..AnnounceRequest::default()
    }));
    round_trip_request(Request::Scrape(ScrapeRequest {
        info_hash: Some(OneOrMany::One(id(7))),
    }));
    round_trip_request(Request::Scrape(ScrapeRequest {
        info_hash: Some(OneOrMany::Many(vec![id(7), id(200)])),
    }));
    round_trip_request(Request::Scrape(ScrapeRequest { info_hash: None }));
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
    let text = serde_json::to_string(&v).unwrap();
    assert_eq!(serde_json::from_str::<T>(&text).unwrap(), v, "{text}");
}

#[test]
fn every_response_round_trips_and_has_the_wire_shape() {
    let a = AnnounceResponse {
        action: Action::Announce,
        info_hash: id(1),
        interval: 30,
        complete: 2,
        incomplete: 3,
    };
    round_trip(a.clone());
    let v: serde_json::Value = serde_json::from_str(&Response::Announce(a).to_json()).unwrap();
    assert_eq!(v["action"], "announce");
    assert_eq!(v["interval"], 30);
    let o = OfferOut {
        action: Action::Announce,
        info_hash: id(1),
        peer_id: id(2),
        offer: json!({"type": "offer", "sdp": "x"}).into(),
        offer_id: id(3),
    };
    round_trip(o);
    round_trip(AnswerOut {
        action: Action::Announce,
        info_hash: id(1),
        peer_id: id(2),
        answer: json!({"type": "answer", "sdp": "y"}).into(),
        offer_id: id(3),
    });
    let mut files = BTreeMap::new();
    files.insert(
        id(0x90),
        ScrapeStats {
            complete: 1,
            incomplete: 2,
            downloaded: 3,
        },
    );
    let s = ScrapeResponse {
        action: Action::Scrape,
        files,
    };
    round_trip(s.clone());
    let v: serde_json::Value = serde_json::from_str(&Response::Scrape(s).to_json()).unwrap();
    assert_eq!(v["files"][id(0x90).to_binary_string()]["downloaded"], 3);
    let f = Failure {
        action: Some(Action::Announce),
        info_hash: Some(id(1)),
        reason: "swarm is full".into(),
    };
    round_trip(f.clone());
    let v: serde_json::Value = serde_json::from_str(&Response::Failure(f).to_json()).unwrap();
    assert_eq!(v["failure reason"], "swarm is full");
}

#[test]
fn parses_what_the_bittorrent_tracker_client_sends() {
    // left: Infinity becomes null in JSON; numwant 50; an extra field is ignored.
    let ih = id(0xa0).to_binary_string();
    let pid = id(0x10).to_binary_string();
    let text = json!({
        "action": "announce", "info_hash": ih, "peer_id": pid, "numwant": 50, "uploaded": 0,
        "downloaded": 0, "left": null, "event": "started", "trackerid": "x",
        "offers": [{"offer": {"type": "offer", "sdp": "v=0"}, "offer_id": id(3).to_binary_string()}]
    })
    .to_string();
    let Request::Announce(a) = parse_request(&text).unwrap() else {
        panic!("not an announce")
    };
    assert_eq!(
        (a.info_hash, a.numwant, a.left, a.event),
        (id(0xa0), Some(50), None, Some(Event::Started))
    );
    assert_eq!(a.offers.unwrap().len(), 1);
    for bad in [
        "",
        "{}",
        "[]",
        r#"{"action":"connect"}"#,
        r#"{"action":"announce","info_hash":"short","peer_id":"x"}"#,
    ] {
        assert!(parse_request(bad).is_err(), "{bad}");
    }
}

#[test]
fn offers_and_answers_are_relayed_as_their_exact_text() {
    // Spacing, key order and number spelling survive: the SDP object is never rebuilt.
    let sdp = r#"{ "type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\n", "x":[1.50,{}] }"#;
    let text = format!(
        r#"{{"action":"announce","info_hash":{},"peer_id":{},"offers":[{{"offer":{sdp},"offer_id":{}}}]}}"#,
        serde_json::to_string(&id(1)).unwrap(),
        serde_json::to_string(&id(2)).unwrap(),
        serde_json::to_string(&id(3)).unwrap(),
    );
    let Request::Announce(a) = parse_request(&text).unwrap() else {
        panic!("not an announce")
    };
    let offer = a.offers.unwrap().remove(0);
    assert_eq!(offer.offer.get(), sdp);
    let out = Response::Offer(OfferOut {
        action: Action::Announce,
        info_hash: a.info_hash,
        peer_id: a.peer_id,
        offer: offer.offer,
        offer_id: offer.offer_id,
    })
    .to_json();
    assert!(out.contains(&format!(r#""offer":{sdp}"#)), "{out}");
    // Malformed JSON inside the offer is refused like any other.
    assert!(parse_request(&text.replace("[1.50", "[1.50,")).is_err());
    // A scrape may name one hash or several; an announce exactly one.
    let many = format!(
        r#"{{"action":"scrape","info_hash":[{0},{0}]}}"#,
        serde_json::to_string(&id(9)).unwrap()
    );
    assert!(matches!(parse_request(&many).unwrap(),
        Request::Scrape(ScrapeRequest { info_hash: Some(OneOrMany::Many(v)) }) if v == [id(9), id(9)]));
    assert!(parse_request(&many.replace("scrape", "announce")).is_err());
}

proptest! {
    #[test]
    fn any_text_parses_or_fails_without_panicking(s in ".{0,300}") {
        let _ = parse_request(&s);
        let _ = Id20::from_binary_str(&s);
    }

    #[test]
    fn any_bytes_decode_without_panicking(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let s = String::from_utf8_lossy(&b);
        let _ = parse_request(&s);
    }

    #[test]
    fn ids_round_trip(b in any::<[u8; 20]>()) {
        let wire = serde_json::to_string(&Id20(b)).unwrap();
        prop_assert_eq!(serde_json::from_str::<Id20>(&wire).unwrap(), Id20(b));
        prop_assert_eq!(Id20::from_binary_str(&Id20(b).to_binary_string()), Some(Id20(b)));
    }

    #[test]
    fn announces_round_trip(ih in any::<[u8; 20]>(), pid in any::<[u8; 20]>(), numwant in proptest::option::of(0u64..100),
                            left in proptest::option::of(0u32..1000), n in 0usize..4) {
        let r = Request::Announce(AnnounceRequest {
            info_hash: Id20(ih), peer_id: Id20(pid), numwant, left: left.map(f64::from),
            offers: Some((0..n).map(|i| Offer { offer: json!({"sdp": i}).into(), offer_id: Id20([i as u8; 20]) }).collect()),
            ..AnnounceRequest::default()
        });
        let text = serde_json::to_string(&r).unwrap();
        prop_assert_eq!(parse_request(&text).unwrap(), r);
    }
}

#[test]
fn out_of_range_numbers_are_refused_not_read_as_absent() {
    let ann = |field: &str, value: &str| {
        format!(
            r#"{{"action":"announce","info_hash":{},"peer_id":{},"{field}":{value}}}"#,
            serde_json::to_string(&id(1)).unwrap(),
            serde_json::to_string(&id(2)).unwrap(),
        )
    };
    for (field, value) in [
        ("numwant", "-1"),
        ("numwant", "1e308"),
        ("numwant", "2.5"),
        ("numwant", "4294967296"),
        ("left", "-1"),
        ("left", "1e308"),
        ("uploaded", "-0.5"),
        ("downloaded", "9007199254740993e3"),
    ] {
        let err = parse_request(&ann(field, value)).expect_err(&format!("{field}={value}"));
        assert!(err.to_string().contains(field), "{field}={value}: {err}");
    }
    // In range, and JavaScript's Infinity (null) for left: accepted.
    for (field, value) in [
        ("numwant", "0"),
        ("numwant", "50.0"),
        ("left", "null"),
        ("left", "0"),
        ("uploaded", "9007199254740992"),
    ] {
        assert!(parse_request(&ann(field, value)).is_ok(), "{field}={value}");
    }
}
