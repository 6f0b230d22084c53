//! The narrow transaction interface the shared store logic is written against.
use cairn_core::{Error, Result};

/// A value bound to, or read from, SQL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// Bytes (BLOB on SQLite, BYTEA on PostgreSQL).
    Blob(Vec<u8>),
}

impl Val {
    pub fn text(&self) -> String {
        match self {
            Val::Text(s) => s.clone(),
            Val::Int(i) => i.to_string(),
            Val::Real(f) => f.to_string(),
            Val::Blob(b) => String::from_utf8_lossy(b).into_owned(),
            Val::Null => String::new(),
        }
    }
    /// The bytes of a BLOB (or of text).
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Val::Blob(b) => b,
            other => other.text().into_bytes(),
        }
    }
    pub fn opt_text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            other => Some(other.text()),
        }
    }
    pub fn int(&self) -> i64 {
        match self {
            Val::Int(i) => *i,
            Val::Real(f) => *f as i64,
            Val::Text(s) => s.parse().unwrap_or(0),
            Val::Null | Val::Blob(_) => 0,
        }
    }
    pub fn opt_int(&self) -> Option<i64> {
        match self {
            Val::Null => None,
            other => Some(other.int()),
        }
    }
    pub fn real(&self) -> f64 {
        match self {
            Val::Real(f) => *f,
            Val::Int(i) => *i as f64,
            Val::Text(s) => s.parse().unwrap_or(f64::NAN),
            Val::Null | Val::Blob(_) => f64::NAN,
        }
    }
}

impl From<&str> for Val {
    fn from(s: &str) -> Self {
        Val::Text(s.to_string())
    }
}
impl From<String> for Val {
    fn from(s: String) -> Self {
        Val::Text(s)
    }
}
impl From<&String> for Val {
    fn from(s: &String) -> Self {
        Val::Text(s.clone())
    }
}
impl From<i64> for Val {
    fn from(i: i64) -> Self {
        Val::Int(i)
    }
}
impl From<f64> for Val {
    fn from(f: f64) -> Self {
        Val::Real(f)
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(o: Option<T>) -> Self {
        o.map(Into::into).unwrap_or(Val::Null)
    }
}

pub(crate) type Row = Vec<Val>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// One open transaction. SQL is written with `?` placeholders; the PostgreSQL side renumbers
/// them. Statements never contain a literal `?`.
pub(crate) trait Tx {
    fn dialect(&self) -> Dialect;
    fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64>;
    fn query(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Row>>;
    /// `INSERT ... VALUES` of many rows: `head` is `INSERT INTO t(a, b) VALUES`, each row
    /// binds `width` values, `tail` is an optional `ON CONFLICT ...` clause.
    fn insert_many(&mut self, head: &str, width: usize, tail: &str, rows: &[Row]) -> Result<()>;
}

/// `(?, ?, ?)` for `n` values.
pub(crate) fn tuple(n: usize) -> String {
    let mut s = String::with_capacity(3 * n + 2);
    s.push('(');
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s.push(')');
    s
}

/// Rewrites `?` placeholders as `$1, $2, ...`.
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn storage(e: impl std::fmt::Display) -> Error {
    Error::Storage(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(
            numbered_placeholders("a = ? AND b IN (?, ?)"),
            "a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(tuple(3), "(?, ?, ?)");
    }
}
