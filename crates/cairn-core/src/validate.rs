//! MLflow's validation rules and limits, so a client gets the same answer from Cairn.
use crate::{Error, Result};

/// Most metrics in one log-batch.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most params, and separately most tags, in one log-batch.
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
/// Most items of all kinds in one log-batch.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// Largest log-batch request body, bytes.
pub const MAX_BATCH_LOG_REQUEST_SIZE: usize = 1_000_000;
/// Longest param value kept; longer values are truncated, as MLflow does by default.
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
/// Longest run tag value kept; longer values are truncated.
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
/// Longest metric, param or tag key.
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
/// Longest experiment name.
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
/// Longest experiment tag value.
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
/// Longest dataset name.
pub const MAX_DATASET_NAME_SIZE: usize = 500;
/// Longest dataset digest.
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
/// Longest dataset source.
pub const MAX_DATASET_SOURCE_SIZE: usize = 65535;
/// Longest dataset schema.
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
/// Longest dataset profile.
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
/// Longest input tag key.
pub const MAX_INPUT_TAG_KEY_SIZE: usize = 255;
/// Longest input tag value.
pub const MAX_INPUT_TAG_VALUE_SIZE: usize = 500;

/// Formats a value as MLflow's `invalid_value` does (JSON-quoted).
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The error MLflow gives for one bad field.
pub fn invalid_value(path: &str, value: &str, message: &str) -> Error {
    Error::invalid(format!(
        "Invalid value {} for parameter '{path}' supplied: {message}",
        quoted(value)
    ))
}

/// The error MLflow gives for a missing field.
pub fn missing_value(path: &str) -> Error {
    Error::invalid(format!("Missing value for required parameter '{path}'."))
}

/// POSIX `normpath`, enough to tell whether a key would name another file.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let leading = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if leading == 0 {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let body = parts.join("/");
    let result = format!("{}{}", "/".repeat(leading), body);
    if result.is_empty() {
        ".".into()
    } else {
        result
    }
}

/// Validates a metric, param or tag key with MLflow's rules: at most 250 characters of
/// alphanumerics, `_ - . / :` and space, and unchanged by path normalisation.
pub fn validate_key(path: &str, key: &str) -> Result<()> {
    let chars_ok = key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ' | ':'));
    if !chars_ok {
        return Err(invalid_value(
            path,
            key,
            "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), \
             spaces ( ), colon(:) and slashes (/).",
        ));
    }
    let norm = normpath(key);
    if norm != key || norm == "." || norm.starts_with("..") || norm.starts_with('/') {
        return Err(invalid_value(
            path,
            key,
            &format!(
                "Names may be treated as files in certain cases, and must not resolve to other \
                 names when treated as such. This name would resolve to '{norm}'"
            ),
        ));
    }
    validate_length(path, key, MAX_ENTITY_KEY_LENGTH)
}

/// Refuses a value longer than `limit` characters.
pub fn validate_length(path: &str, value: &str, limit: usize) -> Result<()> {
    let len = value.chars().count();
    if len > limit {
        let shown: String = value.chars().take(100).collect();
        return Err(invalid_value(
            path,
            &shown,
            &format!("length {len} exceeded length limit of {limit}"),
        ));
    }
    Ok(())
}

/// Cuts a value to at most `limit` characters (on a character boundary).
pub fn truncate(value: &mut String, limit: usize) {
    if let Some((idx, _)) = value.char_indices().nth(limit) {
        value.truncate(idx);
    }
}

/// Validates an experiment name.
pub fn validate_experiment_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(format!(
            "Invalid experiment name: '{name}'. Experiment name must not be empty."
        )));
    }
    validate_length("name", name, MAX_EXPERIMENT_NAME_LENGTH)
}

/// Validates a numeric id such as an experiment id.
pub fn validate_experiment_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 19 || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid_value(
            "experiment_id",
            id,
            "Experiment ID must be a number.",
        ));
    }
    Ok(())
}

/// Validates a run id: 1 to 256 characters of `[a-zA-Z0-9_-]`.
pub fn validate_run_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 256
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(invalid_value("run_id", id, "Invalid run ID."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflow_rules() {
        for good in ["acc", "train/loss", "a b", "x:y", "v1.2-rc_3", "ünï"] {
            assert!(validate_key("key", good).is_ok(), "{good}");
        }
        for bad in [
            "", "../x", "/abs", "a//b", "a/./b", "a/", "bad$", "x\ny", ".",
        ] {
            assert!(validate_key("key", bad).is_err(), "{bad}");
        }
        assert!(validate_key("key", &"k".repeat(250)).is_ok());
        assert!(validate_key("key", &"k".repeat(251)).is_err());
    }

    #[test]
    fn normpath_matches_posix() {
        assert_eq!(normpath("a/../b"), "b");
        assert_eq!(normpath("../a"), "../a");
        assert_eq!(normpath("/../a"), "/a");
        assert_eq!(normpath("a/b/"), "a/b");
        assert_eq!(normpath(""), ".");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "é".repeat(10);
        truncate(&mut s, 3);
        assert_eq!(s, "ééé");
        let mut short = "ab".to_string();
        truncate(&mut short, 5);
        assert_eq!(short, "ab");
    }

    #[test]
    fn errors_quote_values_like_mlflow() {
        let err = invalid_value("key", "a\"b", "bad").to_string();
        assert_eq!(
            err,
            "Invalid value \"a\\\"b\" for parameter 'key' supplied: bad"
        );
    }
}
