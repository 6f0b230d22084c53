//! `cairn server`: configuration (MLflow's flag names), wiring and graceful shutdown.
use anyhow::Context;
use cairn_api::guard::AllowedHosts;
use cairn_api::listen::ConnectionLimits;
use cairn_api::{ApiOptions, AppState};
use cairn_core::ArtifactStore;
use cairn_core::{Registry, Tracking};
use cairn_store::{LocalArtifactStore, ObjectArtifactStore, SqlStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Flags of `cairn server`, named as `mlflow server` names them.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Metadata store: `sqlite:///path.db` or `postgresql://user@host:port/db`.
    /// Default: `sqlite:///<home>/cairn.db`.
    #[arg(long, env = "CAIRN_BACKEND_STORE_URI")]
    pub backend_store_uri: Option<String>,
    /// Where proxied artifacts live: a folder, or `s3://bucket/prefix` (credentials, region
    /// and endpoint from the usual `AWS_*` variables). Default: `<home>/artifacts`.
    #[arg(long)]
    pub artifacts_destination: Option<PathBuf>,
    /// Require a user for every request (HTTP Basic or a token, as the MLflow client sends
    /// them), with MLflow's permissions. The first start creates the user `admin` with the
    /// password in `CAIRN_ADMIN_PASSWORD`, or a generated one written to `<home>/admin-password`.
    #[arg(long, conflicts_with = "no_auth")]
    pub auth: bool,
    /// Serve without authentication on an address other than loopback (one of `--auth` and
    /// `--no-auth` is required there, so no one exposes an open server by accident).
    #[arg(long)]
    pub no_auth: bool,
    /// With `--auth`: the permission users have on what nobody granted them anything on
    /// (READ, USE, EDIT, MANAGE, NO_PERMISSIONS), as MLflow's `default_permission`.
    #[arg(long, default_value = "READ")]
    pub default_permission: String,
    /// Serve this feature project's online features (`POST /get-online-features`, `POST
    /// /push`, Feast's protocol) from the metadata store, as `cairn features serve` does; every
    /// replica reads the same definitions and online values.
    #[arg(long, value_name = "PROJECT")]
    pub features_project: Option<String>,
    /// The online store of `--features-project`: `redis://HOST[:PORT][/DB]`, or (default) the
    /// metadata store's database.
    #[arg(long, env = "CAIRN_ONLINE_STORE", requires = "features_project")]
    pub features_online_store: Option<String>,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub runner: RunnerArgs,
    #[command(flatten)]
    pub monitoring: MonitoringArgs,
}

