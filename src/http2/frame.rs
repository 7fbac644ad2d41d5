//! HTTP/2 frames (RFC 9113 §4 and §6): the 9-byte frame header, the frame types
//! gantry reads, and writers that append frames to a connection's output buffer.
//!
//! Reading is split in two: [`Head::parse`] reads a frame header, and
//! [`crate::http2::wire`] checks each frame against the connection's settings and
//! state. Writers append straight into the output `Vec`, so a round of frames
//! costs one buffer and one write.

use std::fmt;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const HEAD_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial (and smallest) value.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16_384;
/// SETTINGS_MAX_FRAME_SIZE's largest allowed value.
pub const MAX_MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The initial flow-control window of a stream and of a connection.
pub const DEFAULT_WINDOW: u32 = 65_535;
/// Largest flow-control window (RFC 9113 §6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;

/// Frame types (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags; which ones a frame may carry depends on its type.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (RFC 9113 §6.5.2, RFC 8441).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// An HTTP/2 error code (RFC 9113 §7), as carried by RST_STREAM and GOAWAY.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const SETTINGS_TIMEOUT: Reason = Reason(0x4);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const CONNECT_ERROR: Reason = Reason(0xa);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
    pub const INADEQUATE_SECURITY: Reason = Reason(0xc);
    pub const HTTP_1_1_REQUIRED: Reason = Reason(0xd);

    /// The code's name in RFC 9113, or `None` for codes it does not define.
    pub fn name(self) -> Option<&'static str> {
        const NAMES: [&str; 14] = [
            "NO_ERROR",
            "PROTOCOL_ERROR",
            "INTERNAL_ERROR",
            "FLOW_CONTROL_ERROR",
            "SETTINGS_TIMEOUT",
            "STREAM_CLOSED",
            "FRAME_SIZE_ERROR",
            "REFUSED_STREAM",
            "CANCEL",
            "COMPRESSION_ERROR",
            "CONNECT_ERROR",
            "ENHANCE_YOUR_CALM",
            "INADEQUATE_SECURITY",
            "HTTP_1_1_REQUIRED",
        ];
        NAMES.get(self.0 as usize).copied()
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "unknown error code {:#x}", self.0),
        }
    }
}

/// A frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    /// Stream identifier (the reserved bit cleared).
    pub stream: u32,
}

