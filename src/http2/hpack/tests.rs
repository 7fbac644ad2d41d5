//! Tests of the codec as a whole: the RFC 7541 Appendix C examples C.2 to C.6 (C.1, integers,
//! sits with the integer code in `encoder`), the encoder's choice of representations and size
//! updates, the static look-ups and the encoder's mirror table. Malformed input and list limits
//! are tested in `decoder`, random round trips in `encoder`, Huffman coding in `huffman`.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::encoder::FieldHash;
use super::table::{
    static_field_name, static_pseudo_exact, static_pseudo_name, Entry, Key, Mirror, STATIC_TABLE,
};
use super::{Decoded, Decoder, Encoder, Header, HpackError, Pseudo};

pub(super) const ALL_PSEUDOS: [Pseudo; 6] = [
    Pseudo::Method,
    Pseudo::Scheme,
    Pseudo::Authority,
    Pseudo::Path,
    Pseudo::Status,
    Pseudo::Protocol,
];

pub(super) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Decodes a block with no list limit, collecting the fields as (name, value) strings.
pub(super) fn decode(d: &mut Decoder, block: &[u8]) -> Result<Vec<(String, String)>, HpackError> {
    let mut out = Vec::new();
    let decoded = d.decode(block, usize::MAX, |h| out.push(pair(&h)))?;
    assert_eq!(decoded, Decoded { oversized: false });
    Ok(out)
}

pub(super) fn pair(h: &Header) -> (String, String) {
    (
        h.name().to_owned(),
        String::from_utf8(h.value().to_vec()).unwrap(),
    )
}

pub(super) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|&(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// The dynamic table, newest first.
fn table(d: &Decoder) -> Vec<(String, String)> {
    d.table()
        .iter()
        .map(|e| match e {
            Entry::Valid(h) => pair(h),
            Entry::Invalid(_) => panic!("invalid entry"),
        })
        .collect()
}

#[test]
fn c2_single_representations() {
    let mut d = Decoder::new(4096);
    let block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    assert_eq!(
        decode(&mut d, &block).unwrap(),
        pairs(&[("custom-key", "custom-header")])
    );
    assert_eq!(table(&d), pairs(&[("custom-key", "custom-header")]));
    assert_eq!(d.table_size(), (55, 4096));

    let mut d = Decoder::new(4096);
    let block = hex("040c 2f73 616d 706c 652f 7061 7468");
    assert_eq!(
        decode(&mut d, &block).unwrap(),
        pairs(&[(":path", "/sample/path")])
    );
    assert_eq!(d.table_size().0, 0);

    let mut d = Decoder::new(4096);
    let block = hex("1008 7061 7373 776f 7264 0673 6563 7265 74");
    let mut got = Vec::new();
    d.decode(&block, usize::MAX, |h| got.push(h)).unwrap();
    let Header::Field(name, value) = &got[0] else {
        panic!("not a field")
    };
    assert_eq!(
        (name.as_str(), value.as_bytes()),
        ("password", &b"secret"[..])
    );
    assert!(
        value.is_sensitive(),
        "never-indexed values are marked sensitive"
    );
    assert_eq!(d.table_size().0, 0);

    let mut d = Decoder::new(4096);
    assert_eq!(
        decode(&mut d, &hex("82")).unwrap(),
        pairs(&[(":method", "GET")])
    );
    assert_eq!(d.table_size().0, 0);
}

fn request_lists() -> [Vec<(String, String)>; 3] {
    let base = [(":method", "GET"), (":scheme", "http"), (":path", "/")];
    let host = (":authority", "www.example.com");
    [
        pairs(&[base[0], base[1], base[2], host]),
        pairs(&[
            base[0],
            base[1],
            base[2],
            host,
            ("cache-control", "no-cache"),
        ]),
        pairs(&[
            base[0],
            (":scheme", "https"),
            (":path", "/index.html"),
            host,
            ("custom-key", "custom-value"),
        ]),
    ]
}

fn request_tables() -> [(Vec<(String, String)>, usize); 3] {
    let host = (":authority", "www.example.com");
    let cache = ("cache-control", "no-cache");
    [
        (pairs(&[host]), 57),
        (pairs(&[cache, host]), 110),
        (pairs(&[("custom-key", "custom-value"), cache, host]), 164),
    ]
}

const C3: [&str; 3] = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
];

