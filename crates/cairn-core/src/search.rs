//! MLflow's search grammar: filters (`metrics.acc > 0.9 AND params.lr = '0.1'`), `order_by`
//! clauses and page tokens. Parsing checks everything a store needs, so a store only translates.
use crate::{Error, Result};
use base64::Engine;

/// What a filter key refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// `metrics.` / `metric.`
    Metric,
    /// `params.` / `param.` / `parameters.` / `parameter.`
    Param,
    /// `tags.` / `tag.`
    Tag,
    /// `attributes.` / `attribute.` / `attr.` / `run.`, or no prefix.
    Attribute,
    /// `datasets.` / `dataset.`
    Dataset,
    /// A trace's request metadata: `metadata.` / `request_metadata.` (traces only).
    Metadata,
    /// A trace's spans: `span.name`, `span.type`, `span.status`, `span.content` (traces only).
    Span,
    /// A trace's valid feedback of a name: `feedback.<name>` (traces only).
    Feedback,
    /// A trace's valid expectation of a name: `expectation.<name>` (traces only).
    Expectation,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `LIKE` (case-sensitive, `%` and `_` wildcards)
    Like,
    /// `ILIKE` (case-insensitive)
    ILike,
    /// `IN (...)`
    In,
    /// `NOT IN (...)`
    NotIn,
    /// `IS NULL`
    IsNull,
    /// `IS NOT NULL`
    IsNotNull,
}

impl Op {
    /// The SQL spelling for the simple operators (`=`, `!=`, `>`, ...).
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::In => "IN",
            Op::NotIn => "NOT IN",
            Op::IsNull => "IS NULL",
            Op::IsNotNull => "IS NOT NULL",
        }
    }
    fn is_numeric(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }
}

/// The right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A quoted string.
    Str(String),
    /// A number.
    Num(f64),
    /// A parenthesised list of strings, for `IN`.
    List(Vec<String>),
    /// Nothing, for `IS NULL`.
    None,
}

/// One `key op value` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// What the key refers to.
    pub entity: Entity,
    /// The key, without prefix or quotes. For attributes, the canonical attribute name.
    pub key: String,
    /// The operator.
    pub op: Op,
    /// The value.
    pub value: Value,
}

/// One `order_by` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// What the key refers to.
    pub entity: Entity,
    /// The key (canonical attribute name for attributes).
    pub key: String,
    /// Ascending?
    pub ascending: bool,
}

/// Which kind of entity is being searched: each has its own attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `runs/search`
    Runs,
    /// `experiments/search`
    Experiments,
    /// `logged-models/search`
    LoggedModels,
    /// `registered-models/search`
    RegisteredModels,
    /// `model-versions/search`
    ModelVersions,
    /// `traces/search`
    Traces,
    /// `datasets/search` (evaluation datasets)
    EvaluationDatasets,
    /// `issues/search`
    Issues,
}

const RUN_STRING_ATTRS: &[&str] = &[
    "run_id",
    "run_name",
    "status",
    "user_id",
    "artifact_uri",
    "lifecycle_stage",
];
const RUN_NUMERIC_ATTRS: &[&str] = &["start_time", "end_time"];
const EXPERIMENT_STRING_ATTRS: &[&str] = &["name", "experiment_id"];
const EXPERIMENT_NUMERIC_ATTRS: &[&str] = &["creation_time", "last_update_time"];
const MODEL_STRING_ATTRS: &[&str] = &[
    "name",
    "model_id",
    "status",
    "source_run_id",
    "model_type",
    "experiment_id",
];
const MODEL_NUMERIC_ATTRS: &[&str] = &["creation_timestamp", "last_updated_timestamp"];
const DATASET_ATTRS: &[&str] = &["name", "digest", "context"];
const REGISTERED_MODEL_STRING_ATTRS: &[&str] = &["name"];
const REGISTERED_MODEL_NUMERIC_ATTRS: &[&str] = &["creation_timestamp", "last_updated_timestamp"];
const MODEL_VERSION_STRING_ATTRS: &[&str] = &["name", "run_id", "source_path", "current_stage"];
const TRACE_STRING_ATTRS: &[&str] = &[
    "request_id",
    "status",
    "client_request_id",
    "name",
    "run_id",
    "text",
    "experiment_id",
];
const TRACE_NUMERIC_ATTRS: &[&str] = &["timestamp_ms", "execution_time_ms", "end_time_ms"];
/// The trace attributes `IN (...)` applies to (MLflow's `SUPPORT_IN_COMPARISON_ATTRIBUTE_KEYS`).
const TRACE_IN_ATTRS: &[&str] = &[
    "name",
    "status",
    "request_id",
    "run_id",
    "client_request_id",
];
/// What `span.` may name.
pub const SPAN_KEYS: &[&str] = &["name", "type", "status", "content"];
const EVAL_DATASET_STRING_ATTRS: &[&str] = &["name", "created_by", "last_updated_by"];
const EVAL_DATASET_NUMERIC_ATTRS: &[&str] = &["created_time", "last_update_time"];
const ISSUE_STRING_ATTRS: &[&str] = &["status", "source_run_id"];
const MODEL_VERSION_NUMERIC_ATTRS: &[&str] = &[
    "version_number",
    "creation_timestamp",
    "last_updated_timestamp",
];

