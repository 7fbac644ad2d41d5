//! The HPACK tables (RFC 7541 §2.3 and §4): the static table and its look-ups, the decoder's
//! dynamic table, and the encoder's mirror of the peer's dynamic table with its hash index.
//!
//! Both dynamic tables evict oldest first when an insertion or a smaller maximum size needs room,
//! and an entry larger than the whole table empties it (§4.4).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::encoder::{FieldHash, Prehashed};
use super::{Header, HpackError, Pseudo};

/// Number of static entries; dynamic indices start right after.
pub(super) const STATIC_LEN: usize = 61;

/// A field name as the decoder's tables keep it.
#[derive(Debug, Clone)]
pub(super) enum Name {
    Pseudo(Pseudo),
    Field(HeaderName),
}

/// An entry of the decoder's tables. A field HTTP/2 forbids is still inserted when the peer
/// indexed it, with its size and whatever part was valid, so later indices stay right; using it
/// is a stream error, not a connection error.
#[derive(Debug)]
pub(super) enum Entry {
    Valid(Header),
    Invalid(Box<InvalidField>),
}

/// What the decoder keeps of a field it could not represent.
#[derive(Debug)]
pub(super) struct InvalidField {
    /// The name when it was valid and only the value was not: a later literal may reuse it.
    pub(super) name: Option<Name>,
    pub(super) name_len: usize,
    pub(super) value_len: usize,
    pub(super) error: HpackError,
}

impl Entry {
    /// §4.1 size.
    pub(super) fn size(&self) -> usize {
        match self {
            Entry::Valid(header) => header.size(),
            Entry::Invalid(bad) => bad.name_len + bad.value_len + 32,
        }
    }

    /// The name, for a literal that refers to this entry's name by index.
    pub(super) fn name(&self) -> Result<Name, HpackError> {
        match self {
            Entry::Valid(Header::Pseudo(p, _)) => Ok(Name::Pseudo(*p)),
            Entry::Valid(Header::Field(name, _)) => Ok(Name::Field(name.clone())),
            Entry::Invalid(bad) => bad.name.clone().ok_or_else(|| bad.error.clone()),
        }
    }

    pub(super) fn name_len(&self) -> usize {
        match self {
            Entry::Valid(header) => header.name().len(),
            Entry::Invalid(bad) => bad.name_len,
        }
    }
}

const fn field(name: &'static str, value: &'static str) -> Entry {
    Entry::Valid(Header::Field(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    ))
}

const fn pseudo(p: Pseudo, value: &'static str) -> Entry {
    Entry::Valid(Header::Pseudo(p, Bytes::from_static(value.as_bytes())))
}

/// RFC 7541 Appendix A; index i is at position i - 1. Built at compile time: standard names
/// are http's own constants and values are static, so cloning an entry never allocates.
pub(super) static STATIC_TABLE: [Entry; STATIC_LEN] = [
    pseudo(Pseudo::Authority, ""),
    pseudo(Pseudo::Method, "GET"),
    pseudo(Pseudo::Method, "POST"),
    pseudo(Pseudo::Path, "/"),
    pseudo(Pseudo::Path, "/index.html"),
    pseudo(Pseudo::Scheme, "http"),
    pseudo(Pseudo::Scheme, "https"),
    pseudo(Pseudo::Status, "200"),
    pseudo(Pseudo::Status, "204"),
    pseudo(Pseudo::Status, "206"),
    pseudo(Pseudo::Status, "304"),
    pseudo(Pseudo::Status, "400"),
    pseudo(Pseudo::Status, "404"),
    pseudo(Pseudo::Status, "500"),
    field("accept-charset", ""),
    field("accept-encoding", "gzip, deflate"),
    field("accept-language", ""),
    field("accept-ranges", ""),
    field("accept", ""),
    field("access-control-allow-origin", ""),
    field("age", ""),
    field("allow", ""),
    field("authorization", ""),
    field("cache-control", ""),
    field("content-disposition", ""),
    field("content-encoding", ""),
    field("content-language", ""),
    field("content-length", ""),
    field("content-location", ""),
    field("content-range", ""),
    field("content-type", ""),
    field("cookie", ""),
    field("date", ""),
    field("etag", ""),
    field("expect", ""),
    field("expires", ""),
    field("from", ""),
    field("host", ""),
    field("if-match", ""),
    field("if-modified-since", ""),
    field("if-none-match", ""),
    field("if-range", ""),
    field("if-unmodified-since", ""),
    field("last-modified", ""),
    field("link", ""),
    field("location", ""),
    field("max-forwards", ""),
    field("proxy-authenticate", ""),
    field("proxy-authorization", ""),
    field("range", ""),
    field("referer", ""),
    field("refresh", ""),
    field("retry-after", ""),
    field("server", ""),
    field("set-cookie", ""),
    field("strict-transport-security", ""),
    field("transfer-encoding", ""),
    field("user-agent", ""),
    field("vary", ""),
    field("via", ""),
    field("www-authenticate", ""),
];

