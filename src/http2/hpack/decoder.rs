//! The HPACK decoder: header block representations (RFC 7541 §6), integers (§5.1) and string
//! literals (§5.2), turned into [`Header`]s while keeping the dynamic table in step with the
//! peer's encoder.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::table::{DynamicTable, Entry, InvalidField, Name, STATIC_LEN, STATIC_TABLE};
use super::{huffman, Decoded, Header, HpackError, Pseudo, DEFAULT_TABLE_SIZE};

/// Longest string literal accepted. The block bounds every string anyway; this only turns an
/// absurd declared length into a clear error.
const MAX_STRING_LEN: usize = 1 << 24;

/// Scratch space kept between blocks; more is released after the block that needed it.
const MAX_IDLE_SCRATCH: usize = 1024;

/// Decodes the header blocks one peer sends on one connection.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// The SETTINGS_HEADER_TABLE_SIZE we advertised: the ceiling for size updates.
    max_table_size: usize,
    /// Reused for Huffman-decoded strings, which are then copied into exact-size fields.
    scratch: Vec<u8>,
}

impl Decoder {
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE this side advertised (4096 by default); a size
    /// update above it is an error.
    ///
    /// The table itself starts at 4096 bytes, the protocol's initial size, whatever the limit:
    /// the peer may send blocks before it has seen our SETTINGS, and changes the size only
    /// with a size update. Nothing is allocated until the first entry is inserted.
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(DEFAULT_TABLE_SIZE),
            max_table_size,
            scratch: Vec::new(),
        }
    }

    /// Changes the ceiling for size updates, e.g. when the peer acknowledges new SETTINGS.
    /// The table keeps its current size until the peer sends a size update.
    pub fn set_max_table_size(&mut self, max_table_size: usize) {
        self.max_table_size = max_table_size;
    }

    /// The dynamic table's current size and maximum size, in §4.1 bytes.
    pub fn table_size(&self) -> (usize, usize) {
        (self.table.size(), self.table.max_size())
    }

    /// Decodes one complete header block (HEADERS + CONTINUATION payloads joined), calling `f` for each
    /// field in order. Size updates are allowed only at the start of the block.
    ///
    /// Once the fields' sizes add up past `max_list_size`, `f` is not called again but decoding
    /// goes on, and the result says `oversized`. A field HTTP/2 forbids (`InvalidName`,
    /// `UnknownPseudo`, `InvalidValue`) stops the calls too; the rest of the block is still
    /// decoded and then the first such error is returned, with the table in sync. Any other
    /// error is returned at once and leaves the decoder unusable: the connection must end.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        mut f: impl FnMut(Header),
    ) -> Result<Decoded, HpackError> {
        let mut src = block;
        let mut list = ListState {
            size: 0,
            max: max_list_size,
            oversized: false,
            error: None,
        };
        let mut at_start = true;
        while let Some(&first) = src.first() {
            if first & 0x80 != 0 {
                // §6.1 indexed field.
                let index = read_int(&mut src, 7)?;
                list.offer(self.lookup(index)?, &mut f);
            } else if first & 0xe0 == 0x20 {
                // §6.3 dynamic table size update.
                if !at_start {
                    return Err(HpackError::TableSizeUpdateNotAtStart);
                }
                let size = read_int(&mut src, 5)?;
                if size > self.max_table_size {
                    return Err(HpackError::TableSizeUpdateTooLarge {
                        size,
                        max: self.max_table_size,
                    });
                }
                self.table.set_max_size(size);
                continue;
            } else {
                // §6.2 literals: 01 with incremental indexing (6-bit index), 0000 without
                // indexing and 0001 never indexed (4-bit index).
                let indexing = first & 0x40 != 0;
                let prefix = if indexing { 6 } else { 4 };
                let never_indexed = !indexing && first & 0x10 != 0;
                let entry = self.read_literal(&mut src, prefix, never_indexed)?;
                if indexing {
                    list.offer(&entry, &mut f);
                    self.table.insert(entry);
                } else {
                    list.offer_owned(entry, &mut f);
                }
            }
            at_start = false;
        }
        if self.scratch.capacity() > MAX_IDLE_SCRATCH {
            // One long Huffman string should not stay allocated for the connection's life.
            self.scratch = Vec::new();
        }
        match list.error {
            Some(error) => Err(error),
            None => Ok(Decoded {
                oversized: list.oversized,
            }),
        }
    }

    #[cfg(test)]
    pub(super) fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// The static or dynamic entry at HPACK index `index`.
    fn lookup(&self, index: usize) -> Result<&Entry, HpackError> {
        let entry = match index {
            0 => None,
            1..=STATIC_LEN => STATIC_TABLE.get(index - 1),
            _ => self.table.get(index - STATIC_LEN - 1),
        };
        entry.ok_or(HpackError::IndexOutOfRange(index))
    }

    /// Reads a literal field after its first byte was classified (§6.2).
    fn read_literal(
        &mut self,
        src: &mut &[u8],
        prefix: u8,
        never_indexed: bool,
    ) -> Result<Entry, HpackError> {
        let index = read_int(src, prefix)?;
        let (name, name_len) = if index == 0 {
            let raw = read_string(src, &mut self.scratch)?;
            (parse_name(raw), raw.len())
        } else {
            let entry = self.lookup(index)?;
            (entry.name(), entry.name_len())
        };
        let value = read_string(src, &mut self.scratch)?;
        Ok(make_entry(name, name_len, value, never_indexed))
    }
}

