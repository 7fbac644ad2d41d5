//! The HPACK encoder: picks a representation for each field (indexed, literal with or without
//! indexing, or never indexed), keeps the `Mirror` of the peer's dynamic table up to date,
//! and owns the hash the mirror's index uses.

use std::hash::Hasher;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};

use super::table::{self, Key, Mirror};
use super::{huffman, Header, Pseudo, DEFAULT_TABLE_SIZE};

/// Longer values are sent without indexing: one would push many small, reusable entries out.
const MAX_INDEXED_VALUE: usize = 256;

/// The most table space this encoder uses, whatever the peer allows. A peer may advertise up to
/// 4 GiB; using less is always allowed (RFC 7541 §4.2) and keeps each connection small, and
/// gRPC heads are short and repetitive enough that more would buy little.
const MAX_USED_TABLE_SIZE: usize = DEFAULT_TABLE_SIZE;

/// Encodes the header blocks sent to one peer on one connection.
#[derive(Debug)]
pub struct Encoder {
    table: Mirror,
    /// The peer's SETTINGS_HEADER_TABLE_SIZE as last seen.
    peer_setting: usize,
    /// The smallest table size set since the last block started, when it changed: that and
    /// the final size must both be signalled (§4.2).
    pending_min: Option<usize>,
}