/// The static index of an entry with exactly this pseudo-header and value.
pub(super) fn static_pseudo_exact(p: Pseudo, value: &[u8]) -> Option<usize> {
    Some(match (p, value) {
        (Pseudo::Authority, b"") => 1,
        (Pseudo::Method, b"GET") => 2,
        (Pseudo::Method, b"POST") => 3,
        (Pseudo::Path, b"/") => 4,
        (Pseudo::Path, b"/index.html") => 5,
        (Pseudo::Scheme, b"http") => 6,
        (Pseudo::Scheme, b"https") => 7,
        (Pseudo::Status, b"200") => 8,
        (Pseudo::Status, b"204") => 9,
        (Pseudo::Status, b"206") => 10,
        (Pseudo::Status, b"304") => 11,
        (Pseudo::Status, b"400") => 12,
        (Pseudo::Status, b"404") => 13,
        (Pseudo::Status, b"500") => 14,
        _ => return None,
    })
}

/// The first static index with this pseudo-header's name.
pub(super) fn static_pseudo_name(p: Pseudo) -> Option<usize> {
    match p {
        Pseudo::Authority => Some(1),
        Pseudo::Method => Some(2),
        Pseudo::Path => Some(4),
        Pseudo::Scheme => Some(6),
        Pseudo::Status => Some(8),
        Pseudo::Protocol => None,
    }
}

/// The static index with this regular field name. Matching on the length first keeps the
/// string comparisons to the few names of that length.
pub(super) fn static_field_name(name: &str) -> Option<usize> {
    let candidates: &[(&str, usize)] = match name.len() {
        3 => &[("age", 21), ("via", 60)],
        4 => &[
            ("date", 33),
            ("etag", 34),
            ("from", 37),
            ("host", 38),
            ("link", 45),
            ("vary", 59),
        ],
        5 => &[("allow", 22), ("range", 50)],
        6 => &[
            ("accept", 19),
            ("cookie", 32),
            ("expect", 35),
            ("server", 54),
        ],
        7 => &[("expires", 36), ("referer", 51), ("refresh", 52)],
        8 => &[("if-match", 39), ("if-range", 42), ("location", 46)],
        10 => &[("set-cookie", 55), ("user-agent", 58)],
        11 => &[("retry-after", 53)],
        12 => &[("content-type", 31), ("max-forwards", 47)],
        13 => &[
            ("accept-ranges", 18),
            ("authorization", 23),
            ("cache-control", 24),
            ("content-range", 30),
            ("if-none-match", 41),
            ("last-modified", 44),
        ],
        14 => &[("accept-charset", 15), ("content-length", 28)],
        15 => &[("accept-encoding", 16), ("accept-language", 17)],
        16 => &[
            ("content-encoding", 26),
            ("content-language", 27),
            ("content-location", 29),
            ("www-authenticate", 61),
        ],
        17 => &[("if-modified-since", 40), ("transfer-encoding", 57)],
        18 => &[("proxy-authenticate", 48)],
        19 => &[
            ("content-disposition", 25),
            ("if-unmodified-since", 43),
            ("proxy-authorization", 49),
        ],
        25 => &[("strict-transport-security", 56)],
        27 => &[("access-control-allow-origin", 20)],
        _ => &[],
    };
    candidates.iter().find(|(n, _)| *n == name).map(|&(_, i)| i)
}