/// Tracks the list passed to the callback: its size, and whether calls have stopped.
struct ListState {
    size: usize,
    max: usize,
    oversized: bool,
    error: Option<HpackError>,
}

impl ListState {
    /// Counts a field; true if it should be passed on.
    fn admit(&mut self, field_size: usize) -> bool {
        if self.oversized || self.error.is_some() {
            return false;
        }
        self.size = self.size.saturating_add(field_size);
        self.oversized = self.size > self.max;
        !self.oversized
    }

    /// Passes a table entry's field on (a clone: reference counts only), or records its error.
    fn offer(&mut self, entry: &Entry, f: &mut impl FnMut(Header)) {
        match entry {
            Entry::Valid(header) => {
                if self.admit(header.size()) {
                    f(header.clone());
                }
            }
            Entry::Invalid(bad) => self.fail(&bad.error),
        }
    }

    /// The same for a field the table does not keep, which is moved instead.
    fn offer_owned(&mut self, entry: Entry, f: &mut impl FnMut(Header)) {
        match entry {
            Entry::Valid(header) => {
                if self.admit(header.size()) {
                    f(header);
                }
            }
            Entry::Invalid(bad) => self.fail(&bad.error),
        }
    }

    /// Records a forbidden field; only the first one is reported.
    fn fail(&mut self, error: &HpackError) {
        if self.error.is_none() {
            self.error = Some(error.clone());
        }
    }
}

fn parse_name(raw: &[u8]) -> Result<Name, HpackError> {
    if raw.first() == Some(&b':') {
        Pseudo::from_bytes(raw)
            .map(Name::Pseudo)
            .ok_or(HpackError::UnknownPseudo)
    } else {
        // from_lowercase rejects uppercase (RFC 9113 §8.2.1) instead of folding it, and keeps
        // standard names allocation-free.
        HeaderName::from_lowercase(raw)
            .map(Name::Field)
            .map_err(|_| HpackError::InvalidName)
    }
}

/// Builds a field from its parts, copying the value out of the block.
fn make_entry(
    name: Result<Name, HpackError>,
    name_len: usize,
    value: &[u8],
    never_indexed: bool,
) -> Entry {
    let invalid = |name, error| {
        Entry::Invalid(Box::new(InvalidField {
            name,
            name_len,
            value_len: value.len(),
            error,
        }))
    };
    match name {
        Ok(Name::Pseudo(p)) => Entry::Valid(Header::Pseudo(p, Bytes::copy_from_slice(value))),
        Ok(Name::Field(name)) => match HeaderValue::from_bytes(value) {
            Ok(mut value) => {
                value.set_sensitive(never_indexed);
                Entry::Valid(Header::Field(name, value))
            }
            Err(_) => invalid(Some(Name::Field(name)), HpackError::InvalidValue),
        },
        Err(error) => invalid(None, error),
    }
}

