//! `--open` mode's guard. Anonymous callers are admins there, so the only thing standing between a web page
//! the user happens to visit and their data is the browser's same-origin policy, which two tricks get around:
//!
//! - DNS rebinding: `evil.example` resolves to 127.0.0.1 after the page loaded, so its scripts reach this
//!   server as "same origin". The `Host` header still says `evil.example`: only loopback names are served.
//! - Cross-site form posts: a `<form method=post action=http://127.0.0.1:8080/…>` needs no CORS preflight.
//!   Browsers mark such requests with `Sec-Fetch-Site` and `Origin`; a write whose origin is not this
//!   server's is refused. (curl and scripts send neither header and are unaffected.)

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::error_body;

pub(crate) async fn open_mode_guard(State(state): State<Arc<crate::State>>, req: Request, next: Next) -> Response {
    if state.open {
        let host =
            req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or(req.uri().authority().map(|a| a.as_str()));
        if let Some(host) = host {
            if !is_loopback_host(host) {
                return error_body(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "an --open server only answers requests addressed to localhost or a loopback address",
                );
            }
        }
        let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe && is_cross_site(req.headers(), host) {
            return error_body(StatusCode::FORBIDDEN, "forbidden", "cross-site writes are refused");
        }
    }
    next.run(req).await
}

/// `localhost`, `*.localhost`, `127.x.y.z` or `[::1]`, with or without a port.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(
            host,
            |(name, port)| {
                if port.chars().all(|c| c.is_ascii_digit()) {
                    name
                } else {
                    host
                }
            },
        ),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a browser says the request comes from another site: `Sec-Fetch-Site` other than same-origin / none,
/// or an `Origin` (including the opaque `null`) whose host is not the one addressed.
fn is_cross_site(headers: &HeaderMap, host: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return true;
        }
    }
    match headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("null")) {
        None => false,
        Some(origin) => {
            let origin_host = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
            origin_host.is_none_or(|o| Some(o) != host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_host_names() {
        for ok in ["localhost", "localhost:8080", "app.localhost:1", "127.0.0.1", "127.0.0.1:8080", "[::1]:80", "[::1]"]
        {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:8080", "localhost.evil.example", "10.0.0.1:8080", "[::2]:80", ""] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn cross_site_detection() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, v.parse().unwrap());
            }
            h
        };
        let host = Some("127.0.0.1:8080");
        assert!(!is_cross_site(&headers(&[]), host), "curl sends neither header");
        assert!(!is_cross_site(&headers(&[("origin", "http://127.0.0.1:8080")]), host));
        assert!(!is_cross_site(&headers(&[("sec-fetch-site", "same-origin")]), host));
        assert!(is_cross_site(&headers(&[("origin", "http://evil.example")]), host));
        assert!(is_cross_site(&headers(&[("origin", "null")]), host));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")]), host));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-site")]), host));
    }
}
