//! The live side of monitoring a server: served predictions handed to the prediction log, and
//! the periodic evaluation (drift and labelled metrics of every monitored version over a
//! recent window, alert rules, retention) that one replica at a time runs under a lease in
//! the metadata store, so an alert fires once however many replicas serve. Webhooks are posted
//! by a thread of their own, with retries, so a slow receiver never delays an evaluation.
use crate::monitor::{
    now_ms, window_metrics, AlertEvent, AlertState, MetricBucket, Monitor, PredictionLog, TensorRef,
};
use cairn_quality::drift::{DriftOptions, DriftReport};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Posts an alert to a webhook; the binary provides the HTTP client (with its timeout).
pub trait Notifier: Send + Sync {
    /// Posts `body` (JSON text) to `url`; returns the HTTP status or why it failed.
    fn post(&self, url: &str, body: &str) -> Result<u16, String>;
}

/// What was last computed for one model version.
#[derive(Default, Clone)]
pub struct VersionGauges {
    /// Predictions logged in the window.
    pub predictions: u64,
    /// Drift of the window against the reference.
    pub drift: Option<DriftReport>,
    /// Labelled metrics of the window (one bucket), when any row is labelled.
    pub metrics: Option<MetricBucket>,
}

/// The lease the evaluation runs under.
pub const EVALUATION_LEASE: &str = "monitoring-evaluation";
/// Attempts to deliver one webhook.
pub const WEBHOOK_ATTEMPTS: u32 = 3;
/// Least time between two rounds of retention and compaction.
pub const MAINTENANCE_EVERY: Duration = Duration::from_secs(600);
/// How long after its hour ends a partition is compacted (writers flush within seconds; a
/// late file after compaction is kept beside the compacted one).
pub const COMPACT_AFTER: Duration = Duration::from_secs(600);
/// Webhooks waiting for delivery; beyond it a webhook is dropped (and logged), never
/// delaying an evaluation.
const WEBHOOK_QUEUE: usize = 1_000;

/// A webhook to deliver: the event it reports and where its answer is written.
struct Delivery {
    url: String,
    event: AlertEvent,
    event_id: i64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Settings of [`Live`].
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// How far back gauges and alert rules look by default.
    pub window_seconds: u64,
    /// Logged predictions and labels older than this are deleted.
    pub retention_seconds: u64,
    /// Time between evaluations; the lease lasts three of them.
    pub interval: Duration,
    /// This replica's name in leases (unique per process).
    pub holder: String,
    /// Pause before the second and later webhook attempts (doubled each time).
    pub webhook_backoff: Duration,
}

/// Monitoring of one server process.
pub struct Live {
    monitor: Monitor,
    log: Option<PredictionLog>,
    options: LiveOptions,
    gauges: Mutex<BTreeMap<(String, String), VersionGauges>>,
    alerts: Mutex<AlertState>,
    /// Whether this replica held the lease at its last evaluation (its alert state is then
    /// current; otherwise it is read again from the store's events).
    leading: AtomicBool,
    evaluations: AtomicU64,
    next_id: AtomicU64,
    /// When retention and compaction last ran here (ms; 0: never).
    maintained_ms: std::sync::atomic::AtomicI64,
    webhooks: Option<SyncSender<Delivery>>,
    webhooks_dropped: AtomicU64,
}

impl Live {
    /// Monitoring on `monitor`; `log` is where served predictions go (none: not logged).
    pub fn new(
        monitor: Monitor,
        log: Option<PredictionLog>,
        options: LiveOptions,
        notifier: Option<Arc<dyn Notifier>>,
    ) -> Live {
        let webhooks = notifier.map(|notifier| {
            let (tx, rx) = sync_channel(WEBHOOK_QUEUE);
            let (monitor, backoff) = (monitor.clone(), options.webhook_backoff);
            std::thread::Builder::new()
                .name("cairn-webhooks".into())
                .spawn(move || deliver(rx, &*notifier, &monitor, backoff))
                .map(|_| tx)
        });
        let webhooks = match webhooks {
            Some(Ok(tx)) => Some(tx),
            Some(Err(e)) => {
                tracing::error!(error = %e, "webhook thread not started; alerts are not posted");
                None
            }
            None => None,
        };
        Live {
            monitor,
            log,
            options: LiveOptions {
                window_seconds: options.window_seconds.max(1),
                retention_seconds: options.retention_seconds.max(1),
                ..options
            },
            gauges: Mutex::default(),
            alerts: Mutex::default(),
            leading: AtomicBool::new(false),
            evaluations: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            maintained_ms: std::sync::atomic::AtomicI64::new(0),
            webhooks,
            webhooks_dropped: AtomicU64::new(0),
        }
    }

