//! Request and response heads to and from HPACK header blocks, with the rules RFC
//! 9113 §8 sets for them: pseudo-headers first, once each, the ones a request or a
//! response needs; no connection-specific fields; `te` only as `trailers`.
//!
//! A malformed head is a stream error (the stream is reset, the connection goes
//! on); only a block HPACK cannot decode breaks the connection, because the
//! compression context is then lost.

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, TE, TRANSFER_ENCODING, UPGRADE,
};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};

use super::hpack::{Decoder, Encoder, Header, HpackError, Pseudo};

/// Why a head could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HeadError {
    /// HPACK failed: the connection's compression context is lost (COMPRESSION_ERROR).
    #[error("header block: {0}")]
    Compression(HpackError),
    /// The head breaks RFC 9113 §8 (the stream is reset with PROTOCOL_ERROR).
    #[error("malformed header block: {0}")]
    Malformed(&'static str),
    /// The header list is bigger than SETTINGS_MAX_HEADER_LIST_SIZE.
    #[error("the header list is bigger than {0} bytes")]
    TooLarge(usize),
}

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The fields of a block, checked as they come.
struct Fields {
    headers: HeaderMap,
    method: Option<Bytes>,
    scheme: Option<Bytes>,
    authority: Option<Bytes>,
    path: Option<Bytes>,
    status: Option<Bytes>,
    seen_regular: bool,
    error: Option<&'static str>,
}

impl Fields {
    fn new(capacity: usize) -> Fields {
        Fields {
            // Room for what a proxy adds (X-Forwarded-*) without growing.
            headers: HeaderMap::with_capacity(capacity),
            method: None,
            scheme: None,
            authority: None,
            path: None,
            status: None,
            seen_regular: false,
            error: None,
        }
    }

    fn add(&mut self, h: Header) {
        if self.error.is_some() {
            return;
        }
        match h {
            Header::Pseudo(p, v) => {
                if self.seen_regular {
                    self.error = Some("a pseudo-header after a regular field");
                    return;
                }
                let slot = match p {
                    Pseudo::Method => &mut self.method,
                    Pseudo::Scheme => &mut self.scheme,
                    Pseudo::Authority => &mut self.authority,
                    Pseudo::Path => &mut self.path,
                    Pseudo::Status => &mut self.status,
                    Pseudo::Protocol => {
                        self.error = Some(":protocol (extended CONNECT) is not supported");
                        return;
                    }
                };
                if slot.is_some() {
                    self.error = Some("a repeated pseudo-header");
                    return;
                }
                *slot = Some(v);
            }
            Header::Field(name, value) => {
                self.seen_regular = true;
                if name == CONNECTION
                    || name == TRANSFER_ENCODING
                    || name == UPGRADE
                    || name == KEEP_ALIVE
                    || name == PROXY_CONNECTION
                {
                    self.error = Some("a connection-specific field");
                    return;
                }
                if name == TE && value.as_bytes() != b"trailers" {
                    self.error = Some("te other than \"trailers\"");
                    return;
                }
                self.headers.append(name, value);
            }
        }
    }
}

fn decode(
    decoder: &mut Decoder,
    block: &[u8],
    max_list: usize,
    capacity: usize,
) -> Result<Fields, HeadError> {
    let mut fields = Fields::new(capacity);
    let decoded = decoder
        .decode(block, max_list, |h| fields.add(h))
        .map_err(classify)?;
    if decoded.oversized {
        return Err(HeadError::TooLarge(max_list));
    }
    if let Some(e) = fields.error {
        return Err(HeadError::Malformed(e));
    }
    Ok(fields)
}

/// Names and values HPACK decoded whole but HTTP does not allow break one stream;
/// anything else breaks the compression context.
fn classify(e: HpackError) -> HeadError {
    match e {
        HpackError::InvalidName => HeadError::Malformed("an invalid field name"),
        HpackError::UnknownPseudo => HeadError::Malformed("an unknown pseudo-header"),
        HpackError::InvalidValue => HeadError::Malformed("a forbidden byte in a field value"),
        e => HeadError::Compression(e),
    }
}