/// Limits and checks of the HTTP surface, shared by `cairn server` and `cairn serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct HttpArgs {
    /// Largest JSON request body in bytes; larger requests get 413.
    #[arg(long, default_value_t = cairn_api::DEFAULT_MAX_JSON_BYTES)]
    pub max_request_bytes: usize,
    /// Largest artifact upload in bytes; larger uploads get 413 and leave no file.
    #[arg(long, default_value_t = cairn_api::artifacts::DEFAULT_MAX_ARTIFACT_BYTES)]
    pub max_artifact_bytes: u64,
    /// Most client connections open at once; more wait in the listen backlog.
    #[arg(long, default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Seconds a client may take to send a request's headers.
    #[arg(long, default_value_t = ConnectionLimits::default().header_read_timeout.as_secs_f64())]
    pub header_read_timeout_secs: f64,
    /// Seconds a request body may pause between two chunks.
    #[arg(long, default_value_t = ConnectionLimits::default().body_idle_timeout.as_secs_f64())]
    pub body_idle_timeout_secs: f64,
    /// Seconds a request may take before it is answered 503 (artifact uploads excepted).
    #[arg(long, default_value_t = ConnectionLimits::default().request_timeout.as_secs_f64())]
    pub request_timeout_secs: f64,
    /// Extra names the `Host` header may carry (comma-separated; `*.example.com` for a
    /// domain, `*` for any). Always allowed: localhost names and the bound address (with
    /// `--host 0.0.0.0`: any IP address and this machine's name).
    #[arg(long, value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpArgs {
    fn default() -> Self {
        let limits = ConnectionLimits::default();
        HttpArgs {
            max_request_bytes: cairn_api::DEFAULT_MAX_JSON_BYTES,
            max_artifact_bytes: cairn_api::artifacts::DEFAULT_MAX_ARTIFACT_BYTES,
            max_connections: limits.max_connections,
            header_read_timeout_secs: limits.header_read_timeout.as_secs_f64(),
            body_idle_timeout_secs: limits.body_idle_timeout.as_secs_f64(),
            request_timeout_secs: limits.request_timeout.as_secs_f64(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Seconds from a flag: a positive, finite number of at most a day.
fn flag_secs(name: &str, secs: f64) -> anyhow::Result<std::time::Duration> {
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 {
        anyhow::bail!("--{name}: {secs} is not a number of seconds between 0 and 86400");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

impl HttpArgs {
    /// The API options these flags set, with the serving flags of `runner`.
    pub fn api_options(&self, runner: &RunnerArgs) -> ApiOptions {
        ApiOptions {
            max_json_bytes: self.max_request_bytes,
            max_artifact_bytes: self.max_artifact_bytes,
            runner: runner.options(),
            loaded_models: cairn_api::served::CacheBounds {
                max_models: runner.max_loaded_models.max(1),
                max_bytes: runner.max_loaded_model_bytes,
            },
        }
    }

    /// The connection limits, checked.
    pub fn limits(&self) -> anyhow::Result<ConnectionLimits> {
        if self.max_connections == 0 {
            anyhow::bail!("--max-connections must be at least 1");
        }
        Ok(ConnectionLimits {
            max_connections: self.max_connections,
            header_read_timeout: flag_secs(
                "header-read-timeout-secs",
                self.header_read_timeout_secs,
            )?,
            body_idle_timeout: flag_secs("body-idle-timeout-secs", self.body_idle_timeout_secs)?,
            request_timeout: flag_secs("request-timeout-secs", self.request_timeout_secs)?,
        })
    }

    /// Adds the Host and cross-site checks for a server bound to `host`.
    pub fn protect(&self, router: axum::Router, host: &str) -> axum::Router {
        let machine = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let hosts = AllowedHosts::for_bind(host, machine.as_deref()).with(&self.allowed_hosts);
        cairn_api::guard::protect(router, hosts)
    }
}

/// Binds, then serves `router` with the flags' limits and checks until a signal arrives (or
/// `stop`, when given, resolves).
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    http: &HttpArgs,
    host: &str,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let limits = http.limits()?;
    let router = http.protect(router, host);
    cairn_api::listen::serve(listener, router, limits, async {
        tokio::select! { _ = shutdown_signal() => {}, _ = stop => {} }
    })
    .await
    .context("server failed")
}

// Monitoring defaults, shared by the flags and by `MonitoringArgs::default()` (the quickstart).
const PREDICTION_LOG_BUFFER: usize = 10_000;
const PREDICTION_LOG_FLUSH_SECS: f64 = 5.0;
const MONITOR_INTERVAL_SECS: f64 = 60.0;
const MONITOR_WINDOW: &str = "1h";
const PREDICTION_LOG_RETENTION: &str = "30d";

/// Live monitoring of served models.
#[derive(clap::Args, Debug, Clone)]
pub struct MonitoringArgs {
    /// Do not log served predictions (no drift or label metrics for served models).
    #[arg(long)]
    pub no_prediction_log: bool,
    /// Predictions waiting to be written; beyond it they are dropped (and counted), never
    /// delaying a request.
    #[arg(long, default_value_t = PREDICTION_LOG_BUFFER)]
    pub prediction_log_buffer: usize,
    /// Longest a logged prediction waits before it is written to Parquet, in seconds.
    #[arg(long, default_value_t = PREDICTION_LOG_FLUSH_SECS)]
    pub prediction_log_flush_secs: f64,
    /// Seconds between monitoring evaluations (drift, label metrics, gauges, alert rules).
    #[arg(long, default_value_t = MONITOR_INTERVAL_SECS)]
    pub monitor_interval_secs: f64,
    /// How far back evaluations look by default (like 15m, 1h, 1d).
    #[arg(long, default_value = MONITOR_WINDOW)]
    pub monitor_window: String,
    /// Logged predictions older than this are deleted (like 7d, 30d).
    #[arg(long, default_value = PREDICTION_LOG_RETENTION)]
    pub prediction_log_retention: String,
    /// Where the prediction log's Parquet files go: a folder, or `s3://bucket/prefix` (shared
    /// by replicas). Default: `<home>/monitoring`.
    #[arg(long)]
    pub prediction_log_destination: Option<PathBuf>,
}

impl Default for MonitoringArgs {
    fn default() -> Self {
        MonitoringArgs {
            no_prediction_log: false,
            prediction_log_buffer: PREDICTION_LOG_BUFFER,
            prediction_log_flush_secs: PREDICTION_LOG_FLUSH_SECS,
            monitor_interval_secs: MONITOR_INTERVAL_SECS,
            monitor_window: MONITOR_WINDOW.into(),
            prediction_log_retention: PREDICTION_LOG_RETENTION.into(),
            prediction_log_destination: None,
        }
    }
}

/// Posts alerts with a short timeout (on the monitor's webhook thread, never the evaluation's).
struct WebhookClient(ureq::Agent);

impl cairn_monitor::Notifier for WebhookClient {
    fn post(&self, url: &str, body: &str) -> Result<u16, String> {
        self.0
            .post(url)
            .header("content-type", "application/json")
            .send(body)
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("webhook failed: {e}"))
    }
}

/// A name for this process in leases: host, process id and start time, so two replicas (or a
/// restarted one) never share one.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "cairn".into());
    format!(
        "{host}-{}-{:x}",
        std::process::id(),
        cairn_core::now_millis()
    )
}

impl MonitoringArgs {
    /// Monitoring with its prediction log in `--prediction-log-destination` (unless turned
    /// off) and its shared state in `state`.
    pub fn open(
        &self,
        home: &Path,
        state: Arc<dyn cairn_core::MonitoringStore>,
    ) -> anyhow::Result<Arc<cairn_api::monitoring::Monitoring>> {
        use cairn_monitor::{
            parse_duration, Live, LiveOptions, LogOptions, Monitor, PredictionLog,
        };
        let window = parse_duration(&self.monitor_window)
            .map_err(|e| anyhow::anyhow!("--monitor-window: {e}"))?;
        let retention = parse_duration(&self.prediction_log_retention)
            .map_err(|e| anyhow::anyhow!("--prediction-log-retention: {e}"))?;
        let logs = open_destination(
            "--prediction-log-destination",
            self.prediction_log_destination.as_deref(),
            &home.join("monitoring"),
        )?;
        let monitor = Monitor::open(logs, state);
        let log = if self.no_prediction_log {
            None
        } else {
            Some(PredictionLog::start(
                &monitor,
                LogOptions {
                    capacity: self.prediction_log_buffer.max(1),
                    flush_interval: std::time::Duration::from_secs_f64(
                        self.prediction_log_flush_secs.clamp(0.01, 3600.0),
                    ),
                    ..LogOptions::default()
                },
            )?)
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .new_agent();
        let live = Live::new(
            monitor,
            log,
            LiveOptions {
                window_seconds: window,
                retention_seconds: retention,
                interval: self.interval(),
                holder: replica_name(),
                webhook_backoff: std::time::Duration::from_secs(1),
            },
            Some(Arc::new(WebhookClient(agent))),
        );
        Ok(Arc::new(cairn_api::monitoring::Monitoring::new(live)))
    }

    pub fn interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.monitor_interval_secs.clamp(0.05, 86_400.0))
    }
}

impl ServerArgs {
    /// The defaults: the home's own SQLite store and artifact folder.
    pub fn local() -> Self {
        ServerArgs {
            host: "127.0.0.1".into(),
            port: 5000,
            backend_store_uri: std::env::var("CAIRN_BACKEND_STORE_URI").ok(),
            artifacts_destination: None,
            auth: false,
            no_auth: false,
            default_permission: "READ".into(),
            features_project: None,
            features_online_store: None,
            http: HttpArgs::default(),
            runner: RunnerArgs::default(),
            monitoring: MonitoringArgs::default(),
        }
    }
}

/// How served models run: dynamic batching (off by default) and the admission bound.
#[derive(clap::Args, Debug, Clone)]
pub struct RunnerArgs {
    /// Merge concurrent requests into batches of up to this many rows (1 = no batching).
    #[arg(long, default_value_t = 1)]
    pub max_batch_size: usize,
    /// Longest a request waits for others to join its batch, in milliseconds.
    #[arg(long, default_value_t = 2.0)]
    pub max_batch_delay_ms: f64,
    /// Most requests admitted per model version at once; more get 503.
    #[arg(long, default_value_t = 1024)]
    pub max_queue: usize,
    /// Most registered model versions `cairn server` keeps loaded; the least recently used
    /// is unloaded first.
    #[arg(long, default_value_t = cairn_api::served::CacheBounds::default().max_models)]
    pub max_loaded_models: usize,
    /// Most bytes of ONNX graphs `cairn server` keeps loaded (the newest always stays).
    #[arg(long, default_value_t = cairn_api::served::CacheBounds::default().max_bytes)]
    pub max_loaded_model_bytes: u64,
}

impl Default for RunnerArgs {
    fn default() -> Self {
        let d = cairn_serving::RunnerOptions::default();
        RunnerArgs {
            max_batch_size: d.max_batch_size,
            max_batch_delay_ms: d.max_batch_delay.as_secs_f64() * 1000.0,
            max_queue: d.max_queue,
            max_loaded_models: cairn_api::served::CacheBounds::default().max_models,
            max_loaded_model_bytes: cairn_api::served::CacheBounds::default().max_bytes,
        }
    }
}

impl RunnerArgs {
    pub fn options(&self) -> cairn_serving::RunnerOptions {
        cairn_serving::RunnerOptions {
            max_batch_size: self.max_batch_size.max(1),
            max_batch_delay: std::time::Duration::from_secs_f64(
                self.max_batch_delay_ms.max(0.0) / 1000.0,
            ),
            max_queue: self.max_queue.max(1),
        }
    }
}

/// A configured, not yet listening, server.
pub struct Built {
    pub router: axum::Router,
    pub backend_description: String,
    /// Started (its evaluations) once the runtime serves.
    pub monitoring: Arc<cairn_api::monitoring::Monitoring>,
}

/// The metadata store at `backend`, or the home's SQLite file when none is given.
pub fn metadata_store(backend: Option<&str>, home: &Path) -> anyhow::Result<Arc<SqlStore>> {
    std::fs::create_dir_all(home)
        .with_context(|| format!("cannot create home {}", home.display()))?;
    let backend = backend
        .map(str::to_owned)
        .unwrap_or_else(|| default_backend(home));
    let store = SqlStore::open(&backend)
        .with_context(|| format!("cannot open backend store {}", redact_uri(&backend)))?;
    Ok(Arc::new(store))
}

fn default_backend(home: &Path) -> String {
    format!("sqlite:///{}", home.join("cairn.db").display())
}

/// Opens the metadata store and the artifact folder a server (or `cairn serve models:/...`)
/// works on. Returns the state and the store's printable description (no password).
pub fn open_state(args: &ServerArgs, home: &Path) -> anyhow::Result<(AppState, String)> {
    open_stores(args, home).map(|(state, shown, _)| (state, shown))
}

/// [`open_state`], with the metadata store itself (monitoring keeps its state there too).
pub fn open_stores(
    args: &ServerArgs,
    home: &Path,
) -> anyhow::Result<(AppState, String, Arc<SqlStore>)> {
    std::fs::create_dir_all(home)
        .with_context(|| format!("cannot create home {}", home.display()))?;
    let home = std::fs::canonicalize(home)?;
    let backend = args
        .backend_store_uri
        .clone()
        .unwrap_or_else(|| default_backend(&home));
    let shown = redact_uri(&backend);
    let store =
        SqlStore::open(&backend).with_context(|| format!("cannot open backend store {shown}"))?;
    let artifacts = open_artifacts(args.artifacts_destination.as_deref(), &home)?;
    let store = Arc::new(store);
    let tracking = Tracking::new(store.clone(), "mlflow-artifacts:");
    let registry = Registry::new(store.clone(), tracking.clone());
    let authn = if args.auth {
        Some(open_auth(args, store.clone(), &home)?)
    } else {
        None
    };
    let features = match args.features_project.as_deref() {
        Some(project) => {
            let online = crate::features::online_store(
                args.features_online_store.as_deref(),
                store.clone(),
            )?;
            Some(Arc::new(cairn_api::features::FeatureServer::new(
                store.clone(),
                online,
                project,
            )))
        }
        None => None,
    };
    let sql = store.clone();
    let state = AppState {
        traces: cairn_core::Traces::new(store.clone(), tracking.clone()),
        evaluation: cairn_core::Evaluation::new(store.clone(), tracking.clone()),
        lineage: cairn_core::lineage::Lineage::new(registry.clone(), store),
        registry,
        tracking,
        artifacts,
        authn,
        features,
    };
    Ok((state, shown, sql))
}

/// Users and permissions on the metadata store; on the first start, the admin user.
fn open_auth(
    args: &ServerArgs,
    store: Arc<SqlStore>,
    home: &Path,
) -> anyhow::Result<Arc<cairn_api::auth::Authn>> {
    use cairn_core::auth::{Auth, Permission};
    let default = Permission::parse(&args.default_permission.to_ascii_uppercase())
        .map_err(|e| anyhow::anyhow!("--default-permission: {e}"))?;
    if default == Permission::Deny {
        anyhow::bail!(
            "--default-permission DENY would lock out everyone but admins; use NO_PERMISSIONS"
        );
    }
    let auth = Auth::new(store, Arc::new(cairn_api::auth::Argon2Hasher), default);
    let given = std::env::var("CAIRN_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let generated = cairn_api::auth::bootstrap_admin(&auth, given.as_deref())
        .map_err(|e| anyhow::anyhow!("cannot create the admin user: {e}"))?;
    if let Some(password) = generated {
        let file = home.join("admin-password");
        write_private(&file, &format!("{password}\n"))
            .with_context(|| format!("cannot write {}", file.display()))?;
        println!(
            "Created the user 'admin'; its password is in {} (readable only by you)",
            file.display()
        );
    }
    Ok(cairn_api::auth::Authn::new(auth))
}

/// Writes `text` to a new file only its owner may read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// `uri` fit to print: the user-info part (`user:password@`) and any `password=` query
/// parameter are replaced, so a password never reaches a terminal or a log.
pub fn redact_uri(uri: &str) -> String {
    let (head, query) = match uri.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (uri, None),
    };
    let head = match head.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://…@{}", &rest[at + 1..]),
                None => head.to_string(),
            }
        }
        None => head.to_string(),
    };
    match query {
        None => head,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=…"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{head}?{}", params.join("&"))
        }
    }
}

