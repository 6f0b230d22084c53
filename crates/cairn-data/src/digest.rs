//! The BLAKE3 digest that names every object, file and directory version.
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A BLAKE3 digest; shown as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

const HEX: &[u8; 16] = b"0123456789abcdef";

impl Digest {
    /// The digest of a byte string.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// The digest of a file's bytes, as a file version records it (hashed in parallel when
    /// large, in one read).
    pub fn of_file(path: &std::path::Path) -> crate::error::Result<Digest> {
        use crate::error::IoContext;
        let file = std::fs::File::open(path).at(path)?;
        let len = file.metadata().at(path)?.len();
        crate::hash::hash_file(&file, len, None, &crate::progress::NoProgress).at(path)
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// Parses 64 hex characters (either case).
    pub fn parse(text: &str) -> Option<Digest> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Digest(out))
    }
}

impl From<blake3::Hash> for Digest {
    fn from(h: blake3::Hash) -> Self {
        Digest(*h.as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("not a BLAKE3 digest (64 hex characters): {text:?}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        assert_eq!(Digest::parse(&d.to_hex()), Some(d));
        assert_eq!(Digest::parse(&d.to_hex().to_uppercase()), Some(d));
        assert_eq!(Digest::parse("abc"), None);
        assert_eq!(Digest::parse(&"g".repeat(64)), None);
    }

    #[test]
    fn a_file_digest_is_the_digest_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0usize, 1000, 9 << 20] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &bytes).unwrap();
            assert_eq!(
                Digest::of_file(&path).unwrap(),
                Digest::of(&bytes),
                "{size}"
            );
        }
        assert!(Digest::of_file(&dir.path().join("missing")).is_err());
    }
}
