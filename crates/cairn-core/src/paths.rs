//! Artifact paths: relative, normalised, never escaping their root.
use crate::{Error, Result};

/// Longest component a file system takes (Linux's NAME_MAX).
pub const MAX_COMPONENT_BYTES: usize = 255;
/// Longest artifact path taken: well under PATH_MAX once joined to a root.
pub const MAX_PATH_BYTES: usize = 2048;

/// Whether a component would mean `.`/`..` (or hold a separator) to anything that decodes
/// it again: percent-encoded once or twice (`%2e%2e`, `%252e%252e`) or followed by a `;`
/// path parameter (`..;x`). Such names are refused rather than stored literally, so no later
/// reader, proxy or client can turn them into a traversal (CVE-2023-6831, CVE-2024-1560,
/// CVE-2024-1593).
fn disguises_traversal(component: &str) -> bool {
    let mut current = component.to_string();
    for _ in 0..3 {
        let bare = current.split(';').next().unwrap_or("");
        if matches!(bare, "." | "..")
            || current.contains('/')
            || current.contains('\\')
            || current.contains('\0')
        {
            return true;
        }
        match percent_decode(&current) {
            Some(next) if next != current => current = next,
            _ => return false,
        }
    }
    false
}

/// `%XX` sequences decoded; `None` when the result is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A relative artifact path that has been checked: no `..`, no absolute start, no empty or `.`
/// components, no backslashes or NUL. Symlinks are checked by the store that resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(Vec<String>);

impl ArtifactPath {
    /// The root itself.
    pub fn root() -> Self {
        ArtifactPath(Vec::new())
    }

    /// Checks a user-supplied path. An empty string is the root.
    pub fn parse(raw: &str) -> Result<Self> {
        let bad = |why: &str| Error::invalid(format!("Invalid artifact path '{raw}': {why}"));
        if raw.starts_with('/') {
            return Err(bad("absolute paths are not allowed"));
        }
        if raw.contains('\\') || raw.contains('\0') {
            return Err(bad("backslashes and NUL are not allowed"));
        }
        if raw.len() > MAX_PATH_BYTES {
            return Err(Error::invalid(format!(
                "Invalid artifact path: longer than {MAX_PATH_BYTES} bytes"
            )));
        }
        if raw.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
        let mut parts = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => continue,
                ".." => return Err(bad("'..' is not allowed")),
                p if p.len() > MAX_COMPONENT_BYTES => {
                    return Err(Error::invalid(format!(
                        "Invalid artifact path: the component '{}…' is longer than \
                         {MAX_COMPONENT_BYTES} bytes",
                        p.chars().take(32).collect::<String>()
                    )))
                }
                p if disguises_traversal(p) => {
                    return Err(bad(
                        "'..' is not allowed (also encoded, or before a ';' parameter)",
                    ))
                }
                p => parts.push(p.to_string()),
            }
        }
        Ok(ArtifactPath(parts))
    }

    /// The components, outermost first.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// This path with `other` appended.
    pub fn join(&self, other: &ArtifactPath) -> ArtifactPath {
        let mut parts = self.0.clone();
        parts.extend(other.0.iter().cloned());
        ArtifactPath(parts)
    }

    /// The path as `a/b/c`.
    pub fn as_string(&self) -> String {
        self.0.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_escapes() {
        let long = "x".repeat(256);
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\..\\b",
            "a/..",
            "..",
            "a/%2e%2e/b",
            "a/%252e%252e/b",
            "a/%2E./b",
            "a/..;x/b",
            "a/.;/b",
            "a/%2fetc",
            "a/%5c..",
            "a/%00",
            "a\nb",
            long.as_str(),
        ] {
            assert!(ArtifactPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn normalises_harmless_forms() {
        assert_eq!(
            ArtifactPath::parse("a//b/./c").unwrap().as_string(),
            "a/b/c"
        );
        assert!(ArtifactPath::parse("").unwrap().is_root());
        // Ordinary names with dots, semicolons and percent signs stay allowed.
        for good in [
            "a/..b/c",
            "v1.2;final/x",
            "100%/x",
            "a/%zz",
            "x".repeat(255).as_str(),
        ] {
            assert!(ArtifactPath::parse(good).is_ok(), "{good}");
        }
    }
}
