//! Optional API credentials: a bearer token, HTTP basic auth, or both.
//!
//! The expected `Authorization` values are built once; a request's header is compared
//! in constant time, so response timing does not reveal how much of a guess was right.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::ApiCredentials;

/// What a request must present, if anything.
#[derive(Clone, Default)]
pub struct Guard {
    accepted: Vec<Vec<u8>>,
    basic: bool,
}

impl Guard {
    pub fn new(credentials: Option<&ApiCredentials>) -> Guard {
        let mut guard = Guard::default();
        if let Some(c) = credentials {
            if let Some(token) = &c.token {
                guard.accepted.push(format!("Bearer {token}").into_bytes());
            }
            if let Some((user, password)) = &c.basic {
                let encoded = base64(format!("{user}:{password}").as_bytes());
                guard.accepted.push(format!("Basic {encoded}").into_bytes());
                guard.basic = true;
            }
        }
        guard
    }

    /// Whether the dashboard's own files are guarded too: with basic auth the browser
    /// asks for credentials itself; with a bearer token only, the page must load to
    /// ask for the token, and holds no data.
    pub fn covers_assets(&self) -> bool {
        self.basic
    }

    fn allows(&self, presented: Option<&HeaderValue>) -> bool {
        if self.accepted.is_empty() {
            return true;
        }
        let Some(presented) = presented else {
            return false;
        };
        // Check every accepted value, so the time taken does not tell which matched.
        self.accepted.iter().fold(false, |ok, want| {
            ok | constant_time_eq(want, presented.as_bytes())
        })
    }
}

/// Middleware: answers 401 unless the request carries accepted credentials.
pub async fn require(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if guard.allows(req.headers().get(header::AUTHORIZATION)) {
        return next.run(req).await;
    }
    let challenge = if guard.basic {
        "Basic realm=\"gantry\", charset=\"UTF-8\""
    } else {
        "Bearer realm=\"gantry\""
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        axum::Json(serde_json::json!({ "message": "credentials required" })),
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Standard base64 with padding (RFC 4648 §4), for the basic-auth header value.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn guard_accepts_only_configured_credentials() {
        let creds = ApiCredentials {
            token: Some("t0k".into()),
            basic: Some(("oncall".into(), "pw".into())),
        };
        let g = Guard::new(Some(&creds));
        let ok = |v: &str| g.allows(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(ok("Bearer t0k"));
        assert!(ok(&format!("Basic {}", base64(b"oncall:pw"))));
        assert!(!ok("Bearer t0"));
        assert!(!ok("Bearer t0k0"));
        assert!(!ok(&format!("Basic {}", base64(b"oncall:px"))));
        assert!(!g.allows(None));
        assert!(Guard::new(None).allows(None));
    }
}