/// The artifact store an `--artifacts-destination` names: a local folder (or a `file:///`
/// URI of one; `<home>/artifacts` when none is given) or an S3-compatible bucket
/// (`s3://bucket/prefix`, reached with the usual `AWS_*` variables and checked at start). A
/// URI of any other scheme is refused, naming it, so no one believes bytes are in a store
/// that never sees them.
pub fn open_artifacts(dest: Option<&Path>, home: &Path) -> anyhow::Result<Arc<dyn ArtifactStore>> {
    open_destination("--artifacts-destination", dest, &home.join("artifacts"))
}

/// The store a destination flag names (`flag` in messages), or the folder `default`.
pub fn open_destination(
    flag: &str,
    dest: Option<&Path>,
    default: &Path,
) -> anyhow::Result<Arc<dyn ArtifactStore>> {
    let dir = match dest {
        None => default.to_path_buf(),
        Some(dest) => {
            let text = dest.to_string_lossy();
            if text.starts_with("s3://") {
                let (bucket, prefix) = cairn_data::remote::s3_from_env(&text)
                    .map_err(|e| anyhow::anyhow!("{flag} {e}"))?;
                let ranges = match std::env::var("CAIRN_S3_DOWNLOAD_RANGES") {
                    Ok(n) => n.trim().parse::<usize>().map_err(|_| {
                        anyhow::anyhow!(
                            "CAIRN_S3_DOWNLOAD_RANGES must be a number of ranged requests (0-8), not '{n}'"
                        )
                    })?,
                    Err(_) => 0,
                };
                let store =
                    ObjectArtifactStore::new(bucket, &prefix, &text)?.with_ranged_reads(ranges);
                store.check().with_context(|| {
                    format!("{flag} {text}: the bucket cannot be listed (check AWS_ENDPOINT_URL, AWS_REGION and the credentials)")
                })?;
                return Ok(Arc::new(store));
            }
            local_destination(flag, dest)?
        }
    };
    let store = LocalArtifactStore::new(&dir)
        .with_context(|| format!("cannot use folder {}", dir.display()))?;
    Ok(Arc::new(store))
}

