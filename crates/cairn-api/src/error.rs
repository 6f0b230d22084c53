//! The one mapping from domain errors to HTTP: an exhaustive match, so a new error variant
//! does not compile until it has a status and an MLflow `error_code`.
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cairn_core::Error;

/// An error on its way to the client as `{"error_code": ..., "message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    /// 400 INVALID_PARAMETER_VALUE.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }
    /// 400 BAD_REQUEST.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }
    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_LIMIT_EXCEEDED",
            format!("Request body exceeds the limit of {limit} bytes"),
        )
    }
    /// 500 for failures of the server itself.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", message)
    }
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match &e {
            Error::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            Error::AlreadyExists(_) => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "RESOURCE_CONFLICT"),
            Error::Storage(_) | Error::Io(_) => {
                tracing::error!(error = %e, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            }
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

/// The `sqlstate` and `error_class` MLflow 3.17's server adds to an error of this code
/// (`mlflow/error_classification.py`: derived from the code when the raise site names no
/// class); codes it does not classify get neither.
fn classification(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "BAD_REQUEST" | "INVALID_PARAMETER_VALUE" => ("KAM00", "INVALID_PARAMETER_VALUE"),
        "CUSTOMER_UNAUTHORIZED" | "PERMISSION_DENIED" => ("KAM00", "PERMISSION_DENIED"),
        "ENDPOINT_NOT_FOUND" | "NOT_FOUND" | "RESOURCE_DOES_NOT_EXIST" => {
            ("KAM00", "RESOURCE_NOT_FOUND")
        }
        "FEATURE_DISABLED" => ("KAM00", "FEATURE_DISABLED"),
        "RESOURCE_ALREADY_EXISTS" => ("KAM00", "RESOURCE_ALREADY_EXISTS"),
        "INTERNAL_ERROR" | "INVALID_STATE" | "TEMPORARILY_UNAVAILABLE" => {
            ("XXM00", "CLIENT_INTERNAL_ERROR")
        }
        _ => return None,
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = crate::request_id::public_message(self.status, self.message);
        let mut body = serde_json::json!({"error_code": self.code, "message": message});
        if let Some((sqlstate, class)) = classification(self.code) {
            body["sqlstate"] = sqlstate.into();
            body["error_class"] = class.into();
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the oversized body was never read: the connection cannot be reused.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
