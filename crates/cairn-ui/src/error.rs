//! Errors as readable pages: 404 for what does not exist, 400 for bad input (with the reason),
//! 500 only for failures of the server itself. The one mapping from `cairn_core::Error` is an
//! exhaustive match.
use crate::layout;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use cairn_core::Error;
use maud::html;

/// An error on its way to a browser as an HTML page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    /// 404 with a message saying what was not found.
    pub fn not_found(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
    /// 400 with the reason the input was refused.
    pub fn bad_request(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
    /// 403 for a form without a valid CSRF token.
    pub fn forbidden(message: impl Into<String>) -> Self {
        PageError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }
    /// 500 for failures of the server.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(error = %message, "page failed");
        PageError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "The server failed to build this page; its log says why.".into(),
        }
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The message shown.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidParameter(m) | Error::BadRequest(m) | Error::AlreadyExists(m) => {
                PageError::bad_request(m)
            }
            Error::NotFound(m) => PageError::not_found(m),
            Error::Conflict(m) => PageError {
                status: StatusCode::CONFLICT,
                message: m,
            },
            e @ (Error::Storage(_) | Error::Io(_)) => PageError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::CONFLICT => "Conflict",
            _ => "Server error",
        };
        let body = layout::document(
            title,
            &[],
            html! {
                div.error-page {
                    h1 { (self.status.as_u16()) " " (title) }
                    p.error { (self.message) }
                    p { a href="/" { "Back to the experiments" } }
                }
            },
        );
        (self.status, Html(body.into_string())).into_response()
    }
}

/// An experiment id from a page path: digits only, else the page is a 404.
pub fn check_experiment_id(id: &str) -> Result<(), PageError> {
    if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PageError::not_found(format!(
            "No experiment with id '{id}'."
        )));
    }
    Ok(())
}