/// The decoder's dynamic table. Its storage grows on the first insertion, so an idle
/// connection's decoder allocates nothing.
#[derive(Debug)]
pub(super) struct DynamicTable {
    /// Newest first: dynamic index i (counted from 0) is position i.
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    pub(super) const fn new(max_size: usize) -> Self {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// The entry at dynamic index `index`, counted from 0 (HPACK index 62).
    pub(super) fn get(&self, index: usize) -> Option<&Entry> {
        self.entries.get(index)
    }

    /// Sum of the entries' §4.1 sizes.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    /// Entries, newest first.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// A dynamic table size update: evicts until the table fits.
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    pub(super) fn insert(&mut self, entry: Entry) {
        let size = entry.size();
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.entries.push_front(entry);
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            match self.entries.pop_back() {
                Some(old) => self.size = self.size.saturating_sub(old.size()),
                None => self.size = 0,
            }
        }
    }
}

/// The encoder's copy of the peer's dynamic table, indexed by hash from (name, value) and from
/// name to the newest entry holding them. Entries are known by insertion number, which never
/// changes, so evicting needs no renumbering: HPACK index = newest number - number + 62.
#[derive(Debug)]
pub(super) struct Mirror {
    /// Oldest first: `entries[i]` has insertion number `evicted + i`.
    entries: VecDeque<MirrorEntry>,
    size: usize,
    max_size: usize,
    /// Entries evicted so far, which is the insertion number of `entries[0]`.
    evicted: u64,
    by_field: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
    by_name: HashMap<u64, u64, BuildHasherDefault<Prehashed>>,
}

/// A name the encoder looks up, as the caller holds it: comparing a `HeaderName` with a
/// `HeaderName` is cheaper than comparing their strings.
#[derive(Clone, Copy)]
pub(super) enum Key<'a> {
    Pseudo(Pseudo),
    Field(&'a HeaderName),
}

impl Key<'_> {
    fn is_name_of(self, header: &Header) -> bool {
        match (self, header) {
            (Key::Pseudo(p), Header::Pseudo(q, _)) => p == *q,
            (Key::Field(name), Header::Field(other, _)) => name == other,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct MirrorEntry {
    header: Header,
    hash: FieldHash,
}

impl Mirror {
    /// An empty table; nothing is allocated until the first insertion.
    pub(super) fn new(max_size: usize) -> Self {
        Mirror {
            entries: VecDeque::new(),
            size: 0,
            max_size,
            evicted: 0,
            by_field: HashMap::default(),
            by_name: HashMap::default(),
        }
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The HPACK index of an entry with exactly this name and value.
    pub(super) fn find(&self, hash: FieldHash, name: Key<'_>, value: &[u8]) -> Option<usize> {
        let &number = self.by_field.get(&hash.field)?;
        let header = &self.entry(number)?.header;
        // A hash hit only says "probably": the bytes decide.
        (name.is_name_of(header) && header.value() == value).then(|| self.index_of(number))
    }

    /// The HPACK index of the newest entry with this name.
    pub(super) fn find_name(&self, name_hash: u64, name: Key<'_>) -> Option<usize> {
        let &number = self.by_name.get(&name_hash)?;
        let header = &self.entry(number)?.header;
        name.is_name_of(header).then(|| self.index_of(number))
    }

    fn entry(&self, number: u64) -> Option<&MirrorEntry> {
        let position = usize::try_from(number.checked_sub(self.evicted)?).ok()?;
        self.entries.get(position)
    }

    fn index_of(&self, number: u64) -> usize {
        let newest = self.evicted + self.entries.len() as u64 - 1;
        (newest - number) as usize + STATIC_LEN + 1
    }

    /// Records what the peer's decoder does for a literal with incremental indexing.
    pub(super) fn insert(&mut self, header: Header, hash: FieldHash) {
        let size = header.size();
        if size > self.max_size {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - size);
        let number = self.evicted + self.entries.len() as u64;
        self.by_field.insert(hash.field, number);
        self.by_name.insert(hash.name, number);
        self.entries.push_back(MirrorEntry { header, hash });
        self.size += size;
    }

    /// The table's maximum size changed: evicts at once, as the peer will on the size update.
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            let Some(old) = self.entries.pop_front() else {
                self.size = 0;
                break;
            };
            let number = self.evicted;
            self.evicted += 1;
            self.size = self.size.saturating_sub(old.header.size());
            // Only drop the index if it still points here: a newer entry with the same hash
            // owns it otherwise.
            if self.by_field.get(&old.hash.field) == Some(&number) {
                self.by_field.remove(&old.hash.field);
            }
            if self.by_name.get(&old.hash.name) == Some(&number) {
                self.by_name.remove(&old.hash.name);
            }
        }
    }
}
