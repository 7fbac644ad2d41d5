//! HPACK header compression for HTTP/2 (RFC 7541).
//!
//! This module owns the wire format of header blocks: the [`Decoder`] turns one complete header
//! block (HEADERS plus CONTINUATION payloads, joined by the frame layer) into [`Header`]s, and
//! the [`Encoder`] writes header blocks for the peer. Each side keeps its own dynamic table, so a
//! connection needs one `Decoder` for what the peer sends and one `Encoder` for what it sends.
//!
//! # Errors: connection versus stream
//!
//! Every [`HpackError`] but three means the compression state can no longer be trusted, and the
//! connection must end with a COMPRESSION_ERROR (RFC 9113 §4.3); see
//! [`HpackError::is_connection_error`]. The other three — [`HpackError::InvalidName`],
//! [`HpackError::UnknownPseudo`] and [`HpackError::InvalidValue`] — describe a field HTTP/2
//! forbids in a block that was otherwise well formed: the decoder finishes the block first, so
//! its dynamic table stays in step with the peer, and the caller may reset only that stream
//! (a malformed message, RFC 9113 §8.1.1).
//!
//! Layout: `table` (static table and both dynamic tables), `huffman` (string coding),
//! `decoder` and `encoder`; `tests` holds the RFC 7541 Appendix C examples.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

mod decoder;
mod encoder;
mod huffman;
mod table;
#[cfg(test)]
mod tests;

pub use decoder::Decoder;
pub use encoder::Encoder;

/// The dynamic table size both sides start with (the initial SETTINGS_HEADER_TABLE_SIZE).
pub const DEFAULT_TABLE_SIZE: usize = 4096;

/// HTTP/2 pseudo-header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pseudo {
    /// `:method`
    Method,
    /// `:scheme`
    Scheme,
    /// `:authority`
    Authority,
    /// `:path`
    Path,
    /// `:status`
    Status,
    /// `:protocol` (extended CONNECT, RFC 8441)
    Protocol,
}

impl Pseudo {
    /// The field name, colon included (`":method"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Pseudo::Method => ":method",
            Pseudo::Scheme => ":scheme",
            Pseudo::Authority => ":authority",
            Pseudo::Path => ":path",
            Pseudo::Status => ":status",
            Pseudo::Protocol => ":protocol",
        }
    }

    /// The pseudo-header with this exact name (colon included), if it is one of the six.
    pub fn from_bytes(name: &[u8]) -> Option<Pseudo> {
        Some(match name {
            b":method" => Pseudo::Method,
            b":scheme" => Pseudo::Scheme,
            b":authority" => Pseudo::Authority,
            b":path" => Pseudo::Path,
            b":status" => Pseudo::Status,
            b":protocol" => Pseudo::Protocol,
            _ => return None,
        })
    }
}

/// One decoded field. Cloning is cheap (reference counts only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// A pseudo-header; its value is not validated here (the caller knows what each must hold).
    Pseudo(Pseudo, Bytes),
    /// A regular field. A value that arrived as "never indexed" is marked sensitive, so an
    /// intermediary re-encoding it keeps that representation (RFC 7541 §7.1.3).
    Field(HeaderName, HeaderValue),
}

impl Header {
    /// RFC 7541 §4.1 size: name len + value len + 32
    pub fn size(&self) -> usize {
        self.name().len() + self.value().len() + 32
    }

    /// The field name (`":path"` for a pseudo-header).
    pub fn name(&self) -> &str {
        match self {
            Header::Pseudo(p, _) => p.as_str(),
            Header::Field(name, _) => name.as_str(),
        }
    }

    /// The field value.
    pub fn value(&self) -> &[u8] {
        match self {
            Header::Pseudo(_, value) => value,
            Header::Field(_, value) => value.as_bytes(),
        }
    }
}

/// What [`Decoder::decode`] reports about a block it decoded successfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decoded {
    /// The list passed `max_list_size`: fields past the limit were decoded
    /// (keeping the dynamic table in sync, as RFC 9113 §4.3 requires) but not passed on.
    pub oversized: bool,
}

/// Why a header block could not be decoded.
///
/// [`HpackError::is_connection_error`] tells which ones leave the decoder unusable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HpackError {
    /// An indexed name or field refers to index 0 or past the end of the dynamic table.
    #[error("HPACK index {0} is not in the static or dynamic table")]
    IndexOutOfRange(usize),
    /// An integer needs more than four continuation bytes (about 2^28), or does not fit.
    #[error("HPACK integer is too large (more than 2^28)")]
    IntegerOverflow,
    /// The block ends inside a field, an integer or a string literal.
    #[error("HPACK header block ends in the middle of a field")]
    Truncated,
    /// A Huffman-coded string has padding longer than 7 bits, padding that is not all ones,
    /// or an encoded EOS symbol (RFC 7541 §5.2).
    #[error("HPACK string has invalid Huffman coding (bad padding or an EOS symbol)")]
    InvalidHuffman,
    /// A string literal is longer than 16 MiB, far past any sane header list.
    #[error("HPACK string literal is longer than 16 MiB")]
    StringTooLong,
    /// A dynamic table size update asks for more than the SETTINGS_HEADER_TABLE_SIZE we sent.
    #[error("HPACK dynamic table size update to {size} bytes exceeds the advertised limit of {max} bytes")]
    TableSizeUpdateTooLarge {
        /// The size the peer asked for.
        size: usize,
        /// Our advertised limit.
        max: usize,
    },
    /// A dynamic table size update comes after a field of the block (RFC 7541 §4.2).
    #[error("HPACK dynamic table size update comes after a header field in the block")]
    TableSizeUpdateNotAtStart,
    /// A field name has an uppercase letter or a byte not allowed in a field name
    /// (RFC 9113 §8.2.1), or is empty. Stream-level: the table is still in sync.
    #[error("header field name is not a valid lowercase HTTP/2 field name")]
    InvalidName,
    /// A field name starts with ':' but is not one of the six pseudo-headers. Stream-level.
    #[error("header field name starts with ':' but is not a known pseudo-header")]
    UnknownPseudo,
    /// A field value has a byte `HeaderValue` rejects: NUL, CR, LF, another control character
    /// than tab, or DEL. Stream-level.
    #[error(
        "header field value contains a forbidden byte (a control character such as NUL, CR or LF)"
    )]
    InvalidValue,
}

impl HpackError {
    /// True when the connection must be closed with COMPRESSION_ERROR: the decoder's state is
    /// lost. False for the three field errors, after which the decoder is still usable and only
    /// the stream that carried the block is malformed.
    pub fn is_connection_error(&self) -> bool {
        !matches!(
            self,
            HpackError::InvalidName | HpackError::UnknownPseudo | HpackError::InvalidValue
        )
    }
}