/// The `content-length` a head declares, if any (RFC 9110 §8.6): the DATA of its
/// stream must add up to it (RFC 9113 §8.1.1). Several equal values are one; a
/// value that is not a number, or differing values, make the head malformed.
pub fn content_length(headers: &http::HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut found = None;
    for v in headers.get_all(http::header::CONTENT_LENGTH) {
        for part in v.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
                return Err("an invalid content-length");
            }
            let n = part.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
            if found.is_some_and(|f| f != n) {
                return Err("differing content-length values");
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Reads a request head (a server reading its client's HEADERS).
pub fn decode_request(
    decoder: &mut Decoder,
    block: &[u8],
    max_list: usize,
) -> Result<Request<()>, HeadError> {
    let f = decode(decoder, block, max_list, 16)?;
    if f.status.is_some() {
        return Err(HeadError::Malformed(":status in a request"));
    }
    let method = f.method.ok_or(HeadError::Malformed("no :method"))?;
    let method =
        Method::from_bytes(&method).map_err(|_| HeadError::Malformed("an invalid :method"))?;
    let mut parts = http::uri::Parts::default();
    if method == Method::CONNECT {
        if f.scheme.is_some() || f.path.is_some() {
            return Err(HeadError::Malformed("CONNECT with :scheme or :path"));
        }
    } else {
        let scheme = f.scheme.ok_or(HeadError::Malformed("no :scheme"))?;
        parts.scheme = Some(match &scheme[..] {
            b"http" => Scheme::HTTP,
            b"https" => Scheme::HTTPS,
            other => {
                Scheme::try_from(other).map_err(|_| HeadError::Malformed("an invalid :scheme"))?
            }
        });
        let path = f.path.ok_or(HeadError::Malformed("no :path"))?;
        if path.is_empty() {
            return Err(HeadError::Malformed("an empty :path"));
        }
        parts.path_and_query = Some(
            PathAndQuery::from_maybe_shared(path)
                .map_err(|_| HeadError::Malformed("an invalid :path"))?,
        );
    }
    if let Some(a) = f.authority {
        parts.authority = Some(
            Authority::from_maybe_shared(a)
                .map_err(|_| HeadError::Malformed("an invalid :authority"))?,
        );
    } else if method == Method::CONNECT {
        return Err(HeadError::Malformed("CONNECT without :authority"));
    }
    let uri =
        Uri::from_parts(parts).map_err(|_| HeadError::Malformed("an invalid request target"))?;
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_2;
    *req.headers_mut() = f.headers;
    Ok(req)
}

/// Reads a response head (a client reading its server's first HEADERS). 1xx
/// answers come out too; the caller skips them.
pub fn decode_response(
    decoder: &mut Decoder,
    block: &[u8],
    max_list: usize,
) -> Result<Response<()>, HeadError> {
    let f = decode(decoder, block, max_list, 8)?;
    if f.method.is_some() || f.scheme.is_some() || f.authority.is_some() || f.path.is_some() {
        return Err(HeadError::Malformed(
            "a request pseudo-header in a response",
        ));
    }
    let status = f.status.ok_or(HeadError::Malformed("no :status"))?;
    if status.len() != 3 {
        return Err(HeadError::Malformed("a :status that is not 3 digits"));
    }
    let status =
        StatusCode::from_bytes(&status).map_err(|_| HeadError::Malformed("an invalid :status"))?;
    let mut res = Response::new(());
    *res.status_mut() = status;
    *res.version_mut() = Version::HTTP_2;
    *res.headers_mut() = f.headers;
    Ok(res)
}

/// Reads trailers (a header block ending a stream): regular fields only.
pub fn decode_trailers(
    decoder: &mut Decoder,
    block: &[u8],
    max_list: usize,
) -> Result<HeaderMap, HeadError> {
    let f = decode(decoder, block, max_list, 4)?;
    if f.method.is_some()
        || f.scheme.is_some()
        || f.authority.is_some()
        || f.path.is_some()
        || f.status.is_some()
    {
        return Err(HeadError::Malformed("a pseudo-header in trailers"));
    }
    Ok(f.headers)
}

/// A head's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it (RFC 9113 §6.5.2:
/// each field's name and value, plus 32), `pseudo` being the pseudo-headers'
/// (name, value) lengths.
pub fn list_size(pseudo: &[(usize, usize)], headers: &HeaderMap) -> usize {
    let p: usize = pseudo.iter().map(|(n, v)| n + v + 32).sum();
    headers
        .iter()
        .fold(p, |n, (k, v)| n + k.as_str().len() + v.len() + 32)
}

/// [`list_size`] of a request head as [`encode_request`] writes it.
pub fn request_list_size(req: &Request<()>) -> usize {
    let uri = req.uri();
    let scheme = uri.scheme_str().unwrap_or("http").len();
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let path = uri.path_and_query().map_or(1, |p| p.as_str().len());
    let pseudo = [
        (7, req.method().as_str().len()),
        (7, scheme),
        (10, authority),
        (5, path),
    ];
    list_size(&pseudo, req.headers())
}

/// Writes a request head. The URI has the scheme, authority and path to send.
pub fn encode_request(enc: &mut Encoder, req: &Request<()>, dst: &mut Vec<u8>) {
    enc.encode_pseudo(Pseudo::Method, req.method().as_str().as_bytes(), dst);
    let uri = req.uri();
    let scheme = uri.scheme_str().unwrap_or("http");
    enc.encode_pseudo(Pseudo::Scheme, scheme.as_bytes(), dst);
    if let Some(a) = uri.authority() {
        enc.encode_pseudo(Pseudo::Authority, a.as_str().as_bytes(), dst);
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    enc.encode_pseudo(Pseudo::Path, path.as_bytes(), dst);
    encode_fields(enc, req.headers(), dst);
}

/// Writes a response head.
pub fn encode_response(
    enc: &mut Encoder,
    status: StatusCode,
    headers: &HeaderMap,
    dst: &mut Vec<u8>,
) {
    enc.encode_pseudo(Pseudo::Status, status.as_str().as_bytes(), dst);
    encode_fields(enc, headers, dst);
}

/// Writes regular fields (trailers, or the rest of a head). Fields HTTP/2 forbids
/// are left out: a head from HTTP/1.1 may still carry them.
pub fn encode_fields(enc: &mut Encoder, headers: &HeaderMap, dst: &mut Vec<u8>) {
    for (name, value) in headers {
        if name == CONNECTION
            || name == TRANSFER_ENCODING
            || name == UPGRADE
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
            || name == http::header::HOST
        {
            continue;
        }
        enc.encode_field(name, value, dst);
    }
}

/// A value for a header gantry writes itself.
pub fn value(v: &'static str) -> HeaderValue {
    HeaderValue::from_static(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(f: impl FnOnce(&mut Encoder, &mut Vec<u8>)) -> Vec<u8> {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.start_block(&mut out);
        f(&mut enc, &mut out);
        out
    }

    fn request_block(extra: &[(&'static str, &'static str)]) -> Vec<u8> {
        block(|e, out| {
            e.encode_pseudo(Pseudo::Method, b"POST", out);
            e.encode_pseudo(Pseudo::Scheme, b"http", out);
            e.encode_pseudo(Pseudo::Authority, b"api.example:8000", out);
            e.encode_pseudo(Pseudo::Path, b"/pkg.Svc/Call?x=1", out);
            for (n, v) in extra {
                e.encode_field(
                    &HeaderName::from_static(n),
                    &HeaderValue::from_static(v),
                    out,
                );
            }
        })
    }

    #[test]
    fn a_request_round_trips() {
        let b = request_block(&[("content-type", "application/grpc"), ("te", "trailers")]);
        let req = decode_request(&mut Decoder::new(4096), &b, 1 << 16).unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path(), "/pkg.Svc/Call");
        assert_eq!(req.uri().query(), Some("x=1"));
        assert_eq!(
            req.uri().authority().map(|a| a.as_str()),
            Some("api.example:8000")
        );
        assert_eq!(req.headers()["content-type"], "application/grpc");
        let mut again = Vec::new();
        let mut enc = Encoder::new();
        enc.start_block(&mut again);
        encode_request(&mut enc, &req, &mut again);
        let back = decode_request(&mut Decoder::new(4096), &again, 1 << 16).unwrap();
        assert_eq!(back.uri(), req.uri());
        assert_eq!(back.headers(), req.headers());
    }

    #[test]
    fn malformed_requests_are_stream_errors() {
        for (extra, why) in [
            (
                &[("connection", "close")][..],
                "a connection-specific field",
            ),
            (&[("te", "gzip")][..], "te other than \"trailers\""),
            (
                &[("transfer-encoding", "chunked")][..],
                "a connection-specific field",
            ),
        ] {
            let b = request_block(extra);
            match decode_request(&mut Decoder::new(4096), &b, 1 << 16) {
                Err(HeadError::Malformed(m)) => assert_eq!(m, why),
                other => panic!("{extra:?}: {other:?}"),
            }
        }
        let no_path = block(|e, out| {
            e.encode_pseudo(Pseudo::Method, b"GET", out);
            e.encode_pseudo(Pseudo::Scheme, b"http", out);
        });
        assert!(matches!(
            decode_request(&mut Decoder::new(4096), &no_path, 1 << 16),
            Err(HeadError::Malformed("no :path"))
        ));
        let late_pseudo = block(|e, out| {
            e.encode_pseudo(Pseudo::Method, b"GET", out);
            e.encode_field(
                &HeaderName::from_static("x-a"),
                &HeaderValue::from_static("1"),
                out,
            );
            e.encode_pseudo(Pseudo::Path, b"/", out);
        });
        assert!(matches!(
            decode_request(&mut Decoder::new(4096), &late_pseudo, 1 << 16),
            Err(HeadError::Malformed(
                "a pseudo-header after a regular field"
            ))
        ));
    }

    #[test]
    fn an_oversized_list_is_too_large() {
        let b = request_block(&[("x-big", "0123456789012345678901234567890123456789")]);
        assert!(matches!(
            decode_request(&mut Decoder::new(4096), &b, 100),
            Err(HeadError::TooLarge(100))
        ));
    }

    #[test]
    fn responses_and_trailers() {
        let b = block(|e, out| {
            let mut h = HeaderMap::new();
            h.insert("content-type", value("application/grpc"));
            encode_response(e, StatusCode::OK, &h, out);
        });
        let res = decode_response(&mut Decoder::new(4096), &b, 1 << 16).unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let t = block(|e, out| {
            let mut h = HeaderMap::new();
            h.insert("grpc-status", value("0"));
            encode_fields(e, &h, out);
        });
        let trailers = decode_trailers(&mut Decoder::new(4096), &t, 1 << 16).unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        let bad = block(|e, out| e.encode_pseudo(Pseudo::Status, b"200", out));
        assert!(decode_trailers(&mut Decoder::new(4096), &bad, 1 << 16).is_err());
    }
}