impl Head {
    pub fn parse(b: &[u8; HEAD_LEN]) -> Head {
        Head {
            len: (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & MAX_WINDOW,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Reads a big-endian u32 with the reserved top bit cleared (stream ids, window
/// increments); `b` has at least four bytes.
pub fn read_u31(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]) & MAX_WINDOW,
        _ => 0,
    }
}

/// Reads a big-endian u32; `b` has at least four bytes.
pub fn read_u32(b: &[u8]) -> u32 {
    match b {
        [a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// Appends a frame header.
pub fn put_head(dst: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = len as u32;
    dst.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    dst.extend_from_slice(&(stream & MAX_WINDOW).to_be_bytes());
}

/// Appends one DATA frame; `data` fits the peer's frame size.
pub fn put_data(dst: &mut Vec<u8>, stream: u32, data: &[u8], end: bool) {
    let flags = if end { flag::END_STREAM } else { 0 };
    put_head(dst, data.len(), kind::DATA, flags, stream);
    dst.extend_from_slice(data);
}

pub fn put_rst(dst: &mut Vec<u8>, stream: u32, reason: Reason) {
    put_head(dst, 4, kind::RST_STREAM, 0, stream);
    dst.extend_from_slice(&reason.0.to_be_bytes());
}

pub fn put_window_update(dst: &mut Vec<u8>, stream: u32, increment: u32) {
    put_head(dst, 4, kind::WINDOW_UPDATE, 0, stream);
    dst.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

pub fn put_ping(dst: &mut Vec<u8>, ack: bool, payload: [u8; 8]) {
    put_head(dst, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
    dst.extend_from_slice(&payload);
}

pub fn put_goaway(dst: &mut Vec<u8>, last_stream: u32, reason: Reason, debug: &[u8]) {
    put_head(dst, 8 + debug.len(), kind::GOAWAY, 0, 0);
    dst.extend_from_slice(&(last_stream & MAX_WINDOW).to_be_bytes());
    dst.extend_from_slice(&reason.0.to_be_bytes());
    dst.extend_from_slice(debug);
}

pub fn put_settings(dst: &mut Vec<u8>, settings: &[(u16, u32)]) {
    put_head(dst, settings.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in settings {
        dst.extend_from_slice(&id.to_be_bytes());
        dst.extend_from_slice(&value.to_be_bytes());
    }
}

pub fn put_settings_ack(dst: &mut Vec<u8>) {
    put_head(dst, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends a header block as a HEADERS frame (and CONTINUATION frames when the
/// block is bigger than `max_frame`): `encode` writes the block itself.
pub fn put_headers(
    dst: &mut Vec<u8>,
    stream: u32,
    end_stream: bool,
    max_frame: usize,
    encode: impl FnOnce(&mut Vec<u8>),
) {
    let start = dst.len();
    put_head(dst, 0, kind::HEADERS, 0, stream);
    encode(dst);
    let block = dst.len() - start - HEAD_LEN;
    let end = if end_stream { flag::END_STREAM } else { 0 };
    if block <= max_frame {
        set_len(dst, start, block, end | flag::END_HEADERS);
        return;
    }
    // Rare: a block bigger than a frame. The tail moves out and comes back in
    // CONTINUATION frames.
    let tail = dst.split_off(start + HEAD_LEN + max_frame);
    set_len(dst, start, max_frame, end);
    let mut chunks = tail.chunks(max_frame.max(1)).peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let flags = if last { flag::END_HEADERS } else { 0 };
        put_head(dst, chunk.len(), kind::CONTINUATION, flags, stream);
        dst.extend_from_slice(chunk);
    }
}

fn set_len(dst: &mut [u8], start: usize, len: usize, flags: u8) {
    let len = len as u32;
    dst[start] = (len >> 16) as u8;
    dst[start + 1] = (len >> 8) as u8;
    dst[start + 2] = len as u8;
    dst[start + 4] = flags;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_round_trip() {
        let mut out = Vec::new();
        put_head(
            &mut out,
            0x12345,
            kind::HEADERS,
            flag::END_HEADERS,
            0x8000_0007,
        );
        assert_eq!(out.len(), HEAD_LEN);
        let mut h = [0u8; HEAD_LEN];
        h.copy_from_slice(&out);
        let head = Head::parse(&h);
        assert_eq!(head.len, 0x12345);
        assert_eq!(head.kind, kind::HEADERS);
        assert!(head.has(flag::END_HEADERS));
        // The reserved bit is never sent and ignored on receipt.
        assert_eq!(head.stream, 7);
    }

    #[test]
    fn a_big_header_block_is_split_into_continuations() {
        let mut out = Vec::new();
        put_headers(&mut out, 3, true, 10, |b| b.extend_from_slice(&[1u8; 25]));
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let mut h = [0u8; HEAD_LEN];
            h.copy_from_slice(&rest[..HEAD_LEN]);
            let head = Head::parse(&h);
            frames.push(head);
            rest = &rest[HEAD_LEN + head.len..];
        }
        let lens: Vec<usize> = frames.iter().map(|f| f.len).collect();
        assert_eq!(lens, vec![10, 10, 5]);
        assert_eq!(frames[0].kind, kind::HEADERS);
        assert!(frames[0].has(flag::END_STREAM));
        assert!(!frames[0].has(flag::END_HEADERS));
        assert_eq!(frames[1].kind, kind::CONTINUATION);
        assert!(!frames[1].has(flag::END_HEADERS));
        assert!(frames[2].has(flag::END_HEADERS));
        assert!(frames.iter().all(|f| f.stream == 3));
    }

    #[test]
    fn a_small_block_is_one_frame() {
        let mut out = Vec::new();
        put_headers(&mut out, 1, false, 16_384, |b| b.extend_from_slice(b"abc"));
        assert_eq!(&out[..5], &[0, 0, 3, kind::HEADERS, flag::END_HEADERS]);
        assert_eq!(&out[HEAD_LEN..], b"abc");
    }

    #[test]
    fn reasons_have_names() {
        assert_eq!(Reason::ENHANCE_YOUR_CALM.to_string(), "ENHANCE_YOUR_CALM");
        assert_eq!(Reason(0x99).to_string(), "unknown error code 0x99");
    }
}