/// The §6.2 literal representations.
#[derive(Clone, Copy)]
enum Literal {
    Indexing,
    WithoutIndexing,
    NeverIndexed,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder for a peer whose table is 4096 bytes (the initial HTTP/2 value).
    ///
    /// Nothing is allocated until the first field is indexed.
    pub fn new() -> Encoder {
        Encoder {
            table: Mirror::new(DEFAULT_TABLE_SIZE),
            peer_setting: DEFAULT_TABLE_SIZE,
            pending_min: None,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: the table is shrunk at once (evicting), and the next
    /// block starts with a dynamic table size update (if several changes happen between blocks, emit the
    /// minimum then the final, per RFC 7541 §4.2).
    ///
    /// The table used is capped at 4096 bytes; a setting equal to the last one changes nothing.
    pub fn set_max_table_size(&mut self, size: usize) {
        if size == self.peer_setting {
            return;
        }
        self.peer_setting = size;
        let used = size.min(MAX_USED_TABLE_SIZE);
        self.table.set_max_size(used);
        self.pending_min = Some(self.pending_min.map_or(used, |min| min.min(used)));
    }

    /// Starts a header block: writes any pending table size update. Called once before each block.
    pub fn start_block(&mut self, dst: &mut Vec<u8>) {
        if let Some(min) = self.pending_min.take() {
            let size = self.table.max_size();
            if min < size {
                write_int(min, 5, 0x20, dst);
            }
            write_int(size, 5, 0x20, dst);
        }
    }

    /// Appends a pseudo-header field to the block. `:path` values with a query are not
    /// indexed: they rarely repeat.
    pub fn encode_pseudo(&mut self, p: Pseudo, value: &[u8], dst: &mut Vec<u8>) {
        if let Some(index) = table::static_pseudo_exact(p, value) {
            return write_int(index, 7, 0x80, dst);
        }
        let name = p.as_str().as_bytes();
        let hash = FieldHash::new(name, value);
        if let Some(index) = self.table.find(hash, Key::Pseudo(p), value) {
            return write_int(index, 7, 0x80, dst);
        }
        let name_index = table::static_pseudo_name(p)
            .or_else(|| self.table.find_name(hash.name, Key::Pseudo(p)));
        let worth = !(p == Pseudo::Path && value.contains(&b'?'));
        if worth && self.fits(name.len(), value.len()) {
            write_literal(Literal::Indexing, name_index, name, value, dst);
            let header = Header::Pseudo(p, Bytes::copy_from_slice(value));
            self.table.insert(header, hash);
        } else {
            write_literal(Literal::WithoutIndexing, name_index, name, value, dst);
        }
    }

    /// Appends a regular field to the block. Credentials and cookies, and any value marked
    /// sensitive, are sent never indexed so no intermediary may index them (§7.1.3); fields
    /// whose values seldom repeat are sent without indexing; the rest are indexed.
    pub fn encode_field(&mut self, name: &HeaderName, value: &HeaderValue, dst: &mut Vec<u8>) {
        let (raw_name, raw_value) = (name.as_str().as_bytes(), value.as_bytes());
        let key = Key::Field(name);
        let static_name = table::static_field_name(name.as_str());
        if value.is_sensitive() || is_sensitive_name(name) {
            let name_hash = FieldHash::name_only(raw_name);
            let name_index = static_name.or_else(|| self.table.find_name(name_hash, key));
            return write_literal(Literal::NeverIndexed, name_index, raw_name, raw_value, dst);
        }
        // Static entries hold an empty value, but for accept-encoding's "gzip, deflate".
        let static_exact = match static_name {
            Some(16) => raw_value == b"gzip, deflate",
            Some(_) => raw_value.is_empty(),
            None => false,
        };
        if let (Some(index), true) = (static_name, static_exact) {
            return write_int(index, 7, 0x80, dst);
        }
        let hash = FieldHash::new(raw_name, raw_value);
        if let Some(index) = self.table.find(hash, key, raw_value) {
            return write_int(index, 7, 0x80, dst);
        }
        let name_index = static_name.or_else(|| self.table.find_name(hash.name, key));
        if !seldom_repeats(name.as_str()) && self.fits(raw_name.len(), raw_value.len()) {
            write_literal(Literal::Indexing, name_index, raw_name, raw_value, dst);
            self.table
                .insert(Header::Field(name.clone(), value.clone()), hash);
        } else {
            write_literal(
                Literal::WithoutIndexing,
                name_index,
                raw_name,
                raw_value,
                dst,
            );
        }
    }

    /// Whether a field is short enough to index: an entry larger than the table would only
    /// empty it (§4.4).
    fn fits(&self, name_len: usize, value_len: usize) -> bool {
        value_len <= MAX_INDEXED_VALUE && name_len + value_len + 32 <= self.table.max_size()
    }

    #[cfg(test)]
    pub(super) fn table(&self) -> &Mirror {
        &self.table
    }
}

fn is_sensitive_name(name: &HeaderName) -> bool {
    name == header::AUTHORIZATION
        || name == header::PROXY_AUTHORIZATION
        || name == header::COOKIE
        || name == header::SET_COOKIE
}

/// Fields whose values are usually different each time: indexing them would only evict
/// entries that do repeat.
fn seldom_repeats(name: &str) -> bool {
    matches!(
        name,
        "content-length"
            | "grpc-timeout"
            | "date"
            | "age"
            | "etag"
            | "last-modified"
            | "if-modified-since"
            | "if-none-match"
            | "location"
            | "x-request-id"
            | "traceparent"
            | "tracestate"
            | "grpc-trace-bin"
    )
}

fn write_literal(
    kind: Literal,
    name_index: Option<usize>,
    name: &[u8],
    value: &[u8],
    dst: &mut Vec<u8>,
) {
    let (prefix, flags) = match kind {
        Literal::Indexing => (6, 0x40),
        Literal::WithoutIndexing => (4, 0x00),
        Literal::NeverIndexed => (4, 0x10),
    };
    match name_index {
        Some(index) => write_int(index, prefix, flags, dst),
        None => {
            write_int(0, prefix, flags, dst);
            write_string(name, dst);
        }
    }
    write_string(value, dst);
}

/// Writes a §5.2 string literal, Huffman-coded only when that is shorter.
fn write_string(s: &[u8], dst: &mut Vec<u8>) {
    let coded_len = huffman::encoded_len(s);
    if coded_len < s.len() {
        write_int(coded_len, 7, 0x80, dst);
        dst.reserve(coded_len);
        huffman::encode(s, dst);
    } else {
        write_int(s.len(), 7, 0, dst);
        dst.extend_from_slice(s);
    }
}

/// Writes a §5.1 integer with an N-bit prefix (1 to 8); `flags` fills the bits above it.
pub(super) fn write_int(mut value: usize, prefix_bits: u8, flags: u8, dst: &mut Vec<u8>) {
    let max = usize::from(u8::MAX >> (8 - prefix_bits));
    if value < max {
        dst.push(flags | value as u8);
        return;
    }
    dst.push(flags | max as u8);
    value -= max;
    while value >= 0x80 {
        dst.push(0x80 | (value & 0x7f) as u8);
        value >>= 7;
    }
    dst.push(value as u8);
}

/// Hashes of a field's name, and of its name and value together, for the `Mirror` look-ups.
#[derive(Debug, Clone, Copy)]
pub(super) struct FieldHash {
    pub(super) name: u64,
    pub(super) field: u64,
}

const SEED: u64 = 0x243f_6a88_85a3_08d3;
/// 2^64 divided by the golden ratio: an odd constant with well-spread bits.
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

impl FieldHash {
    pub(super) fn new(name: &[u8], value: &[u8]) -> Self {
        let state = mix(SEED, name);
        FieldHash {
            name: finish(state),
            field: finish(mix(state, value)),
        }
    }

    pub(super) fn name_only(name: &[u8]) -> u64 {
        finish(mix(SEED, name))
    }
}

/// Folds `bytes` into `state` eight at a time, multiply-rotate style (the FxHash family: fast
/// on short strings, no SipHash-like cost; flooding is no concern for a table of at most a few
/// hundred entries that drops colliding keys). The length goes into the last word, so the
/// name/value boundary is part of the hash.
fn mix(mut state: u64, bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        state = (state ^ word).wrapping_mul(MUL).rotate_left(26);
    }
    let mut tail = (bytes.len() as u64) << 56;
    for (i, &byte) in chunks.remainder().iter().enumerate() {
        tail |= u64::from(byte) << (8 * i);
    }
    (state ^ tail).wrapping_mul(MUL).rotate_left(26)
}

/// Spreads the state over all bits: hashbrown uses both the top 7 bits and the low bits.
fn finish(state: u64) -> u64 {
    let h = (state ^ (state >> 32)).wrapping_mul(MUL);
    h ^ (h >> 29)
}

/// The maps' keys are already hashes, so their hasher passes them through.
#[derive(Default)]
pub(super) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

