//! `cairn server`: configuration (MLflow's flag names), wiring and graceful shutdown.
use anyhow::Context;
use cairn_api::{ApiOptions, AppState};
use cairn_core::{Registry, Tracking};
use cairn_store::{LocalArtifactStore, SqlStore};
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
    /// Folder for proxied artifacts. Default: `<home>/artifacts`.
    #[arg(long)]
    pub artifacts_destination: Option<PathBuf>,
    /// Largest JSON request body in bytes; larger requests get 413.
    #[arg(long, default_value_t = cairn_api::DEFAULT_MAX_JSON_BYTES)]
    pub max_request_bytes: usize,
    #[command(flatten)]
    pub runner: RunnerArgs,
    #[command(flatten)]
    pub monitoring: MonitoringArgs,
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
        }
    }
}

/// Posts alerts with a short timeout, so a slow receiver cannot stall evaluations.
struct WebhookClient(ureq::Agent);

impl cairn_api::monitoring::Notifier for WebhookClient {
    fn post(&self, url: &str, body: &serde_json::Value) -> Result<u16, String> {
        self.0
            .post(url)
            .header("content-type", "application/json")
            .send(body.to_string())
            .map(|r| r.status().as_u16())
            .map_err(|e| format!("webhook failed: {e}"))
    }
}

impl MonitoringArgs {
    /// Monitoring on `<home>/monitoring`, logging predictions unless turned off.
    pub fn open(&self, home: &Path) -> anyhow::Result<Arc<cairn_api::monitoring::Monitoring>> {
        use cairn_quality::monitor::{parse_duration, LogOptions, Monitor, PredictionLog};
        let window = parse_duration(&self.monitor_window)
            .map_err(|e| anyhow::anyhow!("--monitor-window: {e}"))?;
        let retention = parse_duration(&self.prediction_log_retention)
            .map_err(|e| anyhow::anyhow!("--prediction-log-retention: {e}"))?;
        let monitor = Monitor::open(&home.join("monitoring"))?;
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
        Ok(Arc::new(cairn_api::monitoring::Monitoring::new(
            monitor,
            log,
            window,
            retention,
            Some(Arc::new(WebhookClient(agent))),
        )))
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
            max_request_bytes: cairn_api::DEFAULT_MAX_JSON_BYTES,
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
}

impl Default for RunnerArgs {
    fn default() -> Self {
        let d = cairn_serving::RunnerOptions::default();
        RunnerArgs {
            max_batch_size: d.max_batch_size,
            max_batch_delay_ms: d.max_batch_delay.as_secs_f64() * 1000.0,
            max_queue: d.max_queue,
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
    pub monitor_interval: std::time::Duration,
}

fn default_backend(home: &Path) -> String {
    format!("sqlite:///{}", home.join("cairn.db").display())
}

/// Opens the metadata store and the artifact folder a server (or `cairn serve models:/...`)
/// works on. Returns the state and the store's printable description (no password).
pub fn open_state(args: &ServerArgs, home: &Path) -> anyhow::Result<(AppState, String)> {
    std::fs::create_dir_all(home)
        .with_context(|| format!("cannot create home {}", home.display()))?;
    let home = std::fs::canonicalize(home)?;
    let backend = args
        .backend_store_uri
        .clone()
        .unwrap_or_else(|| default_backend(&home));
    let store =
        SqlStore::open(&backend).with_context(|| format!("cannot open backend store {backend}"))?;
    let artifacts_dir = args
        .artifacts_destination
        .clone()
        .unwrap_or_else(|| home.join("artifacts"));
    let artifacts = LocalArtifactStore::new(&artifacts_dir)
        .with_context(|| format!("cannot use artifact folder {}", artifacts_dir.display()))?;
    let store = Arc::new(store);
    let tracking = Tracking::new(store.clone(), "mlflow-artifacts:");
    let registry = Registry::new(store.clone(), tracking.clone());
    let state = AppState {
        lineage: cairn_core::lineage::Lineage::new(registry.clone(), store),
        registry,
        tracking,
        artifacts: Arc::new(artifacts),
    };
    let shown = match backend.split_once('@') {
        // Never print a password from a PostgreSQL URL.
        Some((_, host)) if backend.starts_with("postgres") => format!("postgresql://…@{host}"),
        _ => backend,
    };
    Ok((state, shown))
}

/// Opens the stores and builds the router.
pub fn build(args: &ServerArgs, home: &Path) -> anyhow::Result<Built> {
    let (state, backend_description) = open_state(args, home)?;
    let monitoring = args.monitoring.open(&std::fs::canonicalize(home)?)?;
    let pages_state = state.clone();
    let router = cairn_api::router_with_pages(
        state,
        ApiOptions {
            max_json_bytes: args.max_request_bytes,
            runner: args.runner.options(),
        },
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
        monitor_interval: args.monitoring.interval(),
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

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let home = crate::home_dir();
    let built = build_blocking(args.clone(), home).await?;
    built
        .monitoring
        .clone()
        .spawn_evaluator(built.monitor_interval);
    let listener = bind(&args.host, args.port).await?;
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(backend = built.backend_description, "store ready");
    // Tests and scripts read this line to find the port.
    println!("Cairn tracking server listening on http://{addr}");
    let monitoring = built.monitoring.clone();
    axum::serve(listener, built.router)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    tokio::task::spawn_blocking(move || monitoring.flush()).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}