    /// The monitor (references, windows, labels, rules).
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The prediction log, when predictions are logged.
    pub fn log(&self) -> Option<&PredictionLog> {
        self.log.as_ref()
    }

    /// The default window, in seconds.
    pub fn window_seconds(&self) -> u64 {
        self.options.window_seconds
    }

    /// The id an answered request is logged under: the caller's (`given`, when not empty),
    /// or one unique to this process (its start time and a counter). `None` when nothing is
    /// logged.
    pub fn request_id(&self, given: Option<&str>) -> Option<String> {
        self.log.as_ref()?;
        Some(match given.filter(|id| !id.is_empty()) {
            Some(id) => id.to_owned(),
            None => made_request_id(self.next_id.fetch_add(1, Relaxed)),
        })
    }

    /// Stages one answered request for the log; never blocks on the writer or fails the
    /// request.
    pub fn record(
        &self,
        request_id: &str,
        model: &str,
        version: &str,
        latency: Duration,
        inputs: &[TensorRef],
        outputs: &[TensorRef],
    ) {
        if let Some(log) = &self.log {
            log.record_tensors(
                request_id,
                model,
                version,
                now_ms(),
                latency.as_micros().min(i64::MAX as u128) as i64,
                inputs,
                outputs,
            );
        }
    }

    /// Writes the predictions queued so far. Blocks.
    pub fn flush(&self) {
        if let Some(log) = &self.log {
            log.flush();
        }
    }

    /// The window of `seconds` (the default window when `None`) ending now, in ms.
    pub fn recent(&self, seconds: Option<u64>) -> (i64, i64) {
        let seconds = seconds.unwrap_or(self.options.window_seconds);
        let to = now_ms() + 1;
        (to - (seconds as i64).saturating_mul(1000), to)
    }

    fn lease_ms(&self) -> i64 {
        (self.options.interval.as_millis() as i64)
            .saturating_mul(3)
            .max(1_000)
    }