    use super::super::decoder::read_int;
    use super::super::tests::{hex, ALL_PSEUDOS};
    use super::super::Decoder;
    use super::*;

    #[derive(Debug, Clone)]
    enum Field {
        Pseudo(Pseudo, String),
        Regular(String, String, bool),
    }

    const NAMES: &str = "content-type te user-agent grpc-timeout cookie authorization \
        accept-encoding accept x-request-id cache-control date grpc-status";

    const VALUES: [&str; 9] = [
        "",
        "GET",
        "POST",
        "/",
        "/a?b",
        "200",
        "http",
        "gzip, deflate",
        "trailers",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => "[ -~]{0,12}",
            1 => "[ -~]{250,300}",
            3 => select(&VALUES[..]).prop_map(String::from),
        ]
    }

    fn field() -> impl Strategy<Value = Field> {
        let name = prop_oneof![
            "[a-d-]{1,5}",
            select(NAMES.split_whitespace().collect::<Vec<_>>()).prop_map(String::from)
        ];
        prop_oneof![
            (select(&ALL_PSEUDOS[..]), value()).prop_map(|(p, v)| Field::Pseudo(p, v)),
            (name, value(), any::<bool>()).prop_map(|(n, v, s)| Field::Regular(n, v, s)),
        ]
    }

    /// Encodes one block, returning it and the headers it should decode to.
    fn encode_block(e: &mut Encoder, fields: &[Field]) -> (Vec<u8>, Vec<Header>) {
        let mut out = Vec::new();
        let mut want = Vec::new();
        e.start_block(&mut out);
        for field in fields {
            match field {
                Field::Pseudo(p, v) => {
                    e.encode_pseudo(*p, v.as_bytes(), &mut out);
                    want.push(Header::Pseudo(*p, Bytes::copy_from_slice(v.as_bytes())));
                }
                Field::Regular(n, v, sensitive) => {
                    let name = HeaderName::from_bytes(n.as_bytes()).unwrap();
                    let mut value = HeaderValue::from_str(v).unwrap();
                    value.set_sensitive(*sensitive);
                    e.encode_field(&name, &value, &mut out);
                    want.push(Header::Field(name, value));
                }
            }
        }
        (out, want)
    }

    #[test]
    fn c1_integers() {
        for (value, prefix, wire) in [(10, 5, "0a"), (1337, 5, "1f9a0a"), (42, 8, "2a")] {
            let mut out = Vec::new();
            write_int(value, prefix, 0, &mut out);
            assert_eq!(out, hex(wire));
            let mut src = &out[..];
            assert_eq!(read_int(&mut src, prefix), Ok(value));
            assert!(src.is_empty());
        }
        // Flag bits above the prefix are not part of the value.
        let mut src = &[0xea, 0x9a, 0x0a][..];
        assert_eq!(read_int(&mut src, 5), Ok(10));
    }

    proptest! {
        #[test]
        fn blocks_round_trip_with_tables_in_sync(
            blocks in vec((vec(prop_oneof![0..=300usize, 0..=8192usize], 0..3), vec(field(), 0..12)), 1..8)
        ) {
            let mut e = Encoder::new();
            let mut d = Decoder::new(4096);
            for (sizes, fields) in blocks {
                // Several changes between blocks need two size updates (§4.2).
                for size in sizes {
                    e.set_max_table_size(size);
                }
                let (block, want) = encode_block(&mut e, &fields);
                let mut got = Vec::new();
                d.decode(&block, usize::MAX, |h| got.push(h)).unwrap();
                prop_assert_eq!(&got, &want);
                for (got, want) in got.iter().zip(&want) {
                    if let (Header::Field(name, got), Header::Field(_, want)) = (got, want) {
                        let sensitive = want.is_sensitive() || is_sensitive_name(name);
                        prop_assert_eq!(got.is_sensitive(), sensitive, "{:?}", name);
                    }
                }
                prop_assert_eq!(d.table_size(), (e.table().size(), e.table().max_size()));
            }
        }

        #[test]
        fn corrupted_blocks_never_panic(
            fields in vec(field(), 1..10),
            flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut e = Encoder::new();
            let (mut block, _) = encode_block(&mut e, &fields);
            for (at, bits) in flips {
                let at = at.index(block.len());
                block[at] ^= bits;
            }
            let mut d = Decoder::new(4096);
            let _ = d.decode(&block, 1 << 16, |_| {});
            let _ = d.decode(&block, 1 << 16, |_| {});
        }
    }
}
