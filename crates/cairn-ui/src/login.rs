//! Signing in to the UI under `--auth`: a form that checks the password as HTTP Basic is
//! checked (same rate limits) and opens a session, a token of the user's kept in an
//! `HttpOnly`, `SameSite=Strict` cookie; signing out revokes it. Both forms carry the CSRF
//! token, so another site can neither sign a browser in as someone else nor out.
use crate::csrf::{self, CsrfToken};
use crate::layout::{csrf_field, document};
use crate::params::Params;
use crate::PageError;
use axum::extract::{FromRequest, Request};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use cairn_api::auth::{session_token, Authn, SignInError, SESSION_COOKIE, SESSION_SECONDS};
use maud::html;
use std::collections::HashMap;
use std::sync::Arc;

type MaybeAuthn = Option<Extension<Arc<Authn>>>;

/// Where to go after signing in: a path on this site, never another site (`//host`, `/\host`
/// and absolute URLs fall back to the start page).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.bytes().any(|b| b.is_ascii_control()) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

fn form_page(token: &CsrfToken, next: &str, username: &str, error: Option<&str>) -> Html<String> {
    let body = html! {
        div.login {
            h1 { "Sign in" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form method="post" action="/login" {
                (csrf_field(token))
                input type="hidden" name="next" value=(next);
                label { "Username " input name="username" value=(username) autocomplete="username" required autofocus; }
                label { "Password " input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "Sign in" }
            }
            p.muted { "The first administrator's password is in CAIRN_ADMIN_PASSWORD, or in the file the server named when it first started with --auth." }
        }
    };
    Html(document("Sign in", &[], body).into_string())
}

/// `GET /login?next=/path`.
pub async fn page(
    authn: MaybeAuthn,
    token: CsrfToken,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let next = safe_next(p.get("next"));
    if authn.is_none() {
        // Nothing to sign in to: every page is open.
        return Ok(Redirect::to(&next).into_response());
    }
    Ok(form_page(&token, &next, "", None).into_response())
}

/// `POST /login`: opens a session and goes back where the browser was sent from.
pub async fn sign_in(
    authn: MaybeAuthn,
    token: CsrfToken,
    req: Request,
) -> Result<Response, PageError> {
    let address = cairn_api::listen::peer(&req).map(|a| a.ip());
    let Form(form): Form<HashMap<String, String>> = Form::from_request(req, &())
        .await
        .map_err(|e| PageError::bad_request(format!("Cannot read the form: {e}")))?;
    csrf::check(&token, &form)?;
    let next = safe_next(form.get("next").map(String::as_str));
    let Some(Extension(authn)) = authn else {
        return Ok(Redirect::to(&next).into_response());
    };
    let username = form.get("username").map(|u| u.trim()).unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    let refused = |status: StatusCode, why: &str| {
        (status, form_page(&token, &next, username, Some(why))).into_response()
    };
    match authn.sign_in(username, password, address).await {
        Ok((_, session)) => {
            let mut response = Redirect::to(&next).into_response();
            let cookie = format!(
                "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECONDS}"
            );
            let value = HeaderValue::from_str(&cookie)
                .map_err(|e| PageError::internal(format!("session cookie: {e}")))?;
            response.headers_mut().append(SET_COOKIE, value);
            Ok(response)
        }
        Err(SignInError::Wrong) => Ok(refused(
            StatusCode::UNAUTHORIZED,
            "Wrong username or password.",
        )),
        Err(SignInError::TooManyAttempts) => Ok(refused(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-in attempts: wait a few minutes and try again.",
        )),
        Err(SignInError::Failed(e)) => Err(PageError::internal(e.message().to_string())),
    }
}

/// `POST /logout`: revokes the session and forgets the cookie.
pub async fn sign_out(
    authn: MaybeAuthn,
    token: CsrfToken,
    req: Request,
) -> Result<Response, PageError> {
    let session = session_token(req.headers());
    let Form(form): Form<HashMap<String, String>> = Form::from_request(req, &())
        .await
        .map_err(|e| PageError::bad_request(format!("Cannot read the form: {e}")))?;
    csrf::check(&token, &form)?;
    if let (Some(Extension(authn)), Some(session)) = (authn, session) {
        authn
            .sign_out(&session)
            .await
            .map_err(|e| PageError::internal(e.message().to_string()))?;
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        SET_COOKIE,
        HeaderValue::from_static("cairn_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

/// The signed-in user's name and this browser's CSRF token, for the page header's sign-out
/// button (set per request by [`layer`]).
#[derive(Clone)]
pub struct SignedIn {
    /// The user's name.
    pub username: String,
    /// This browser's CSRF token.
    pub csrf: String,
}

tokio::task_local! {
    /// Who the page being rendered is for.
    pub static SIGNED_IN: Option<SignedIn>;
}

/// Makes the signed-in user known to the page layout for this request.
pub async fn layer(req: Request, next: axum::middleware::Next) -> Response {
    let user = req
        .extensions()
        .get::<cairn_api::auth::Caller>()
        .map(|c| c.0.username.clone());
    let csrf = req.extensions().get::<CsrfToken>().map(|t| t.0.clone());
    let signed_in = user
        .zip(csrf)
        .map(|(username, csrf)| SignedIn { username, csrf });
    SIGNED_IN.scope(signed_in, next.run(req)).await
}
