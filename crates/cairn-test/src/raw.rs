//! HTTP written by hand, byte for byte, for tests that must send what no client would
//! (smuggled paths, broken framing, stalled bodies) and read the answer as it came.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `request` unchanged on a new connection and reads until the server closes it (or
/// `timeout` passes without a byte). `None` when the connection could not be made.
pub fn exchange(addr: &str, request: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    // A server may answer and close before the whole request is written (a refused body);
    // its answer is still there to read.
    let _ = stream.write_all(request);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    Some(reply)
}

/// The status code and body of a raw HTTP/1.1 reply; `None` when it has no status line.
pub fn status_and_body(reply: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(reply);
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
