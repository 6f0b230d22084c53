//! Cross-site request forgery protection for the UI's forms: a random token in a
//! `SameSite=Strict`, `HttpOnly` cookie, repeated in a hidden field of every form that changes
//! state (double submit). A POST whose field does not equal the cookie changes nothing (403); a
//! cross-site POST carries no cookie at all.
use crate::PageError;
use axum::extract::{FromRequestParts, Request};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use std::collections::HashMap;

const COOKIE_NAME: &str = "cairn_csrf";
/// The form field that carries the token.
pub const FIELD: &str = "csrf";

/// This request's token: the cookie's, or a new one the response sets.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

fn from_cookie(parts: &axum::http::HeaderMap) -> Option<String> {
    parts.get_all(COOKIE).iter().find_map(|v| {
        v.to_str().ok()?.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == COOKIE_NAME && v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| v.to_string())
        })
    })
}

/// Gives each request a token and sets the cookie when the browser had none.
pub async fn layer(mut req: Request, next: Next) -> Response {
    let existing = from_cookie(req.headers());
    let token = existing.clone().unwrap_or_else(|| {
        let bytes: [u8; 16] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(req).await;
    if existing.is_none() {
        let cookie = format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict");
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = PageError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, PageError> {
        parts
            .extensions
            .get::<CsrfToken>()
            .cloned()
            .ok_or_else(|| PageError::internal("CSRF layer missing"))
    }
}

/// Refuses a form whose token is not this browser's cookie.
pub fn check(token: &CsrfToken, form: &HashMap<String, String>) -> Result<(), PageError> {
    match form.get(FIELD) {
        Some(given) if constant_time_eq(given.as_bytes(), token.0.as_bytes()) => Ok(()),
        _ => Err(PageError::forbidden(
            "This form's security token is missing or stale (cross-site request refused). \
             Reload the page and try again.",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