const C4: [&str; 3] = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
];

#[test]
fn c3_c4_request_sequences_decode() {
    for blocks in [C3, C4] {
        let mut d = Decoder::new(4096);
        for ((block, want), (want_table, size)) in
            blocks.iter().zip(request_lists()).zip(request_tables())
        {
            assert_eq!(decode(&mut d, &hex(block)).unwrap(), want, "{block}");
            assert_eq!(table(&d), want_table, "{block}");
            assert_eq!(d.table_size(), (size, 4096));
        }
    }
}

#[test]
fn c4_request_sequence_encodes_byte_for_byte() {
    // The encoder's choices (Huffman when shorter, index these fields) are the RFC's here.
    let mut e = Encoder::new();
    for (list, want) in request_lists().iter().zip(C4) {
        let mut out = Vec::new();
        e.start_block(&mut out);
        for (name, value) in list {
            match Pseudo::from_bytes(name.as_bytes()) {
                Some(p) => e.encode_pseudo(p, value.as_bytes(), &mut out),
                None => e.encode_field(
                    &HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    &HeaderValue::from_str(value).unwrap(),
                    &mut out,
                ),
            }
        }
        assert_eq!(out, hex(want));
    }
    assert_eq!(e.table().size(), 164);
}

#[test]
fn c5_c6_response_sequences_with_eviction() {
    let c5 = [
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
    ];
    let c6 = [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ];
    let date1 = ("date", "Mon, 21 Oct 2013 20:13:21 GMT");
    let date2 = ("date", "Mon, 21 Oct 2013 20:13:22 GMT");
    let location = ("location", "https://www.example.com");
    let private = ("cache-control", "private");
    let cookie = (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    );
    let lists = [
        pairs(&[(":status", "302"), private, date1, location]),
        pairs(&[(":status", "307"), private, date1, location]),
        pairs(&[
            (":status", "200"),
            private,
            date2,
            location,
            ("content-encoding", "gzip"),
            cookie,
        ]),
    ];
    let tables = [
        (pairs(&[location, date1, private, (":status", "302")]), 222),
        (pairs(&[(":status", "307"), location, date1, private]), 222),
        (pairs(&[cookie, ("content-encoding", "gzip"), date2]), 215),
    ];
    for blocks in [c5, c6] {
        let mut d = Decoder::new(256);
        // The table starts at the protocol's 4096 bytes; the examples assume 256.
        assert_eq!(decode(&mut d, &hex("3fe101")).unwrap(), vec![]);
        assert_eq!(d.table_size(), (0, 256));
        for ((block, want), (want_table, size)) in blocks.iter().zip(&lists).zip(&tables) {
            assert_eq!(&decode(&mut d, &hex(block)).unwrap(), want);
            assert_eq!(&table(&d), want_table);
            assert_eq!(d.table_size(), (*size, 256));
        }
    }
}

#[test]
fn table_size_update_and_oversized_entries_evict() {
    let mut d = Decoder::new(4096);
    decode(&mut d, b"\x40\x01a\x01b\x40\x01c\x01d").unwrap();
    assert_eq!(d.table_size(), (68, 4096));
    // Shrinking to 34 bytes keeps only the newest entry.
    assert_eq!(
        decode(&mut d, &[0x3f, 0x03, 0xbe]).unwrap(),
        pairs(&[("c", "d")])
    );
    assert_eq!(
        decode_err_with(&mut d, &[0xbf]),
        HpackError::IndexOutOfRange(63)
    );
    // An entry bigger than the whole table empties it (§4.4).
    decode(&mut d, b"\x40\x01e\x02ff").unwrap();
    assert_eq!(d.table_size(), (0, 34));
    // Room is made exactly: 69 bytes hold one 35-byte entry, 70 hold two.
    decode(&mut d, b"\x3f\x26\x40\x01a\x02bb\x40\x01c\x02dd").unwrap();
    assert_eq!(table(&d), pairs(&[("c", "dd")]));
    decode(&mut d, b"\x3f\x27\x40\x01e\x02ff").unwrap();
    assert_eq!(table(&d), pairs(&[("e", "ff"), ("c", "dd")]));
    d.set_max_table_size(16);
    assert_eq!(
        decode_err_with(&mut d, &[0x3f, 0x02]),
        HpackError::TableSizeUpdateTooLarge { size: 33, max: 16 }
    );
}

