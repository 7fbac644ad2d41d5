//! Bytes from the network → `Wire::next_frame` (server or client side), header blocks
//! on to `head::decode_request`/`decode_response`/`decode_trailers`: never a panic.
//! The same bytes fed in small pieces give the same frames as fed at once (a frame
//! split across reads waits for the rest), and every head that decodes is encoded
//! again and decodes to the same head (through a second encoder/decoder pair).
//!
//! Input: one mode byte (bit 0: client side; bit 1: no preface and SETTINGS
//! prepended; bits 2-7: the piece size), then the bytes the peer sends.
#![no_main]

use gantry::http2::frame;
use gantry::http2::head;
use gantry::http2::hpack::{Decoder, Encoder};
use gantry::http2::wire::{Budget, ConnError, Frame, Limits, Wire};
use http::{header, HeaderMap, Method, Request, Response};
use libfuzzer_sys::fuzz_target;

/// Everything the reader saw: one line per frame, then how it ended.
fn read(client: bool, input: &[u8], piece: usize) -> Vec<String> {
    // Budgets that never refill, so both reads spend them alike whatever the clock.
    let budget = Budget {
        per_second: 0,
        burst: 64,
    };
    let limits = Limits {
        max_header_list_size: 16 << 10,
        resets: budget,
        control: budget,
        ..Limits::default()
    };
    let mut wire = if client {
        Wire::client(limits)
    } else {
        Wire::server(limits)
    };
    let mut mirror = Mirror {
        encoder: Encoder::new(),
        decoder: Decoder::new(4096),
    };
    let mut seen = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        wire.rbuf.extend_from_slice(chunk);
        let _ = wire.head_pending();
        loop {
            match wire.next_frame() {
                Ok(Some(frame)) => match handle(&mut wire, &mut mirror, client, frame) {
                    Ok(line) => seen.push(line),
                    Err(e) => {
                        seen.push(format!("error {e}"));
                        return seen;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    seen.push(format!("error {e}"));
                    return seen;
                }
            }
            // The owner writes out what the wire queued; here it is dropped.
            wire.discard_output();
        }
    }
    seen.push(format!("waiting with {} bytes", wire.rbuf.len()));
    seen
}

/// Does what a connection's owner would with `frame`; describes it.
fn handle(
    wire: &mut Wire,
    mirror: &mut Mirror,
    client: bool,
    frame: Frame,
) -> Result<String, ConnError> {
    let max = wire.limits.max_header_list_size as usize;
    Ok(match frame {
        Frame::Data { flow, .. } => {
            wire.release(flow);
            format!("{frame:?}")
        }
        Frame::Headers {
            stream,
            end,
            ref block,
        } => {
            let decoded = if client {
                head::decode_response(&mut wire.decoder, block, max).map(|r| {
                    mirror.response(&r);
                    format!("{r:?}")
                })
            } else if end && stream % 4 == 3 {
                // Some blocks are read as trailers, as a server would a call's last.
                head::decode_trailers(&mut wire.decoder, block, max).map(|t| format!("{t:?}"))
            } else {
                head::decode_request(&mut wire.decoder, block, max).map(|r| {
                    mirror.request(&r);
                    format!("{r:?}")
                })
            };
            match &decoded {
                // The owner resets the stream, which counts against the peer.
                Err(head::HeadError::Malformed(_)) => wire.peer_fault()?,
                Ok(_) if end => wire.call_completed(),
                _ => {}
            }
            format!("headers {stream} end={end}: {decoded:?}")
        }
        Frame::WindowUpdate { stream, increment } => {
            let mut window = i64::from(frame::DEFAULT_WINDOW);
            let ok = gantry::http2::wire::grow_window(&mut window, increment);
            format!("window {stream} +{increment} ok={ok}")
        }
        Frame::StreamError { stream, reason } => {
            frame::put_rst(&mut wire.wbuf, stream, reason);
            format!("{frame:?}")
        }
        other => format!("{other:?}"),
    })
}

/// A second HPACK pair: heads gantry decoded are encoded again and must decode alike.
struct Mirror {
    encoder: Encoder,
    decoder: Decoder,
}

/// The fields `head::encode_fields` passes on.
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.remove(header::HOST);
    h
}

impl Mirror {
    fn request(&mut self, req: &Request<()>) {
        if req.method() == Method::CONNECT {
            return; // Written with :scheme and :path, which CONNECT may not have.
        }
        let mut block = Vec::new();
        self.encoder.start_block(&mut block);
        head::encode_request(&mut self.encoder, req, &mut block);
        match head::decode_request(&mut self.decoder, &block, usize::MAX) {
            Ok(again) => {
                assert_eq!(again.method(), req.method());
                assert_eq!(again.uri(), req.uri());
                assert_eq!(again.headers(), &forwarded(req.headers()));
            }
            Err(e) => panic!("{req:?} encoded does not decode: {e}"),
        }
    }

    fn response(&mut self, res: &Response<()>) {
        let mut block = Vec::new();
        self.encoder.start_block(&mut block);
        head::encode_response(&mut self.encoder, res.status(), res.headers(), &mut block);
        match head::decode_response(&mut self.decoder, &block, usize::MAX) {
            Ok(again) => {
                assert_eq!(again.status(), res.status());
                assert_eq!(again.headers(), &forwarded(res.headers()));
            }
            Err(e) => panic!("{res:?} encoded does not decode: {e}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let client = mode & 1 != 0;
    let mut input = Vec::with_capacity(rest.len() + 40);
    if mode & 2 == 0 {
        if !client {
            input.extend_from_slice(frame::PREFACE);
        }
        frame::put_settings(&mut input, &[]);
    }
    input.extend_from_slice(rest);
    let piece = usize::from(mode >> 2) + 1;
    let whole = read(client, &input, input.len());
    let pieces = read(client, &input, piece);
    assert_eq!(
        whole, pieces,
        "feeding in pieces of {piece} changed what was read"
    );
});
