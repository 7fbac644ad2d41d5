//! gantry's HTTP/2 per-call work, without sockets:
//!
//! - `hpack/decode_request`, `hpack/encode_request`: a gRPC request head of eight
//!   fields (what tonic clients send), after the first block (the dynamic table
//!   holds it);
//! - `hpack/decode_response`, `hpack/encode_trailers`: a tonic answer's head and
//!   its `grpc-status: 0` trailers;
//! - `wire/unary_frames`: one unary call's frames as a server reads them (HEADERS
//!   and DATA cut from a read buffer, the head checked and turned into a request)
//!   and writes its answer (HEADERS, DATA, trailers).
//!
//! Run with `cargo bench --bench http2`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gantry::http2::frame::{self, setting};
use gantry::http2::head;
use gantry::http2::hpack::{Decoder, Encoder};
use gantry::http2::wire::{Frame, Limits, Wire};
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};

fn request() -> Request<()> {
    let mut req = Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:8000/gantry.test.Echo/Unary")
        .body(())
        .unwrap_or_default();
    let h = req.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert("te", HeaderValue::from_static("trailers"));
    h.insert("user-agent", HeaderValue::from_static("grpc-rust/0.14"));
    h.insert("grpc-timeout", HeaderValue::from_static("1S"));
    h.insert(
        HeaderName::from_static("grpc-accept-encoding"),
        HeaderValue::from_static("identity"),
    );
    req
}

fn response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/grpc"));
    h.insert(
        "date",
        HeaderValue::from_static("Tue, 01 Dec 2026 20:00:00 GMT"),
    );
    h
}

fn trailers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from_static("0"));
    h
}

fn block(enc: &mut Encoder, f: impl Fn(&mut Encoder, &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    enc.start_block(&mut out);
    f(enc, &mut out);
    out
}

fn hpack(c: &mut Criterion) {
    let req = request();
    let mut g = c.benchmark_group("hpack");

    let mut enc = Encoder::new();
    let mut out = Vec::with_capacity(256);
    g.bench_function("encode_request", |b| {
        b.iter(|| {
            out.clear();
            enc.start_block(&mut out);
            head::encode_request(&mut enc, black_box(&req), &mut out);
            black_box(out.len())
        })
    });

    let mut enc = Encoder::new();
    let first = block(&mut enc, |e, o| head::encode_request(e, &req, o));
    let again = block(&mut enc, |e, o| head::encode_request(e, &req, o));
    let mut dec = Decoder::new(4096);
    head::decode_request(&mut dec, &first, 1 << 16).ok();
    g.bench_function("decode_request", |b| {
        b.iter(|| black_box(head::decode_request(&mut dec, black_box(&again), 1 << 16).is_ok()))
    });

    let res = response_headers();
    let mut enc = Encoder::new();
    let first = block(&mut enc, |e, o| {
        head::encode_response(e, StatusCode::OK, &res, o)
    });
    let again = block(&mut enc, |e, o| {
        head::encode_response(e, StatusCode::OK, &res, o)
    });
    let mut dec = Decoder::new(4096);
    head::decode_response(&mut dec, &first, 1 << 16).ok();
    g.bench_function("decode_response", |b| {
        b.iter(|| black_box(head::decode_response(&mut dec, black_box(&again), 1 << 16).is_ok()))
    });

    let t = trailers();
    let mut enc = Encoder::new();
    g.bench_function("encode_trailers", |b| {
        b.iter(|| {
            out.clear();
            enc.start_block(&mut out);
            head::encode_fields(&mut enc, black_box(&t), &mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

/// One call's frames read and answered by a server-side `Wire`.
fn wire(c: &mut Criterion) {
    let req = request();
    let res = response_headers();
    let t = trailers();
    let message = [
        0u8, 0, 0, 0, 12, 0x0a, 10, b'0', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'9',
    ];

    let mut server = Wire::server(Limits::default());
    let mut client_enc = Encoder::new();
    let mut preface = frame::PREFACE.to_vec();
    frame::put_settings(&mut preface, &[(setting::INITIAL_WINDOW_SIZE, 1 << 20)]);
    server.feed(&preface);
    while let Ok(Some(_)) = server.next_frame() {}

    let mut stream = 1u32;
    let mut input = Vec::with_capacity(512);
    c.bench_function("wire/unary_frames", |b| {
        b.iter(|| {
            input.clear();
            let max = 16_384;
            frame::put_headers(&mut input, stream, false, max, |dst| {
                client_enc.start_block(dst);
                head::encode_request(&mut client_enc, &req, dst);
            });
            frame::put_data(&mut input, stream, &message, true);
            server.feed(&input);
            let mut got = 0;
            while let Ok(Some(f)) = server.next_frame() {
                match f {
                    Frame::Headers { block, .. } => {
                        let r = head::decode_request(&mut server.decoder, &block, 1 << 16);
                        got += usize::from(r.is_ok());
                    }
                    Frame::Data { data, flow, .. } => {
                        got += data.len();
                        server.release(flow);
                    }
                    _ => {}
                }
            }
            server.headers(stream, false, |e, d| {
                head::encode_response(e, StatusCode::OK, &res, d)
            });
            server.data(stream, &message, false);
            server.headers(stream, true, |e, d| head::encode_fields(e, &t, d));
            server.discard_output();
            stream += 2;
            black_box(got)
        })
    });
}

criterion_group!(benches, hpack, wire);
criterion_main!(benches);