fn decode_err_with(d: &mut Decoder, block: &[u8]) -> HpackError {
    d.decode(block, usize::MAX, |_| {}).unwrap_err()
}

#[test]
fn encoder_representations() {
    let mut e = Encoder::new();
    let mut out = Vec::new();
    let mut put = |e: &mut Encoder, (n, v): (&str, &str), sensitive: bool| {
        let n = HeaderName::from_bytes(n.as_bytes()).unwrap();
        let mut value = HeaderValue::from_str(v).unwrap();
        value.set_sensitive(sensitive);
        out.clear();
        e.encode_field(&n, &value, &mut out);
        out.clone()
    };
    // Static exact matches.
    assert_eq!(
        put(&mut e, ("accept-encoding", "gzip, deflate"), false),
        [0x90]
    );
    assert_eq!(put(&mut e, ("accept", ""), false), [0x93]);
    // Never indexed, with a static name index.
    assert_eq!(
        put(&mut e, ("authorization", "t"), false),
        [0x1f, 0x08, 0x01, b't']
    );
    assert_eq!(
        put(&mut e, ("x", "t"), true),
        [0x10, 0x01, b'x', 0x01, b't']
    );
    // Without indexing: a seldom-repeating name, a long value.
    assert_eq!(put(&mut e, ("grpc-timeout", "1S"), false)[0], 0x00);
    assert_eq!(put(&mut e, ("date", "d"), false), [0x0f, 0x12, 0x01, b'd']);
    assert_eq!(put(&mut e, ("a", &"v".repeat(257)), false)[0], 0x00);
    assert_eq!(e.table().len(), 0);
    // Indexed, then found: the second time is one byte, and a new value reuses the name.
    assert_eq!(put(&mut e, ("te", "trailers"), false)[0], 0x40);
    assert_eq!(put(&mut e, ("te", "trailers"), false), [0xbe]);
    assert_eq!(put(&mut e, ("te", "x"), false), [0x7e, 0x01, b'x']);
    assert_eq!(put(&mut e, ("te", "trailers"), false), [0xbf]);
    // :path with a query is not indexed; without one it is.
    out.clear();
    e.encode_pseudo(Pseudo::Path, b"/a?b=c", &mut out);
    assert_eq!(out[0], 0x04);
    out.clear();
    e.encode_pseudo(Pseudo::Protocol, b"websocket", &mut out);
    assert_eq!(
        out[0], 0x40,
        "literal name: :protocol is not in the static table"
    );
    out.clear();
    e.encode_pseudo(Pseudo::Protocol, b"websocket", &mut out);
    assert_eq!(out, [0xbe]);
}

#[test]
fn encoder_signals_table_size_changes() {
    let block = |e: &mut Encoder| {
        let mut out = Vec::new();
        e.start_block(&mut out);
        out
    };
    let mut e = Encoder::new();
    assert_eq!(block(&mut e), b"");
    e.set_max_table_size(4096);
    assert_eq!(block(&mut e), b"", "an unchanged setting needs no update");
    e.set_max_table_size(100);
    e.set_max_table_size(0);
    e.set_max_table_size(2048);
    // Minimum (0) then final (2048 = 31 + 2017 → 3f e1 0f).
    assert_eq!(block(&mut e), hex("20 3fe10f"));
    assert_eq!(block(&mut e), b"", "sent once");
    e.set_max_table_size(1 << 20);
    assert_eq!(
        block(&mut e),
        hex("3fe11f"),
        "the table used is capped at 4096"
    );
    let mut out = Vec::new();
    e.encode_field(
        &HeaderName::from_static("te"),
        &HeaderValue::from_static("x"),
        &mut out,
    );
    assert_eq!(e.table().size(), 35);
    e.set_max_table_size(34);
    assert_eq!(e.table().size(), 0, "shrinking evicts at once");
    assert_eq!(block(&mut e), hex("3f03"));
}