    /// Takes or renews the evaluation lease; `false` when another replica holds it.
    fn hold_lease(&self) -> bool {
        match self.monitor.state().try_lease(
            EVALUATION_LEASE,
            &self.options.holder,
            now_ms(),
            self.lease_ms(),
        ) {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "evaluation lease not taken");
                false
            }
        }
    }

    /// One evaluation, when this replica holds the lease: drift and metrics of every version
    /// with a reference over the window, the gauges updated, alert rules checked (events
    /// recorded, webhooks queued), old predictions and labels deleted. Answers whether it ran.
    /// Blocks.
    pub fn evaluate(&self) -> bool {
        self.flush();
        if let Some(log) = &self.log {
            let failed = lock(&log.counters().last_error).take();
            if let Some(e) = failed {
                tracing::error!(error = %e, "prediction log file not written");
            }
        }
        if !self.hold_lease() {
            self.leading.store(false, Relaxed);
            return false;
        }
        if !self.leading.swap(true, Relaxed) {
            // Newly leading: another replica may have fired or resolved alerts meanwhile.
            match self.monitor.alert_events(None) {
                Ok(events) => *lock(&self.alerts) = AlertState::from_events(&events),
                Err(e) => tracing::warn!(error = %e, "alert events not read"),
            }
        }
        self.maintain();
        let versions = self.monitor.referenced_versions().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "references not read");
            Vec::new()
        });
        let (from, to) = self.recent(None);
        let mut computed = BTreeMap::new();
        for (model, version) in &versions {
            computed.insert(
                (model.clone(), version.clone()),
                self.gauges_of(model, version, from, to),
            );
        }
        let events = self.check_rules(&versions, &computed, (from, to));
        // The rules took time: fire only while still the holder, so two replicas never both
        // fire one crossing.
        if !events.is_empty() && !self.hold_lease() {
            self.leading.store(false, Relaxed);
            return false;
        }
        for (event, url) in events {
            self.fire(event, url);
        }
        *lock(&self.gauges) = computed;
        self.evaluations.fetch_add(1, Relaxed);
        true
    }

    /// Retention and compaction, at most every [`MAINTENANCE_EVERY`] (they list the log's
    /// partitions, which costs requests on a bucket): predictions and labels past retention
    /// deleted, the hours of the last two days that ended [`COMPACT_AFTER`] ago merged into
    /// one file each.
    fn maintain(&self) {
        let now = now_ms();
        let last = self.maintained_ms.load(Relaxed);
        if last != 0 && now - last < MAINTENANCE_EVERY.as_millis() as i64 {
            return;
        }
        self.maintained_ms.store(now, Relaxed);
        let (expired, _) = self.recent(Some(self.options.retention_seconds));
        if let Err(e) = self.monitor.prune_predictions(expired) {
            tracing::warn!(error = %e, "old predictions not deleted");
        }
        if let Err(e) = self.monitor.prune_labels(expired) {
            tracing::warn!(error = %e, "old labels not deleted");
        }
        let settled = now - COMPACT_AFTER.as_millis() as i64;
        match self
            .monitor
            .compact_predictions(settled - 2 * 24 * crate::monitor::HOUR_MS, settled)
        {
            Ok(0) => {}
            Ok(hours) => tracing::info!(hours, "prediction log compacted"),
            Err(e) => tracing::warn!(error = %e, "prediction log not compacted"),
        }
    }

    fn gauges_of(&self, model: &str, version: &str, from: i64, to: i64) -> VersionGauges {
        let window = match self.monitor.window(model, version, from, to) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(model, version, error = %e, "prediction log not read");
                return VersionGauges::default();
            }
        };
        let drift = self
            .monitor
            .window_drift(model, version, &window, &DriftOptions::default())
            .ok()
            .map(|d| d.report);
        // A sampled window holds only some rows: metrics then stream every row again.
        let metrics = if window.rows > window.keys.len() as u64 {
            self.monitor.metrics(model, version, from, to, to - from)
        } else {
            self.monitor
                .labels_for(&window.keys)
                .and_then(|labels| window_metrics(&window, to - from, &labels))
        };
        let metrics = metrics
            .map_err(
                |e| tracing::warn!(model, version, error = %e, "labelled metrics not computed"),
            )
            .ok()
            .and_then(|b| b.into_iter().next())
            .filter(|b| b.labeled > 0);
        VersionGauges {
            predictions: window.rows,
            drift,
            metrics,
        }
    }

    /// The events the rules give now (firing or resolving), alert state updated.
    fn check_rules(
        &self,
        versions: &[(String, String)],
        computed: &BTreeMap<(String, String), VersionGauges>,
        (from, to): (i64, i64),
    ) -> Vec<(AlertEvent, Option<String>)> {
        let rules = match self.monitor.alert_rules() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "alert rules not read");
                return Vec::new();
            }
        };
        let mut events = Vec::new();
        for rule in &rules {
            for (model, version) in versions.iter().filter(|(m, v)| rule.watches(m, v)) {
                let default_window = rule.window_seconds == self.options.window_seconds;
                let (value, window) = match computed.get(&(model.clone(), version.clone())) {
                    Some(g) if default_window => (
                        rule.metric.value(g.drift.as_ref(), g.metrics.as_ref()),
                        (from, to),
                    ),
                    _ => {
                        let (f, t) = self.recent(Some(rule.window_seconds));
                        let value = if rule.metric.needs_labels() {
                            let m = self.monitor.metrics(model, version, f, t, t - f).ok();
                            rule.metric.value(None, m.as_ref().and_then(|b| b.first()))
                        } else {
                            let d = self
                                .monitor
                                .drift(model, version, f, t, &DriftOptions::default())
                                .ok();
                            rule.metric.value(d.as_ref().map(|d| &d.report), None)
                        };
                        (value, (f, t))
                    }
                };
                let Some(value) = value else { continue };
                if let Some(event) = lock(&self.alerts).observe(rule, version, value, window) {
                    events.push((event, rule.webhook.clone()));
                }
            }
        }
        events
    }

    /// Records an event and queues its webhook to `url`.
    fn fire(&self, mut event: AlertEvent, url: Option<String>) {
        if url.is_some() {
            event.webhook = Some(if self.webhooks.is_some() {
                "queued".into()
            } else {
                "not sent: no webhook client".into()
            });
        }
        tracing::info!(
            alert = event.alert,
            state = event.state,
            model = event.model,
            version = event.version,
            value = event.value,
            "alert"
        );
        let id = match self.monitor.record_alert(&event) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "alert not recorded");
                return;
            }
        };
        if let (Some(url), Some(queue)) = (url, &self.webhooks) {
            let delivery = Delivery {
                url,
                event,
                event_id: id,
            };
            if queue.try_send(delivery).is_err() {
                self.webhooks_dropped.fetch_add(1, Relaxed);
                tracing::error!("webhook queue full; an alert was not posted");
            }
        }
    }

    /// Runs [`Live::evaluate`] every `interval` on a thread of its own.
    pub fn spawn_evaluator(self: Arc<Self>) {
        let interval = self.options.interval;
        let started = std::thread::Builder::new()
            .name("cairn-monitor".into())
            .spawn(move || loop {
                self.evaluate();
                std::thread::sleep(interval);
            });
        if let Err(e) = started {
            tracing::error!(error = %e, "monitoring evaluations not started");
        }
    }

    /// Evaluations this replica ran (under the lease).
    pub fn evaluations(&self) -> u64 {
        self.evaluations.load(Relaxed)
    }

    /// Webhooks dropped because their queue was full.
    pub fn webhooks_dropped(&self) -> u64 {
        self.webhooks_dropped.load(Relaxed)
    }

    /// The gauges of the last evaluation this replica ran.
    pub fn gauges(&self) -> BTreeMap<(String, String), VersionGauges> {
        lock(&self.gauges).clone()
    }

    /// (rule, model, version) -> whether it fires. While this replica leads the evaluation,
    /// its own state; otherwise the recorded events' (the leader records every change there),
    /// so every replica answers alike.
    pub fn alert_states(&self) -> crate::Result<AlertStates> {
        let collect = |state: &AlertState| state.states().map(|(k, f)| (k.clone(), f)).collect();
        if self.leading.load(Relaxed) {
            return Ok(collect(&lock(&self.alerts)));
        }
        Ok(collect(&AlertState::from_events(
            &self.monitor.alert_events(None)?,
        )))
    }

    /// Whether this replica held the evaluation lease at its last evaluation.
    pub fn leading(&self) -> bool {
        self.leading.load(Relaxed)
    }
}

