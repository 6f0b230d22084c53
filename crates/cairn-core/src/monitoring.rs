//! Live monitoring's shared state, as the metadata store keeps it so that every replica of a
//! server sees one truth: a model version's training reference, ground-truth labels keyed by
//! the request they answer, alert rules and the events they fired, and leases that let one
//! replica at a time do a piece of periodic work. The values are the monitor's own encodings
//! (bytes, JSON text); this crate only stores and finds them.
use crate::Result;

/// A model version's training reference.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReference {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// The columns compared for drift, in the model's order.
    pub features: Vec<String>,
    /// The label column, if the data has one.
    pub target: Option<String>,
    /// Where the reference was read from.
    pub source: String,
    /// Its row count.
    pub rows: i64,
    /// The monitor's encoding of its values.
    pub values: Vec<u8>,
    /// When it was stored (ms).
    pub created_ms: i64,
}

/// Ground truth for one row of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLabel {
    /// The request the prediction answered.
    pub request_id: String,
    /// The row within the request.
    pub row: i64,
    /// The true value, as JSON text (a number or a class name).
    pub value: String,
    /// When it was recorded (ms); retention prunes by it.
    pub timestamp_ms: i64,
}

/// An alert rule: its name and its definition, as the monitor writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlertRule {
    /// Unique name.
    pub name: String,
    /// The definition.
    pub body: String,
}

/// An alert that fired or resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlertEvent {
    /// The rule's name.
    pub rule: String,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// When it happened (ms).
    pub at_ms: i64,
    /// The whole event, as the monitor writes it (JSON text).
    pub body: String,
}

/// The most label keys one [`MonitoringStore::labels_for`] call reads at once; callers with
/// more split them.
pub const LABEL_LOOKUP_BATCH: usize = 500;

/// Monitoring state. Every method is one transaction.
pub trait MonitoringStore: Send + Sync {
    /// Stores (or replaces) a version's training reference.
    fn put_reference(&self, reference: &StoredReference) -> Result<()>;
    /// A version's training reference.
    fn get_reference(&self, model: &str, version: &str) -> Result<Option<StoredReference>>;
    /// Every (model, version) with a reference, sorted.
    fn referenced_versions(&self) -> Result<Vec<(String, String)>>;
    /// Records labels; a label for a (request, row) already labelled replaces it.
    fn record_labels(&self, labels: &[StoredLabel]) -> Result<()>;
    /// The labels of the given requests (at most [`LABEL_LOOKUP_BATCH`] ids).
    fn labels_for(&self, request_ids: &[String]) -> Result<Vec<StoredLabel>>;
    /// Deletes labels recorded before `before_ms`; answers how many.
    fn prune_labels(&self, before_ms: i64) -> Result<u64>;
    /// Adds a rule, or replaces the rule of that name.
    fn put_alert_rule(&self, rule: &StoredAlertRule) -> Result<()>;
    /// Every rule, by name.
    fn alert_rules(&self) -> Result<Vec<StoredAlertRule>>;
    /// Records an event; answers its id.
    fn record_alert_event(&self, event: &StoredAlertEvent) -> Result<i64>;
    /// Replaces a recorded event's body (a webhook's answer, known later); `false` when no
    /// event has that id.
    fn update_alert_event(&self, id: i64, body: &str) -> Result<bool>;
    /// Events, oldest first: every one, or the newest `limit`.
    fn alert_events(&self, limit: Option<usize>) -> Result<Vec<StoredAlertEvent>>;
    /// Takes or renews the lease `name` for `holder` until `now_ms + ttl_ms`: granted when it
    /// is free, expired, or already this holder's. At most one holder has an unexpired lease.
    fn try_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool>;
    /// Gives a lease back early (only its holder can).
    fn release_lease(&self, name: &str, holder: &str) -> Result<()>;
}
