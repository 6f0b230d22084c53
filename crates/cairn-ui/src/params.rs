//! Query strings read by hand, so a bad value gets a readable 400 page naming it.
use crate::PageError;

/// A request's query parameters, repeated keys kept in order.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses `raw` (without the `?`).
    pub fn parse(raw: Option<&str>) -> Result<Params, PageError> {
        match raw {
            None | Some("") => Ok(Params::default()),
            Some(q) => serde_urlencoded::from_str(q)
                .map(Params)
                .map_err(|e| PageError::bad_request(format!("Cannot read the query string: {e}"))),
        }
    }

    /// The first value of `key`, trimmed; `None` when absent or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `key` or "".
    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    /// Every non-empty value of `key`, in order, without repeats.
    pub fn all(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (k, v) in &self.0 {
            let v = v.trim();
            if k == key && !v.is_empty() && !out.iter().any(|o| o == v) {
                out.push(v.to_string());
            }
        }
        out
    }

    /// A non-negative integer, or a 400 naming the parameter.
    pub fn num(&self, key: &str) -> Result<Option<u64>, PageError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                PageError::bad_request(format!(
                    "The parameter '{key}' must be a non-negative integer, not '{v}'."
                ))
            }),
        }
    }

    /// A number, or a 400 naming the parameter.
    pub fn float(&self, key: &str) -> Result<Option<f64>, PageError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(PageError::bad_request(format!(
                    "The parameter '{key}' must be a finite number, not '{v}'."
                ))),
            },
        }
    }

    /// One of `choices` (the first when absent), or a 400 listing them.
    pub fn choice<'a>(&self, key: &str, choices: &[&'a str]) -> Result<&'a str, PageError> {
        match self.get(key) {
            None => Ok(choices[0]),
            Some(v) => choices.iter().find(|c| **c == v).copied().ok_or_else(|| {
                PageError::bad_request(format!(
                    "The parameter '{key}' must be one of {}, not '{v}'.",
                    choices.join(", ")
                ))
            }),
        }
    }
}