/// (rule, model, version) and whether that alert fires.
pub type AlertStates = Vec<((String, String, String), bool)>;

/// Posts queued webhooks one by one, each up to [`WEBHOOK_ATTEMPTS`] times (a 2xx answer
/// ends it), and writes the outcome into the recorded event.
fn deliver(
    queue: Receiver<Delivery>,
    notifier: &dyn Notifier,
    monitor: &Monitor,
    backoff: Duration,
) {
    for Delivery {
        url,
        mut event,
        event_id,
    } in queue
    {
        event.webhook = None;
        let body = serde_json::to_string(&event).unwrap_or_default();
        let mut outcome = String::new();
        for attempt in 0..WEBHOOK_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(backoff * 2u32.pow(attempt - 1));
            }
            outcome = match notifier.post(&url, &body) {
                Ok(status) => status.to_string(),
                Err(e) => e,
            };
            if outcome.starts_with('2') && outcome.len() == 3 {
                break;
            }
            tracing::warn!(url, attempt = attempt + 1, outcome, "webhook not accepted");
        }
        event.webhook = Some(outcome);
        if let Err(e) = monitor.set_alert_outcome(event_id, &event) {
            tracing::warn!(error = %e, "webhook outcome not recorded");
        }
    }
}

/// `<process start ms, hex>-<n>`: unique to this process, written by hand because it is made
/// on every request and `format!` costs several times more.
fn made_request_id(n: u64) -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let prefix = PREFIX.get_or_init(|| format!("{:x}-", now_ms()));
    let mut digits = [0u8; 20];
    let (mut at, mut rest) = (digits.len(), n);
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut id = String::with_capacity(prefix.len() + digits.len() - at);
    id.push_str(prefix);
    id.extend(digits[at..].iter().map(|&d| char::from(d)));
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::AlertRule;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn made_request_ids_are_the_start_in_hex_and_the_counter_in_decimal() {
        let first = made_request_id(0);
        let (start, n) = first.split_once('-').unwrap();
        let start = i64::from_str_radix(start, 16).unwrap();
        assert!((now_ms() - start).abs() < 3_600_000, "{first}");
        assert_eq!(n, "0");
        for n in [7, 10, 1_234_567, u64::MAX] {
            assert_eq!(made_request_id(n), format!("{start:x}-{n}"));
        }
    }

    /// Answers 500 to the first `failures` posts, then 200; counts every post.
    struct Flaky {
        failures: usize,
        posts: AtomicUsize,
    }

    impl Notifier for Flaky {
        fn post(&self, _url: &str, body: &str) -> Result<u16, String> {
            assert!(body.contains("\"state\":\"firing\""), "{body}");
            let n = self.posts.fetch_add(1, Relaxed);
            Ok(if n < self.failures { 500 } else { 200 })
        }
    }

    /// A replica on the shared store and log folder under `dir`, logging its predictions.
    fn replica(dir: &std::path::Path, holder: &str, notifier: Arc<Flaky>) -> Live {
        let store = cairn_store::SqlStore::open_sqlite(dir.join("cairn.db")).unwrap();
        let logs = cairn_store::LocalArtifactStore::new(dir.join("monitoring")).unwrap();
        let monitor = Monitor::open(Arc::new(logs), Arc::new(store));
        let log = PredictionLog::start(&monitor, crate::monitor::LogOptions::default()).unwrap();
        Live::new(
            monitor,
            Some(log),
            LiveOptions {
                window_seconds: 3600,
                retention_seconds: 86_400,
                interval: Duration::from_secs(60),
                holder: holder.into(),
                webhook_backoff: Duration::from_millis(1),
            },
            Some(notifier),
        )
    }

    #[test]
    fn one_replica_evaluates_and_a_crossing_fires_once_with_its_webhook_retried() {
        let dir = tempfile::tempdir().unwrap();
        let notifier = Arc::new(Flaky {
            failures: 2,
            posts: AtomicUsize::new(0),
        });
        let a = replica(dir.path(), "a", notifier.clone());
        let b = replica(dir.path(), "b", notifier.clone());
        // A reference of x in 0..50, and traffic far from it through both replicas.
        let data = dir.path().join("train.csv");
        let rows: String = (0..50).map(|i| format!("{i},{}\n", i % 2)).collect();
        std::fs::write(&data, format!("x,y\n{rows}")).unwrap();
        a.monitor()
            .set_reference("m", "1", &data, Some("y"), None)
            .unwrap();
        a.monitor()
            .add_alert_rule(
                AlertRule::new(
                    "drift",
                    "m",
                    Some("1"),
                    "drift_share",
                    Some(0.5),
                    None,
                    None,
                    Some("http://hook"),
                )
                .unwrap(),
            )
            .unwrap();
        for (i, replica) in [&a, &b].into_iter().enumerate() {
            let values: Vec<f64> = (0..25).map(|v| 1_000.0 + (v + 25 * i) as f64).collect();
            let x = crate::monitor::LoggedTensor {
                name: "x".into(),
                shape: vec![25],
                values: crate::monitor::Values::Float(values),
            };
            replica.record(
                &format!("r{i}"),
                "m",
                "1",
                Duration::from_micros(5),
                &[x.as_ref()],
                &[],
            );
            replica.flush();
        }
        // The first to evaluate holds the lease; the other does nothing while it is held.
        assert!(a.evaluate());
        assert!(!b.evaluate());
        assert!(a.evaluate());
        assert_eq!((a.evaluations(), b.evaluations()), (2, 0));
        // The holder saw both replicas' traffic: the log is shared.
        let gauges = a.gauges();
        let seen = &gauges[&("m".to_string(), "1".to_string())];
        assert_eq!(seen.predictions, 50);
        assert_eq!(seen.drift.as_ref().map(|d| d.share), Some(1.0));
        // One event however often it is evaluated, and its webhook delivered on the third try.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let outcome = loop {
            let events = a.monitor().alert_events(None).unwrap();
            assert_eq!(events.len(), 1, "{events:?}");
            if events[0].webhook.as_deref() == Some("200") || std::time::Instant::now() > deadline {
                break events[0].webhook.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(outcome.as_deref(), Some("200"));
        assert_eq!(notifier.posts.load(Relaxed), 3);
        // The holder is gone (its lease released, as after expiry): the other takes over,
        // knows the alert already fires from the store, and does not fire it again.
        a.monitor()
            .state()
            .release_lease(EVALUATION_LEASE, "a")
            .unwrap();
        assert!(b.evaluate());
        assert_eq!(b.monitor().alert_events(None).unwrap().len(), 1);
        let firing = vec![(("drift".into(), "m".into(), "1".into()), true)];
        assert_eq!(b.alert_states().unwrap(), firing);
        assert!(!a.evaluate());
        // The replica that does not lead answers from the store, as the leader does.
        assert!(!a.leading());
        assert_eq!(a.alert_states().unwrap(), firing);
    }
}
