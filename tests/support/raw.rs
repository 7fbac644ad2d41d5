//! A raw HTTP/2 client for tests that need frames no well-behaved client sends:
//! malformed heads, split header blocks, tiny windows, floods. Frames are written
//! by hand (with gantry's frame writers and HPACK encoder) and read back one at a
//! time, so a test can assert exactly what the router answered.

use std::time::Duration;

use bytes::{Buf, BytesMut};
use gantry::http2::frame::{self, flag, kind, Head, Reason, HEAD_LEN};
use gantry::http2::hpack::{Decoder, Encoder, Header, Pseudo};
use http::{HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::DEADLINE;

/// A frame as read from the router.
#[derive(Debug)]
pub enum Got {
    Headers {
        stream: u32,
        end: bool,
        fields: Vec<(String, String)>,
    },
    Data {
        stream: u32,
        len: usize,
        end: bool,
        payload: Vec<u8>,
    },
    Reset {
        stream: u32,
        reason: Reason,
    },
    GoAway {
        last_stream: u32,
        reason: Reason,
        debug: String,
    },
    Settings {
        ack: bool,
    },
    Ping {
        ack: bool,
        payload: [u8; 8],
    },
    WindowUpdate {
        stream: u32,
        increment: u32,
    },
    Other(u8),
}

/// A connection a raw client speaks over: TCP (h2c) or TLS (h2 by ALPN).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Raw {
    stream: Box<dyn Io>,
    rbuf: BytesMut,
    pub encoder: Encoder,
    decoder: Decoder,
}

impl Raw {
    /// Connects and sends the preface with `settings` (id, value).
    pub async fn connect(addr: std::net::SocketAddr, settings: &[(u16, u32)]) -> Raw {
        let mut raw = Raw::bare(addr).await;
        raw.preface(settings).await;
        raw
    }

    /// A TCP connection with nothing sent yet (for tests of the preface itself).
    pub async fn bare(addr: std::net::SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.expect("connect");
        // Frames go out as written (no Nagle wait behind a small one).
        stream.set_nodelay(true).expect("nodelay");
        Raw::over(Box::new(stream))
    }

    /// A raw client over `stream` (a TLS stream that agreed on h2, say), with
    /// nothing sent yet.
    pub fn over(stream: Box<dyn Io>) -> Raw {
        Raw {
            stream,
            rbuf: BytesMut::new(),
            encoder: Encoder::new(),
            decoder: Decoder::new(4096),
        }
    }

    /// Sends the connection preface and SETTINGS with `settings` (id, value).
    pub async fn preface(&mut self, settings: &[(u16, u32)]) {
        let mut out = frame::PREFACE.to_vec();
        frame::put_settings(&mut out, settings);
        self.send(&out).await;
    }

    /// Sends SETTINGS (not the first: see [`Raw::preface`]).
    pub async fn settings(&mut self, settings: &[(u16, u32)]) {
        let mut out = Vec::new();
        frame::put_settings(&mut out, settings);
        self.send(&out).await;
    }

    /// Acknowledges the router's SETTINGS.
    pub async fn settings_ack(&mut self) {
        let mut out = Vec::new();
        frame::put_settings_ack(&mut out);
        self.send(&out).await;
    }

    pub async fn rst(&mut self, stream: u32, reason: Reason) {
        let mut out = Vec::new();
        frame::put_rst(&mut out, stream, reason);
        self.send(&out).await;
    }

    pub async fn ping_ack(&mut self, payload: [u8; 8]) {
        let mut out = Vec::new();
        frame::put_ping(&mut out, true, payload);
        self.send(&out).await;
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// A header block for a gRPC call of Echo's `method`, plus `extra` fields.
    pub fn grpc_block(&mut self, method: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        self.grpc_block_for(&format!("/gantry.test.Echo/{method}"), extra)
    }

    /// A header block for a gRPC call to `path`, plus `extra` fields.
    pub fn grpc_block_for(&mut self, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        let e = &mut self.encoder;
        e.start_block(&mut b);
        e.encode_pseudo(Pseudo::Method, b"POST", &mut b);
        e.encode_pseudo(Pseudo::Scheme, b"http", &mut b);
        e.encode_pseudo(Pseudo::Authority, b"gantry.test", &mut b);
        e.encode_pseudo(Pseudo::Path, path.as_bytes(), &mut b);
        e.encode_field(
            &http::header::CONTENT_TYPE,
            &HeaderValue::from_static("application/grpc"),
            &mut b,
        );
        e.encode_field(
            &http::header::TE,
            &HeaderValue::from_static("trailers"),
            &mut b,
        );
        for (n, v) in extra {
            let name = HeaderName::from_bytes(n.as_bytes()).expect("name");
            let value = HeaderValue::from_str(v).expect("value");
            e.encode_field(&name, &value, &mut b);
        }
        b
    }

    /// A header block of regular fields only (trailers).
    pub fn trailers_block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        self.encoder.start_block(&mut b);
        for (n, v) in fields {
            let name = HeaderName::from_bytes(n.as_bytes()).expect("name");
            let value = HeaderValue::from_str(v).expect("value");
            self.encoder.encode_field(&name, &value, &mut b);
        }
        b
    }

    /// HEADERS carrying a whole block.
    pub async fn headers(&mut self, stream: u32, block: &[u8], end: bool) {
        let mut out = Vec::new();
        let flags = flag::END_HEADERS | if end { flag::END_STREAM } else { 0 };
        frame::put_head(&mut out, block.len(), kind::HEADERS, flags, stream);
        out.extend_from_slice(block);
        self.send(&out).await;
    }