/// Reads a §5.1 integer with an N-bit prefix (1 to 8) from the front of `src`. The flag bits
/// above the prefix are ignored. At most four continuation bytes are accepted (about 2^28):
/// nothing legitimate in HPACK is larger, and the bound keeps the arithmetic far from overflow.
pub(super) fn read_int(src: &mut &[u8], prefix_bits: u8) -> Result<usize, HpackError> {
    let mask = u8::MAX >> (8 - prefix_bits);
    let (&first, rest) = src.split_first().ok_or(HpackError::Truncated)?;
    *src = rest;
    let mut value = usize::from(first & mask);
    if value < usize::from(mask) {
        return Ok(value);
    }
    for shift in [0, 7, 14, 21] {
        let (&byte, rest) = src.split_first().ok_or(HpackError::Truncated)?;
        *src = rest;
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(HpackError::IntegerOverflow)
}

/// Reads a §5.2 string literal, Huffman-decoding it into `scratch` when flagged.
fn read_string<'r, 'b: 'r>(
    src: &mut &'b [u8],
    scratch: &'r mut Vec<u8>,
) -> Result<&'r [u8], HpackError> {
    let huffman = src.first().is_some_and(|&b| b & 0x80 != 0);
    let len = read_int(src, 7)?;
    let (raw, rest) = src.split_at_checked(len).ok_or(HpackError::Truncated)?;
    if len > MAX_STRING_LEN {
        return Err(HpackError::StringTooLong);
    }
    *src = rest;
    if huffman {
        scratch.clear();
        huffman::decode(raw, scratch)?;
        Ok(scratch)
    } else {
        Ok(raw)
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::super::tests::{decode, hex, pair, pairs};
    use super::*;

    fn decode_err(block: &[u8]) -> HpackError {
        Decoder::new(4096)
            .decode(block, usize::MAX, |_| {})
            .unwrap_err()
    }

    #[test]
    fn malformed_blocks_are_connection_errors() {
        use HpackError::*;
        let cases: &[(&[u8], HpackError)] = &[
            (&[0x80], IndexOutOfRange(0)),
            (&[0xbe], IndexOutOfRange(62)),
            (&[0x7f, 0x00, 0x00], IndexOutOfRange(63)),
            (&[0x0f, 0x30, 0x00], IndexOutOfRange(63)),
            (&[0xff], Truncated),
            (&[0xff, 0x80], Truncated),
            (&[0x40], Truncated),
            (&[0x40, 0x05, b'a', b'b'], Truncated),
            (&[0x40, 0x01, b'a'], Truncated),
            (&[0x04], Truncated),
            (&[0x04, 0x85, 0xff], Truncated),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], IntegerOverflow),
            (
                &[0xff, 0xff, 0xff, 0xff, 0x7f],
                IndexOutOfRange(127 + (1 << 28) - 1),
            ),
            (&[0x04, 0x81, 0x18], InvalidHuffman),
            (&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff], InvalidHuffman),
            (
                &[0x3f, 0xe2, 0x1f],
                TableSizeUpdateTooLarge {
                    size: 4097,
                    max: 4096,
                },
            ),
            (&[0x82, 0x20], TableSizeUpdateNotAtStart),
        ];
        for (block, want) in cases {
            let got = decode_err(block);
            assert_eq!(&got, want, "{block:02x?}");
            assert!(got.is_connection_error());
        }
        // Several size updates at the start are fine; 4096 is exactly the limit.
        let mut d = Decoder::new(4096);
        assert_eq!(
            decode(&mut d, &hex("20 3fe11f 82")).unwrap(),
            pairs(&[(":method", "GET")])
        );
        assert_eq!(d.table_size(), (0, 4096));
        // A declared length past 16 MiB, with the bytes present.
        let mut block = vec![0x04, 0x7f, 0x82, 0xff, 0xff, 0x07];
        block.resize(block.len() + (1 << 24) + 1, b'a');
        assert_eq!(decode_err(&block), StringTooLong);
    }

    #[test]
    fn forbidden_fields_are_stream_errors() {
        use HpackError::*;
        let lit = |name: &[u8], value: &[u8]| {
            let mut b = vec![0x00, name.len() as u8];
            b.extend_from_slice(name);
            b.push(value.len() as u8);
            b.extend_from_slice(value);
            b
        };
        let cases = [
            (lit(b"Foo", b"x"), InvalidName),
            (lit(b"fo o", b"x"), InvalidName),
            (lit(b"", b"x"), InvalidName),
            (lit(b":foo", b"x"), UnknownPseudo),
            (lit(b":Path", b"/"), UnknownPseudo),
            (lit(b"x", b"a\0b"), InvalidValue),
            (lit(b"x", b"a\rb"), InvalidValue),
            (lit(b"x", b"a\nb"), InvalidValue),
        ];
        for (block, want) in cases {
            let got = decode_err(&block);
            assert_eq!(got, want, "{block:02x?}");
            assert!(!got.is_connection_error());
        }
    }

    #[test]
    fn forbidden_fields_keep_the_table_in_sync() {
        let mut d = Decoder::new(4096);
        let mut calls = Vec::new();
        // "Foo: bar" (invalid, indexed), "x: y" (indexed), "v: a\0" (invalid value, indexed).
        let block = b"\x40\x03Foo\x03bar\x40\x01x\x01y\x40\x01v\x02a\x00";
        let err = d
            .decode(block, usize::MAX, |h| calls.push(pair(&h)))
            .unwrap_err();
        assert_eq!(err, HpackError::InvalidName, "the first error is reported");
        assert!(
            calls.is_empty(),
            "no field is passed on after a forbidden one"
        );
        assert_eq!(d.table_size().0, (3 + 3 + 32) + (1 + 1 + 32) + (1 + 2 + 32));
        // The entries are where the peer thinks they are.
        assert_eq!(decode(&mut d, &[0xbf]).unwrap(), pairs(&[("x", "y")]));
        assert_eq!(decode(&mut d, &[0xc0]), Err(HpackError::InvalidName));
        assert_eq!(decode(&mut d, &[0xbe]), Err(HpackError::InvalidValue));
        // A valid name from an entry whose value was invalid can be reused, and that is fine.
        assert_eq!(
            decode(&mut d, b"\x7e\x02ok").unwrap(),
            pairs(&[("v", "ok")])
        );
        assert_eq!(
            decode(&mut d, &[0xbe, 0xc0]).unwrap(),
            pairs(&[("v", "ok"), ("x", "y")])
        );
    }

    #[test]
    fn oversized_list_keeps_decoding() {
        let mut d = Decoder::new(4096);
        let big = "b".repeat(200);
        let mut block = vec![0x82, 0x40, 0x05];
        block.extend_from_slice(b"x-big");
        block.extend_from_slice(&[0x7f, 200 - 127]);
        block.extend_from_slice(big.as_bytes());
        block.push(0x84);
        let mut got = Vec::new();
        let decoded = d.decode(&block, 100, |h| got.push(pair(&h))).unwrap();
        assert!(decoded.oversized);
        assert_eq!(
            got,
            pairs(&[(":method", "GET")]),
            "fields past the limit are not passed on"
        );
        // The entry added past the limit is in the table, where the next block finds it.
        assert_eq!(d.table_size().0, 5 + 200 + 32);
        assert_eq!(decode(&mut d, &[0xbe]).unwrap(), pairs(&[("x-big", &big)]));
        // Exactly at the limit is not over it.
        let decoded = d.decode(&[0x82], 42, |_| {}).unwrap();
        assert!(!decoded.oversized);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(blocks in vec(vec(any::<u8>(), 0..96), 1..6)) {
            let mut d = Decoder::new(4096);
            for block in blocks {
                let _ = d.decode(&block, 1 << 16, |_| {});
            }
        }
    }
}