impl Target {
    fn attrs(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Target::Runs => (RUN_STRING_ATTRS, RUN_NUMERIC_ATTRS),
            Target::Experiments => (EXPERIMENT_STRING_ATTRS, EXPERIMENT_NUMERIC_ATTRS),
            Target::LoggedModels => (MODEL_STRING_ATTRS, MODEL_NUMERIC_ATTRS),
            Target::RegisteredModels => (
                REGISTERED_MODEL_STRING_ATTRS,
                REGISTERED_MODEL_NUMERIC_ATTRS,
            ),
            Target::ModelVersions => (MODEL_VERSION_STRING_ATTRS, MODEL_VERSION_NUMERIC_ATTRS),
            Target::Traces => (TRACE_STRING_ATTRS, TRACE_NUMERIC_ATTRS),
            Target::EvaluationDatasets => (EVAL_DATASET_STRING_ATTRS, EVAL_DATASET_NUMERIC_ATTRS),
            Target::Issues => (ISSUE_STRING_ATTRS, &[]),
        }
    }

    fn canonical_attr(self, key: &str) -> Option<&'static str> {
        let key = match (self, key) {
            (Target::Runs, "created") => "start_time",
            (Target::Runs, "run_uuid") => "run_id",
            (Target::Runs, "name") => "run_name",
            (Target::Experiments, "created") => "creation_time",
            (Target::LoggedModels, "creation_time") => "creation_timestamp",
            (Target::LoggedModels, "last_updated_time") => "last_updated_timestamp",
            (Target::RegisteredModels | Target::ModelVersions, "timestamp") => {
                "last_updated_timestamp"
            }
            (Target::ModelVersions, "version") => "version_number",
            (Target::ModelVersions, "source") => "source_path",
            (Target::Traces, "timestamp") => "timestamp_ms",
            (Target::Traces, "execution_time") => "execution_time_ms",
            (Target::Traces, "end_time") => "end_time_ms",
            (Target::Traces, "trace_id") => "request_id",
            _ => key,
        };
        let (strings, numbers) = self.attrs();
        strings
            .iter()
            .chain(numbers.iter())
            .copied()
            .find(|a| *a == key)
    }

    /// Whether a canonical attribute holds numbers (timestamps).
    pub fn is_numeric_attr(self, key: &str) -> bool {
        self.attrs().1.contains(&key)
    }

    fn entities(self) -> &'static [Entity] {
        match self {
            Target::Runs => &[
                Entity::Metric,
                Entity::Param,
                Entity::Tag,
                Entity::Attribute,
                Entity::Dataset,
            ],
            Target::Experiments
            | Target::RegisteredModels
            | Target::ModelVersions
            | Target::EvaluationDatasets => &[Entity::Tag, Entity::Attribute],
            Target::Issues => &[Entity::Attribute],
            Target::LoggedModels => &[
                Entity::Metric,
                Entity::Param,
                Entity::Tag,
                Entity::Attribute,
            ],
            Target::Traces => &[
                Entity::Tag,
                Entity::Attribute,
                Entity::Metadata,
                Entity::Span,
                Entity::Feedback,
                Entity::Expectation,
            ],
        }
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::invalid(msg)
}

struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }
    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.src.len()
    }
    fn bump(&mut self, n: usize) {
        self.pos += n;
    }
    /// Consumes a case-insensitive keyword followed by a non-word character.
    fn keyword(&mut self, word: &str) -> bool {
        self.skip_ws();
        let rest = self.rest();
        if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) {
            let after = rest[word.len()..].chars().next();
            if after.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
                self.bump(word.len());
                return true;
            }
        }
        false
    }
    fn quoted(&mut self, quote: char) -> Result<String> {
        // Called with the cursor on the opening quote; a doubled quote is an escaped quote.
        self.bump(quote.len_utf8());
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(bad(format!("Unterminated quoted string in '{}'", self.src)));
            };
            self.bump(c.len_utf8());
            if c == quote {
                if self.peek() == Some(quote) {
                    self.bump(quote.len_utf8());
                    out.push(quote);
                    continue;
                }
                return Ok(out);
            }
            out.push(c);
        }
    }
    fn bare_word(&mut self) -> &'a str {
        let rest = self.rest();
        let end = rest
            .find(|c: char| c.is_whitespace() || "=!<>(),'\"`".contains(c))
            .unwrap_or(rest.len());
        self.bump(end);
        &rest[..end]
    }
}

fn entity_for_prefix(prefix: &str, target: Target) -> Option<Entity> {
    let prefix = prefix.to_ascii_lowercase();
    if target == Target::Traces {
        // MLflow's trace grammar: `trace.` is the attribute prefix there, and metadata and
        // spans have prefixes of their own.
        return Some(match prefix.as_str() {
            "tag" | "tags" => Entity::Tag,
            "attribute" | "attributes" | "trace" => Entity::Attribute,
            "metadata" | "request_metadata" => Entity::Metadata,
            "span" => Entity::Span,
            "feedback" => Entity::Feedback,
            "expectation" => Entity::Expectation,
            _ => return None,
        });
    }
    Some(match prefix.as_str() {
        "metric" | "metrics" => Entity::Metric,
        "param" | "params" | "parameter" | "parameters" => Entity::Param,
        "tag" | "tags" => Entity::Tag,
        "attribute" | "attributes" | "attr" | "run" => Entity::Attribute,
        "dataset" | "datasets" => Entity::Dataset,
        _ => return None,
    })
}

/// Parses a key such as `metrics.acc`, ``tags.`a b` ``, `params."x"` or `start_time`.
fn parse_key(cur: &mut Cursor<'_>, target: Target) -> Result<(Entity, String)> {
    cur.skip_ws();
    let (entity, key) = match cur.peek() {
        Some(q @ ('`' | '"')) => (Entity::Attribute, cur.quoted(q)?),
        _ => {
            let word = cur.bare_word();
            if word.is_empty() {
                return Err(bad(format!(
                    "Invalid filter '{}': expected a key at position {}",
                    cur.src, cur.pos
                )));
            }
            match word.split_once('.') {
                Some((prefix, rest)) => {
                    let entity = entity_for_prefix(prefix, target).ok_or_else(|| {
                        if target == Target::Traces {
                            bad(format!(
                                "Invalid entity type '{prefix}'. Valid values are ['tag', \
                                 'request_metadata', 'attribute', 'span', 'feedback', \
                                 'expectation']"
                            ))
                        } else {
                            bad(format!(
                                "Invalid entity type '{prefix}'. Valid values are \
                                 ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
                            ))
                        }
                    })?;
                    if rest.is_empty() {
                        match cur.peek() {
                            Some(q @ ('`' | '"')) => (entity, cur.quoted(q)?),
                            _ => return Err(bad(format!("Invalid identifier '{word}'"))),
                        }
                    } else {
                        (entity, rest.to_string())
                    }
                }
                None => (Entity::Attribute, word.to_string()),
            }
        }
    };
    if !target.entities().contains(&entity) {
        return Err(bad(format!(
            "Invalid entity type in '{}' for this search",
            cur.src
        )));
    }
    match entity {
        Entity::Attribute => {
            let canonical = target.canonical_attr(&key).ok_or_else(|| {
                let (s, n) = target.attrs();
                let all: Vec<&str> = s.iter().chain(n.iter()).copied().collect();
                bad(format!(
                    "Invalid attribute key '{key}' specified. Valid keys are {all:?}"
                ))
            })?;
            Ok((entity, canonical.to_string()))
        }
        Entity::Dataset if !DATASET_ATTRS.contains(&key.as_str()) => Err(bad(format!(
            "Invalid dataset key '{key}' specified. Valid keys are {DATASET_ATTRS:?}"
        ))),
        Entity::Span if !SPAN_KEYS.contains(&key.as_str()) => Err(bad(format!(
            "Invalid span attribute '{key}'. Supported attributes: {SPAN_KEYS:?}"
        ))),
        _ => Ok((entity, key)),
    }
}

