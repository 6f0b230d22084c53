//! Checks every request passes before any handler runs, with or without authentication:
//! - the `Host` header names this server (DNS rebinding: a page on `evil.example` whose name
//!   now resolves to 127.0.0.1 sends `Host: evil.example`);
//! - a state-changing request does not come from another site (`Origin`, `Sec-Fetch-Site`):
//!   a browser sends those on every cross-site POST, including the `text/plain` ones that
//!   need no CORS preflight;
//! - the MLflow API's writes carry JSON, never a form or `text/plain` body (what a foreign
//!   page can send without a preflight), as `mlflow server` 3.17 requires.
use axum::extract::Request;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::IpAddr;
use std::sync::Arc;

/// The `Host` names a server answers to.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// `None`: any host (`--allowed-hosts '*'`).
    names: Option<Vec<String>>,
    /// Whether any IP literal is taken (a server bound to every interface); rebinding needs a
    /// DNS name, so literals are safe to take.
    any_ip_literal: bool,
}

impl AllowedHosts {
    /// Every host.
    pub fn any() -> Self {
        AllowedHosts {
            names: None,
            any_ip_literal: true,
        }
    }

    /// The defaults for a server bound to `bind`: the bound address and the localhost names;
    /// bound to every interface (`0.0.0.0`, `::`), also any IP literal and this machine's name.
    pub fn for_bind(bind: &str, machine_name: Option<&str>) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let bind = bind
            .trim_matches(|c| c == '[' || c == ']')
            .to_ascii_lowercase();
        let unspecified = bind
            .parse::<IpAddr>()
            .map(|ip| ip.is_unspecified())
            .unwrap_or(false);
        if unspecified {
            if let Some(name) = machine_name {
                names.push(name.to_ascii_lowercase());
            }
        } else {
            names.push(bind);
        }
        AllowedHosts {
            names: Some(names),
            any_ip_literal: unspecified,
        }
    }

    /// The defaults plus `extra` names (`*` takes any host; `*.example.com` any subdomain).
    pub fn with(mut self, extra: &[String]) -> Self {
        for name in extra {
            let name = name.trim().to_ascii_lowercase();
            if name == "*" {
                return AllowedHosts::any();
            }
            if let Some(names) = &mut self.names {
                names.push(name);
            }
        }
        self
    }

    /// Whether a `Host` header value (with or without port) is allowed.
    pub fn allows(&self, host_header: &str) -> bool {
        let Some(names) = &self.names else {
            return true;
        };
        let host = host_only(host_header).to_ascii_lowercase();
        if self.any_ip_literal && host.parse::<IpAddr>().is_ok() {
            return true;
        }
        names
            .iter()
            .any(|allowed| match allowed.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => *allowed == host,
            })
    }
}

/// `host[:port]` or `[v6]:port` without the port and brackets.
fn host_only(authority: &str) -> &str {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        // One colon: a port. More: a bare IPv6 literal.
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host
        }
        _ => authority,
    }
}

/// Adds the checks to `router`.
pub fn protect(router: Router, hosts: AllowedHosts) -> Router {
    let hosts = Arc::new(hosts);
    router.layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let hosts = hosts.clone();
            async move {
                match refusal(&req, &hosts) {
                    Some(mut response) => {
                        // The body stays unread: this connection cannot carry another request.
                        if req.method() != Method::GET && req.method() != Method::HEAD {
                            response.headers_mut().insert(
                                header::CONNECTION,
                                axum::http::HeaderValue::from_static("close"),
                            );
                        }
                        response
                    }
                    None => next.run(req).await,
                }
            }
        },
    ))
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    tracing::warn!(status = status.as_u16(), message, "request refused");
    crate::ApiError::new(status, code, message).into_response()
}

fn refusal(req: &Request, hosts: &AllowedHosts) -> Option<Response> {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !host.is_empty() && !hosts.allows(host) {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "Host '{}' is not allowed; start the server with --allowed-hosts naming it",
                host_only(host)
            ),
        ));
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !changes_state {
        return None;
    }
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if fetch_site.eq_ignore_ascii_case("cross-site") || fetch_site.eq_ignore_ascii_case("same-site")
    {
        return Some(cross_origin(fetch_site));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let origin_authority = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'))
            .unwrap_or("");
        if origin_authority.is_empty() || !origin_authority.eq_ignore_ascii_case(host) {
            return Some(cross_origin(origin));
        }
    }
    let path = req.uri().path();
    let is_mlflow_api = (path.starts_with("/api/") || path.starts_with("/ajax-api/"))
        && !path.contains("/mlflow-artifacts/");
    if is_mlflow_api {
        if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
            let media = content_type
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if media != "application/json" {
                return Some(refuse(
                    StatusCode::BAD_REQUEST,
                    "INVALID_PARAMETER_VALUE",
                    format!(
                        "Bad Request. Content-Type must be one of ['application/json'], got '{media}'"
                    ),
                ));
            }
        }
    }
    None
}

fn cross_origin(from: &str) -> Response {
    refuse(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        format!("Cross-origin request refused (from '{from}'): state changes must come from this server's own pages or a non-browser client"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_by_default_are_the_bound_address_and_localhost() {
        let local = AllowedHosts::for_bind("127.0.0.1", Some("box"));
        for ok in ["127.0.0.1:5000", "localhost", "LOCALHOST:80", "[::1]:5000"] {
            assert!(local.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:5000", "box", "10.0.0.2:5000"] {
            assert!(!local.allows(bad), "{bad}");
        }
        let all = AllowedHosts::for_bind("0.0.0.0", Some("box"));
        for ok in ["10.0.0.2:5000", "box:5000", "[fe80::1]:5000", "localhost"] {
            assert!(all.allows(ok), "{ok}");
        }
        assert!(!all.allows("evil.example:5000"));
        let extra = all.with(&["*.corp.example".into(), "cairn.example".into()]);
        assert!(extra.allows("ml.corp.example:443") && extra.allows("cairn.example"));
        assert!(!extra.allows("corp.example.evil"));
        assert!(AllowedHosts::for_bind("127.0.0.1", None)
            .with(&["*".into()])
            .allows("anything"));
    }
}