/// The local folder a destination other than `s3://` names: a folder or a `file:///` URI of
/// one; any other scheme is refused.
fn local_destination(flag: &str, dest: &Path) -> anyhow::Result<PathBuf> {
    let text = dest.to_string_lossy();
    if let Some(path) = text.strip_prefix("file://") {
        if !path.starts_with('/') {
            anyhow::bail!("{flag} {text}: a file: URI must name an absolute folder (file:///path)");
        }
        return Ok(PathBuf::from(path));
    }
    let scheme_end = text.find(':');
    if let Some(end) = scheme_end {
        let scheme = &text[..end];
        let is_scheme = end > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme {
            anyhow::bail!(
                "{flag} {}: the {scheme}: scheme is not supported; \
                 give a local folder or s3://bucket/prefix",
                redact_uri(&text)
            );
        }
    }
    Ok(dest.to_path_buf())
}

/// Opens the stores and builds the router.
pub fn build(args: &ServerArgs, home: &Path) -> anyhow::Result<Built> {
    let (state, backend_description, store) = open_stores(args, home)?;
    let monitoring = args
        .monitoring
        .open(&std::fs::canonicalize(home)?, store.clone())?;
    let pages_state = state.clone();
    let router = cairn_api::router_with_pages(
        state,
        args.http.api_options(&args.runner),
        Some(monitoring.clone()),
        |serving| {
            Some(cairn_ui::routes(
                pages_state,
                serving,
                Some(home.join("data")),
            ))
        },
    );
    Ok(Built {
        router,
        backend_description,
        monitoring,
    })
}