fn parse_op(cur: &mut Cursor<'_>) -> Result<Op> {
    cur.skip_ws();
    for (text, op) in [
        ("!=", Op::Ne),
        ("<>", Op::Ne),
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("=", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
    ] {
        if cur.rest().starts_with(text) {
            cur.bump(text.len());
            return Ok(op);
        }
    }
    if cur.keyword("LIKE") {
        return Ok(Op::Like);
    }
    if cur.keyword("ILIKE") {
        return Ok(Op::ILike);
    }
    if cur.keyword("IN") {
        return Ok(Op::In);
    }
    if cur.keyword("NOT") {
        if cur.keyword("IN") {
            return Ok(Op::NotIn);
        }
        return Err(bad(format!(
            "Invalid filter '{}': expected IN after NOT",
            cur.src
        )));
    }
    if cur.keyword("IS") {
        let negated = cur.keyword("NOT");
        if cur.keyword("NULL") {
            return Ok(if negated { Op::IsNotNull } else { Op::IsNull });
        }
        return Err(bad(format!(
            "Invalid filter '{}': expected NULL after IS",
            cur.src
        )));
    }
    Err(bad(format!(
        "Invalid comparator in filter '{}' at position {}",
        cur.src, cur.pos
    )))
}

fn parse_value(cur: &mut Cursor<'_>, op: Op) -> Result<Value> {
    cur.skip_ws();
    match op {
        Op::IsNull | Op::IsNotNull => return Ok(Value::None),
        Op::In | Op::NotIn => {
            if cur.peek() != Some('(') {
                return Err(bad(format!(
                    "Invalid filter '{}': IN expects a parenthesised list of strings",
                    cur.src
                )));
            }
            cur.bump(1);
            let mut items = Vec::new();
            loop {
                cur.skip_ws();
                match cur.peek() {
                    Some(q @ ('\'' | '"')) => items.push(cur.quoted(q)?),
                    _ => {
                        return Err(bad(format!(
                            "Invalid filter '{}': IN list items must be quoted strings",
                            cur.src
                        )))
                    }
                }
                cur.skip_ws();
                match cur.peek() {
                    Some(',') => cur.bump(1),
                    Some(')') => {
                        cur.bump(1);
                        break;
                    }
                    _ => {
                        return Err(bad(format!(
                            "Invalid filter '{}': unclosed IN list",
                            cur.src
                        )))
                    }
                }
            }
            return Ok(Value::List(items));
        }
        _ => {}
    }
    match cur.peek() {
        Some(q @ ('\'' | '"')) => Ok(Value::Str(cur.quoted(q)?)),
        Some(_) => {
            let word = cur.bare_word();
            word.parse::<f64>().map(Value::Num).map_err(|_| {
                bad(format!(
                    "Invalid value '{word}' in filter '{}': strings must be quoted",
                    cur.src
                ))
            })
        }
        None => Err(bad(format!("Invalid filter '{}': missing value", cur.src))),
    }
}

fn check(cmp: &Comparison, target: Target, src: &str) -> Result<()> {
    let numeric = match cmp.entity {
        Entity::Metric => true,
        Entity::Attribute => target.is_numeric_attr(&cmp.key),
        _ => false,
    };
    let ok = if numeric {
        cmp.op.is_numeric() && matches!(cmp.value, Value::Num(_))
    } else if target == Target::Issues {
        matches!(cmp.op, Op::Eq | Op::Ne) && matches!(cmp.value, Value::Str(_))
    } else if target == Target::Traces {
        let string = matches!(cmp.value, Value::Str(_));
        match (cmp.entity, cmp.op) {
            (Entity::Span, Op::Like | Op::ILike) => string,
            (Entity::Span, _) if cmp.key == "content" => false,
            (Entity::Span, Op::Eq | Op::Ne) => string,
            (Entity::Span, Op::In | Op::NotIn) => true,
            (Entity::Attribute, Op::Like | Op::ILike) => string,
            (Entity::Attribute, _) if cmp.key == "text" => false,
            (Entity::Attribute, Op::Eq | Op::Ne) => string,
            (Entity::Attribute, Op::In | Op::NotIn) => TRACE_IN_ATTRS.contains(&cmp.key.as_str()),
            (Entity::Tag | Entity::Metadata, Op::Eq | Op::Ne | Op::Like | Op::ILike) => string,
            (Entity::Tag | Entity::Metadata, Op::IsNull | Op::IsNotNull) => true,
            // MLflow's assessment grammar: text for equality and patterns, numbers to order.
            (Entity::Feedback | Entity::Expectation, Op::Eq | Op::Ne | Op::Like | Op::ILike) => {
                string
            }
            (Entity::Feedback | Entity::Expectation, Op::Gt | Op::Ge | Op::Lt | Op::Le) => {
                matches!(cmp.value, Value::Num(_))
            }
            (Entity::Feedback | Entity::Expectation, Op::IsNull | Op::IsNotNull) => true,
            _ => false,
        }
    } else {
        match cmp.op {
            Op::Eq | Op::Ne | Op::Like | Op::ILike => matches!(cmp.value, Value::Str(_)),
            Op::IsNull | Op::IsNotNull => matches!(cmp.entity, Entity::Param | Entity::Tag),
            Op::In | Op::NotIn => matches!(cmp.entity, Entity::Attribute | Entity::Dataset),
            Op::Gt | Op::Ge | Op::Lt | Op::Le => false,
        }
    };
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "Invalid comparison in filter '{src}': '{}' {} is not supported for this key{}",
            cmp.key,
            cmp.op.sql(),
            if numeric {
                " (expects a number)"
            } else {
                " (expects a quoted string)"
            }
        )))
    }
}

