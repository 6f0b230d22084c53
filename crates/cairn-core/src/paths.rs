//! Artifact paths: relative, normalised, never escaping their root.
use crate::{Error, Result};

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
        let mut parts = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => continue,
                ".." => return Err(bad("'..' is not allowed")),
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
        for bad in ["../x", "a/../../x", "/etc/passwd", "a\\..\\b", "a/..", ".."] {
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
    }
}