    pub async fn data(&mut self, stream: u32, data: &[u8], end: bool) {
        let mut out = Vec::new();
        frame::put_data(&mut out, stream, data, end);
        self.send(&out).await;
    }

    pub async fn window_update(&mut self, stream: u32, increment: u32) {
        let mut out = Vec::new();
        frame::put_window_update(&mut out, stream, increment);
        self.send(&out).await;
    }

    /// Reads one call's answer on `stream` to its end: head, data bytes, trailers
    /// (a reset, a GOAWAY or a close first fails the test; so does a DATA frame
    /// ending the stream, as a gRPC answer ends with trailers).
    pub async fn answer(
        &mut self,
        stream: u32,
    ) -> (Vec<(String, String)>, usize, Vec<(String, String)>) {
        let mut head = None;
        let mut data = 0;
        loop {
            match self.next().await {
                Some(Got::Headers {
                    stream: s,
                    end,
                    fields,
                }) if s == stream => {
                    if head.is_none() && !end {
                        head = Some(fields);
                    } else {
                        return (head.unwrap_or_default(), data, fields);
                    }
                }
                Some(Got::Data {
                    stream: s,
                    len,
                    end,
                    ..
                }) if s == stream => {
                    data += len;
                    assert!(!end, "a gRPC answer ends with trailers, not DATA");
                }
                Some(Got::Reset { stream: s, reason }) if s == stream => {
                    panic!("stream {stream} was reset: {reason}")
                }
                Some(Got::GoAway { reason, debug, .. }) => panic!("GOAWAY {reason}: {debug}"),
                Some(_) => {}
                None => panic!("connection closed before stream {stream} was answered"),
            }
        }
    }

    /// The next frame, within the test deadline; `None` once the router closed.
    pub async fn next(&mut self) -> Option<Got> {
        match tokio::time::timeout(DEADLINE, self.read_frame()).await {
            Ok(f) => f,
            Err(_) => panic!("no frame from the router within {DEADLINE:?}"),
        }
    }

    /// Frames until one matches, skipping the rest (SETTINGS, WINDOW_UPDATE…).
    pub async fn until(&mut self, what: &str, mut f: impl FnMut(&Got) -> bool) -> Got {
        loop {
            match self.next().await {
                Some(got) if f(&got) => return got,
                Some(_) => {}
                None => panic!("the router closed the connection before {what}"),
            }
        }
    }

    /// Whether the router closes the connection within `wait` (reading on).
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let until = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(until, self.read_frame()).await {
                Ok(None) => return true,
                Ok(Some(_)) => {}
                Err(_) => return false,
            }
        }
    }

    async fn read_frame(&mut self) -> Option<Got> {
        loop {
            if self.rbuf.len() >= HEAD_LEN {
                let mut h = [0u8; HEAD_LEN];
                h.copy_from_slice(&self.rbuf[..HEAD_LEN]);
                let head = Head::parse(&h);
                if self.rbuf.len() >= HEAD_LEN + head.len {
                    self.rbuf.advance(HEAD_LEN);
                    let payload = self.rbuf.split_to(head.len);
                    return Some(self.got(head, &payload));
                }
            }
            match self.stream.read_buf(&mut self.rbuf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    fn got(&mut self, head: Head, payload: &[u8]) -> Got {
        match head.kind {
            kind::HEADERS => {
                let mut fields = Vec::new();
                self.decoder
                    .decode(payload, usize::MAX, |h| {
                        let (n, v) = match h {
                            Header::Pseudo(p, v) => (p.as_str().to_string(), v.to_vec()),
                            Header::Field(n, v) => (n.as_str().to_string(), v.as_bytes().to_vec()),
                        };
                        fields.push((n, String::from_utf8_lossy(&v).into_owned()));
                    })
                    .expect("the router's header block decodes");
                Got::Headers {
                    stream: head.stream,
                    end: head.has(flag::END_STREAM),
                    fields,
                }
            }
            kind::DATA => Got::Data {
                stream: head.stream,
                len: payload.len(),
                end: head.has(flag::END_STREAM),
                payload: payload.to_vec(),
            },
            kind::RST_STREAM => Got::Reset {
                stream: head.stream,
                reason: Reason(frame::read_u32(payload)),
            },
            kind::GOAWAY => Got::GoAway {
                last_stream: frame::read_u31(payload),
                reason: Reason(frame::read_u32(&payload[4..])),
                debug: String::from_utf8_lossy(&payload[8..]).into_owned(),
            },
            kind::SETTINGS => Got::Settings {
                ack: head.has(flag::ACK),
            },
            kind::PING => Got::Ping {
                ack: head.has(flag::ACK),
                payload: payload.try_into().unwrap_or_default(),
            },
            kind::WINDOW_UPDATE => Got::WindowUpdate {
                stream: head.stream,
                increment: frame::read_u31(payload),
            },
            other => Got::Other(other),
        }
    }
}

/// One gRPC message: the 5-byte prefix and an `EchoRequest` with `payload` and
/// `reply_size` (fields 1 and 5).
pub fn echo_message(payload: &[u8], reply_size: u32) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.push(0x0a);
    varint(&mut msg, payload.len() as u64);
    msg.extend_from_slice(payload);
    if reply_size > 0 {
        msg.push(0x28);
        varint(&mut msg, u64::from(reply_size));
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

fn varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// A field's value among `fields`.
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