/// Most comparisons one filter may join: a database nests each one in its expression tree.
pub const MAX_COMPARISONS: usize = 200;
/// Most values one `IN (...)` list may hold (each becomes a bound parameter).
pub const MAX_IN_VALUES: usize = 10_000;

/// Parses a filter string (empty means "everything").
pub fn parse_filter(filter: &str, target: Target) -> Result<Vec<Comparison>> {
    let mut cur = Cursor {
        src: filter,
        pos: 0,
    };
    let mut out = Vec::new();
    if cur.at_end() {
        return Ok(out);
    }
    loop {
        let (entity, key) = parse_key(&mut cur, target)?;
        let op = parse_op(&mut cur)?;
        let value = parse_value(&mut cur, op)?;
        let cmp = Comparison {
            entity,
            key,
            op,
            value,
        };
        check(&cmp, target, filter)?;
        if let Value::List(items) = &cmp.value {
            if items.len() > MAX_IN_VALUES {
                return Err(bad(format!(
                    "Invalid filter: an IN list holds {} values, more than the limit of {MAX_IN_VALUES}",
                    items.len()
                )));
            }
        }
        out.push(cmp);
        if out.len() > MAX_COMPARISONS {
            return Err(bad(format!(
                "Invalid filter: more than the limit of {MAX_COMPARISONS} comparisons joined by AND"
            )));
        }
        if cur.at_end() {
            return Ok(out);
        }
        if cur.keyword("OR") {
            return Err(bad(format!(
                "Invalid filter '{filter}': OR is not supported, only AND"
            )));
        }
        if !cur.keyword("AND") {
            return Err(bad(format!(
                "Invalid filter '{filter}': expected AND at position {}",
                cur.pos
            )));
        }
    }
}

