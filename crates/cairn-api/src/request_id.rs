//! Request ids: one per request, in its log line, its `x-request-id` header and the body of a
//! 500 (which carries nothing else of the server's internals).
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// A new id: a per-process prefix (so restarts do not repeat ids) and a counter.
pub fn next() -> String {
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
            .unwrap_or(0);
        nanos ^ std::process::id().rotate_left(16)
    });
    format!("{prefix:08x}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Runs `f` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The current request's id, or `none` outside a request.
pub fn current() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "none".to_string())
}

/// The message a client may see: a 5xx (other than 503, which says why to retry) carries only
/// the request id; its internal text (paths, driver messages) goes to the log under that id.
pub fn public_message(status: axum::http::StatusCode, message: String) -> String {
    if !status.is_server_error() || status == axum::http::StatusCode::SERVICE_UNAVAILABLE {
        return message;
    }
    let id = current();
    tracing::error!(
        request_id = id,
        status = status.as_u16(),
        error = message,
        "server error"
    );
    format!("Internal error; the server log has details under request id {id}")
}