/// [`build`] off the async runtime: the PostgreSQL client blocks on its own runtime.
pub async fn build_blocking(args: ServerArgs, home: PathBuf) -> anyhow::Result<Built> {
    tokio::task::spawn_blocking(move || build(&args, &home)).await?
}

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Binds the listener, reporting a taken port clearly.
pub async fn bind(host: &str, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port} (is another server using it?)"))?;
    Ok(listener)
}

/// Whether `host` is reachable only from this machine.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses to serve an address others can reach unless the user chose how to authenticate.
pub fn check_exposure(host: &str, auth: bool, no_auth: bool) -> anyhow::Result<()> {
    if is_loopback(host) || auth || no_auth {
        return Ok(());
    }
    anyhow::bail!(
        "--host {host} lets anyone who reaches this address use the server: choose --auth \
         (users and permissions, as MLflow's basic-auth) or --no-auth (anyone may create, \
         change and delete, for a network you trust)"
    )
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    check_exposure(&args.host, args.auth, args.no_auth)?;
    let home = crate::home_dir();
    let built = build_blocking(args.clone(), home).await?;
    built.monitoring.clone().spawn_evaluator();
    let listener = bind(&args.host, args.port).await?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(backend = built.backend_description, "store ready");
    // Tests and scripts read this line to find the port.
    println!("Cairn tracking server listening on http://{addr}");
    let monitoring = built.monitoring.clone();
    serve_until(
        listener,
        built.router,
        &args.http,
        &args.host,
        std::future::pending(),
    )
    .await?;
    tokio::task::spawn_blocking(move || monitoring.flush()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}