/// Parses one `order_by` clause such as `metrics.acc DESC`.
pub fn parse_order_by(clause: &str, target: Target) -> Result<OrderBy> {
    let mut cur = Cursor {
        src: clause,
        pos: 0,
    };
    let (entity, key) = parse_key(&mut cur, target)?;
    if entity == Entity::Dataset {
        return Err(bad(format!("Invalid order_by clause '{clause}'")));
    }
    let ascending = if cur.keyword("DESC") {
        false
    } else {
        cur.keyword("ASC");
        true
    };
    if !cur.at_end() {
        return Err(bad(format!(
            "Invalid order_by clause '{clause}'. Could not be parsed."
        )));
    }
    Ok(OrderBy {
        entity,
        key,
        ascending,
    })
}

/// Makes an opaque page token for an offset (base64 of `{"offset": N}`, like MLflow's).
pub fn page_token(offset: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{{\"offset\": {offset}}}"))
}

/// Reads a page token back into an offset; an empty token is offset 0.
pub fn parse_page_token(token: &str) -> Result<u64> {
    if token.is_empty() {
        return Ok(0);
    }
    let invalid = || bad(format!("Invalid page token '{token}'"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let digits = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .and_then(|t| t.trim().strip_prefix("\"offset\""))
        .and_then(|t| t.trim().strip_prefix(':'))
        .ok_or_else(invalid)?;
    digits.trim().parse::<u64>().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(filter: &str) -> Result<Vec<Comparison>> {
        parse_filter(filter, Target::Runs)
    }

    #[test]
    fn parses_mixed_filter() {
        let got =
            runs("metrics.acc > 0.9 and params.lr = '0.1' AND tags.`my tag` != \"x\"").unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].entity, Entity::Metric);
        assert_eq!(got[0].value, Value::Num(0.9));
        assert_eq!(got[1].key, "lr");
        assert_eq!(got[2].key, "my tag");
        assert_eq!(got[2].op, Op::Ne);
        assert_eq!(got[2].value, Value::Str("x".into()));
    }

    #[test]
    fn parses_attributes_and_lists() {
        let got = runs("attributes.run_id IN ('a', 'b') and created >= 5 and status = 'FINISHED'")
            .unwrap();
        assert_eq!(got[0].value, Value::List(vec!["a".into(), "b".into()]));
        assert_eq!(got[1].key, "start_time");
        assert_eq!(got[2].key, "status");
        let got = runs("tags.x IS NOT NULL AND params.y is null").unwrap();
        assert_eq!(got[0].op, Op::IsNotNull);
        assert_eq!(got[1].op, Op::IsNull);
        let got = runs("metrics.`a b.c` <= -1e3 and params.\"p q\" LIKE '%x%'").unwrap();
        assert_eq!(got[0].key, "a b.c");
        assert_eq!(got[0].value, Value::Num(-1000.0));
        assert_eq!(got[1].op, Op::Like);
        assert_eq!(runs("  ").unwrap(), vec![]);
        assert_eq!(
            runs("params.a = 'it''s'").unwrap()[0].value,
            Value::Str("it's".into())
        );
    }

    #[test]
    fn rejects_bad_filters() {
        for bad in [
            "metrics.acc > 0.9 OR params.x = 'a'",
            "metrics.acc > 'high'",
            "params.x > 'a'",
            "params.x = 3",
            "foo.bar = 'x'",
            "no_such_attr = 'x'",
            "metrics.acc >",
            "params.x = 'unterminated",
            "metrics.acc > 1 params.x = 'a'",
            "metrics.acc ~ 1",
            "start_time = 'yesterday'",
            "run_id IN 'a'",
            "datasets.size = 'x'",
            "tags.x IS 'a'",
            "= 'x'",
        ] {
            assert!(
                matches!(runs(bad), Err(Error::InvalidParameter(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn registry_style_filters_parse() {
        let got = parse_filter(
            "name = 'x' AND tag.`mlflow.prompt.is_prompt` != 'true'",
            Target::LoggedModels,
        )
        .unwrap();
        assert_eq!(got[1].key, "mlflow.prompt.is_prompt");
    }

    #[test]
    fn registry_filters() {
        let got = parse_filter(
            "name = 'x' AND tag.`mlflow.prompt.is_prompt` != 'true'",
            Target::RegisteredModels,
        )
        .unwrap();
        assert_eq!((got[0].key.as_str(), got[1].entity), ("name", Entity::Tag));
        let got = parse_filter(
            "run_id IN ('a', 'b') and version_number > 1",
            Target::ModelVersions,
        )
        .unwrap();
        assert_eq!(got[1].value, Value::Num(1.0));
        assert!(parse_filter("metrics.x > 1", Target::ModelVersions).is_err());
    }

    #[test]
    fn order_by_clauses() {
        let o = parse_order_by("metrics.acc DESC", Target::Runs).unwrap();
        assert_eq!(
            (o.entity, o.key.as_str(), o.ascending),
            (Entity::Metric, "acc", false)
        );
        let o = parse_order_by("start_time", Target::Runs).unwrap();
        assert!(o.ascending);
        assert!(parse_order_by("metrics.acc sideways", Target::Runs).is_err());
    }

    #[test]
    fn page_tokens_round_trip() {
        assert_eq!(parse_page_token(&page_token(1234)).unwrap(), 1234);
        assert_eq!(parse_page_token("").unwrap(), 0);
        assert!(parse_page_token("!!!").is_err());
        assert!(parse_page_token("eyJmb28iOiAxfQ==").is_err());
    }

    #[test]
    fn huge_filters_are_refused_before_any_database_sees_them() {
        let many = vec!["metrics.a > 1"; 10_000].join(" AND ");
        assert!(runs(&many).is_err());
        let at_limit = vec!["metrics.a > 1"; MAX_COMPARISONS].join(" AND ");
        assert!(runs(&at_limit).is_ok());
        let ids: Vec<String> = (0..MAX_IN_VALUES + 1).map(|i| format!("'{i}'")).collect();
        assert!(runs(&format!("run_id IN ({})", ids.join(","))).is_err());
    }

    proptest::proptest! {
        /// Any text is parsed or refused as a bad parameter: never a panic, never a store error.
        #[test]
        fn any_filter_text_parses_or_is_refused_as_invalid(text in "\\PC{0,80}") {
            for target in [Target::Runs, Target::Experiments, Target::LoggedModels, Target::RegisteredModels, Target::ModelVersions] {
                if let Err(e) = parse_filter(&text, target) {
                    proptest::prop_assert!(matches!(e, crate::Error::InvalidParameter(_) | crate::Error::BadRequest(_)), "{e:?}");
                }
            }
            let _ = parse_order_by(&text, Target::Runs);
            let _ = parse_page_token(&text);
        }

        /// Filters built from the grammar's own pieces, including odd spacing and quoting.
        #[test]
        fn grammar_shaped_filters_never_panic(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just("metrics.a"), proptest::strategy::Just("params.`b c`"),
                proptest::strategy::Just("tags.\"x\""), proptest::strategy::Just("attributes.status"),
                proptest::strategy::Just("run_id"), proptest::strategy::Just(">="), proptest::strategy::Just("="),
                proptest::strategy::Just("LIKE"), proptest::strategy::Just("IN"), proptest::strategy::Just("NOT"),
                proptest::strategy::Just("IS"), proptest::strategy::Just("NULL"), proptest::strategy::Just("AND"),
                proptest::strategy::Just("OR"), proptest::strategy::Just("('a', 'b')"), proptest::strategy::Just("'x'"),
                proptest::strategy::Just("1e400"), proptest::strategy::Just("-0.5"), proptest::strategy::Just("("),
                proptest::strategy::Just(")"), proptest::strategy::Just("'"), proptest::strategy::Just("`"),
            ], 0..12),
        ) {
            let text = parts.join(" ");
            for target in [Target::Runs, Target::Experiments, Target::LoggedModels, Target::RegisteredModels, Target::ModelVersions] {
                if let Err(e) = parse_filter(&text, target) {
                    proptest::prop_assert!(matches!(e, crate::Error::InvalidParameter(_) | crate::Error::BadRequest(_)), "{e:?}");
                }
            }
        }
    }
}