#[test]
fn pseudo_and_header_helpers() {
    for p in ALL_PSEUDOS {
        assert_eq!(Pseudo::from_bytes(p.as_str().as_bytes()), Some(p));
    }
    assert_eq!(Pseudo::from_bytes(b":foo"), None);
    let h = Header::Pseudo(Pseudo::Path, Bytes::from_static(b"/x"));
    assert_eq!(
        (h.name(), h.value(), h.size()),
        (":path", &b"/x"[..], 5 + 2 + 32)
    );
    assert!(HpackError::Truncated
        .to_string()
        .contains("ends in the middle"));
}

#[test]
fn mirror_indices_follow_evictions() {
    let mut mirror = Mirror::new(3 * 34);
    let put = |m: &mut Mirror, n: &str, v: &str| {
        let header = Header::Field(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
        m.insert(header, FieldHash::new(n.as_bytes(), v.as_bytes()));
    };
    let find = |m: &Mirror, n: &str, v: &str| {
        let name = HeaderName::from_bytes(n.as_bytes()).unwrap();
        m.find(
            FieldHash::new(n.as_bytes(), v.as_bytes()),
            Key::Field(&name),
            v.as_bytes(),
        )
    };
    for (n, v) in [("a", "1"), ("b", "2"), ("c", "3"), ("a", "4")] {
        put(&mut mirror, n, v);
    }
    // ("a", "1") was evicted; the newest is 62.
    assert_eq!(find(&mirror, "a", "1"), None);
    assert_eq!(find(&mirror, "a", "4"), Some(62));
    assert_eq!(find(&mirror, "b", "2"), Some(64));
    let find_name = |m: &Mirror, n: &'static str| {
        m.find_name(
            FieldHash::name_only(n.as_bytes()),
            Key::Field(&HeaderName::from_static(n)),
        )
    };
    assert_eq!(find_name(&mirror, "a"), Some(62));
    put(&mut mirror, "d", "5");
    assert_eq!(find(&mirror, "b", "2"), None);
    assert_eq!(find_name(&mirror, "b"), None);
    assert_eq!(find(&mirror, "c", "3"), Some(64));
    mirror.set_max_size(34);
    assert_eq!((mirror.len(), mirror.size()), (1, 34));
    assert_eq!(find(&mirror, "d", "5"), Some(62));
    // Too big for the table: everything goes.
    put(&mut mirror, "e", "66");
    assert_eq!((mirror.len(), mirror.size()), (0, 0));
}

#[test]
fn static_lookups_agree_with_the_table() {
    for (position, entry) in STATIC_TABLE.iter().enumerate() {
        let index = position + 1;
        let Entry::Valid(header) = entry else {
            panic!("static entry {index} is invalid")
        };
        let same_name = |e: &Entry| matches!(e, Entry::Valid(h) if h.name() == header.name());
        let first_with_name = STATIC_TABLE.iter().position(same_name).map(|p| p + 1);
        match header {
            Header::Pseudo(p, value) => {
                assert_eq!(static_pseudo_exact(*p, value), Some(index));
                assert_eq!(static_pseudo_name(*p), first_with_name);
            }
            Header::Field(name, _) => {
                assert_eq!(static_field_name(name.as_str()), Some(index));
                assert_eq!(first_with_name, Some(index), "regular names are unique");
            }
        }
    }
    assert_eq!(static_field_name("te"), None);
    assert_eq!(static_pseudo_name(Pseudo::Protocol), None);
}
