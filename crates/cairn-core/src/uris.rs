//! Checks on URIs that users store and the server may later act on: model-version sources and
//! experiment artifact locations. They follow `mlflow server` 3.17's rules, which close
//! CVE-2023-1177, CVE-2023-2356, CVE-2023-2780 and CVE-2024-3573: a local path (no scheme, or
//! `file:`) is never taken as a source, and no URI may climb with `..`, however encoded.
use crate::{Error, Result};

/// The scheme of `uri` (lower case), or `None` when it has none (a local path).
pub fn scheme(uri: &str) -> Option<String> {
    let (scheme, _) = uri.split_once(':')?;
    let valid = scheme.len() > 1
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// Whether `uri` names the server's own file system: no scheme (`/etc`, `../x`, `C:\x`) or
/// `file:` (`file:///etc`, `file:/etc`).
pub fn is_local(uri: &str) -> bool {
    match scheme(uri) {
        None => true,
        Some(s) => s == "file",
    }
}

/// `uri` with `%XX` and `+` decoded until nothing changes (MLflow's `unquote_plus` loop), so
/// `%252e%252e` is seen as `..`.
fn fully_decoded(uri: &str) -> String {
    let mut current = uri.to_string();
    for _ in 0..8 {
        let next = decode_once(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn decode_once(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a decoded URI climbs (`..` as a segment, also after `\`) or holds NUL or a `.`
/// segment (a path that is not its own normal form).
fn climbs(decoded: &str) -> bool {
    decoded.contains('\0')
        || decoded
            .split(['/', '\\'])
            .any(|segment| segment == ".." || segment == "." || segment.starts_with("..;"))
}

/// Checks a model version's `source` as MLflow 3.17 does: no local paths, no relative
/// segments; a `runs:/` source names the version's run when `run_id` is given.
pub fn validate_model_source(source: &str, run_id: Option<&str>) -> Result<()> {
    if is_local(source) {
        return Err(Error::invalid(format!(
            "Invalid model version source: '{source}'. To use a local path as a model version \
             source, the run_id request parameter has to be specified and the local path has to \
             be contained within the artifact directory of the run specified by the run_id."
        )));
    }
    if climbs(&fully_decoded(source)) {
        return Err(Error::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, \
             local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must \
             be provided without relative path references present. Please provide an absolute \
             path."
        )));
    }
    if let Some(rest) = source.strip_prefix("runs:") {
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        // `runs://host/...` names another server (MLflow refuses a netloc).
        let has_netloc = rest.starts_with('/');
        let source_run = rest.trim_start_matches('/').split('/').next().unwrap_or("");
        let mismatched = run_id.is_some_and(|r| !r.is_empty() && r != source_run);
        if has_netloc || mismatched {
            return Err(Error::invalid(format!(
                "Invalid model version source: '{source}'. The run_id request parameter must \
                 identify the resource that contains the source."
            )));
        }
    }
    Ok(())
}

/// Checks an experiment's `artifact_location`: not a local path of the server, no relative
/// segments, no `runs:` URI, no fragment or `;` parameters, at most 2048 characters.
pub fn validate_artifact_location(location: &str) -> Result<()> {
    if location.len() > 2048 {
        return Err(Error::invalid(
            "Invalid artifact path length. The length of the artifact path cannot be greater \
             than 2048 characters.",
        ));
    }
    if scheme(location).as_deref() == Some("runs") {
        return Err(Error::invalid(format!(
            "Artifact location cannot be a runs:/ URI. Given: '{location}'"
        )));
    }
    if location.contains('#') || location.contains(';') {
        return Err(Error::invalid(
            "'artifact_location' URL can't include fragments or params.",
        ));
    }
    if is_local(location) {
        return Err(Error::invalid(format!(
            "Invalid artifact_location '{location}': a path on the server's own file system is \
             not allowed; give an object-store URI or leave it empty for the server's proxied \
             artifact store"
        )));
    }
    if climbs(&fully_decoded(location)) {
        return Err(Error::invalid(format!(
            "Invalid artifact_location '{location}': relative path references ('..') are not \
             allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_climbing_sources_are_refused() {
        for bad in [
            "/etc/passwd",
            "file:///etc",
            "file:/etc/passwd",
            "../../..",
            "etc/passwd",
            "C:\\Windows",
            "mlflow-artifacts:/../../../etc",
            "mlflow-artifacts:/%2e%2e/%2e%2e/etc",
            "mlflow-artifacts:/%252e%252e/etc",
            "mlflow-artifacts:/a/..\\..\\etc",
            "http://host/api/2.0/mlflow-artifacts/artifacts/../../x",
            "s3://bucket/a/./b",
            "mlflow-artifacts:/a%00b",
            "runs://host/abc/model",
        ] {
            assert!(validate_model_source(bad, None).is_err(), "{bad}");
        }
        assert!(validate_model_source("runs:/abc/model", Some("def")).is_err());
        for good in [
            "runs:/abc/model",
            "mlflow-artifacts:/1/abc/artifacts/model",
            "models:/m-123",
            "s3://bucket/model",
            "mlflow-artifacts:/1/a..b/model",
        ] {
            assert!(validate_model_source(good, None).is_ok(), "{good}");
        }
        assert!(validate_model_source("runs:/abc/model", Some("abc")).is_ok());
    }

    #[test]
    fn artifact_locations_stay_off_the_servers_disk() {
        for bad in [
            "file:///etc",
            "/etc",
            "relative/dir",
            "runs:/abc/x",
            "s3://b/../x",
            "s3://b/x#frag",
            "s3://b/x;p",
        ] {
            assert!(validate_artifact_location(bad).is_err(), "{bad}");
        }
        for good in ["s3://bucket/prefix", "mlflow-artifacts:/team", "gs://b/p"] {
            assert!(validate_artifact_location(good).is_ok(), "{good}");
        }
    }
}
