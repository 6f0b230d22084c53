//! `cairn serve MODEL`: one ONNX model behind the Open Inference Protocol and MLflow's scoring
//! protocol. MODEL is a `.onnx` file, a folder holding one, or a registered version
//! (`models:/name/3`, `models:/name@alias`, `models:/name` for the newest) resolved once at
//! start against the local home or, with `--tracking-uri`, a Cairn server.
use crate::client::encode_query as encode;
use anyhow::{bail, Context};
use cairn_api::oip::{ModelSource, ServedModel, Serving, StaticModels};
use cairn_serving::{OnnxModel, Runner};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Flags of `cairn serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The model: a `.onnx` file, a folder holding exactly one (an MLflow `onnx` flavor
    /// folder, for example), or `models:/name/VERSION`, `models:/name@ALIAS`, `models:/name`.
    model: String,
    /// Where `models:/` URIs are resolved: a Cairn server's URL. Default: the local home.
    #[arg(long, env = "MLFLOW_TRACKING_URI")]
    tracking_uri: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Name the model answers to (default: the file name without `.onnx`).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    http: crate::server::HttpArgs,
    #[command(flatten)]
    runner: crate::server::RunnerArgs,
    /// Predictions are logged under `<home>/monitoring` for `cairn monitor`.
    #[command(flatten)]
    monitoring: crate::server::MonitoringArgs,
    /// The feature project whose services bound versions (tag `cairn.feature_service`) look
    /// their features up in, for a `models:/` model of the local home. With --tracking-uri the
    /// server's own feature store answers (`cairn server --features-project`).
    #[arg(long, value_name = "PROJECT")]
    features_project: Option<String>,
    /// The online store of `--features-project`: `redis://HOST[:PORT][/DB]`, or (default) the
    /// metadata store's database.
    #[arg(long, env = "CAIRN_ONLINE_STORE", requires = "features_project")]
    features_online_store: Option<String>,
}

/// A feature store reached over HTTP: a Cairn server's `/get-online-features`.
struct RemoteFeatures(crate::client::Client);

impl cairn_api::bound::FeatureLookup for RemoteFeatures {
    fn lookup(
        &self,
        service: &str,
        entities: &[(String, Vec<serde_json::Value>)],
    ) -> Result<serde_json::Value, cairn_api::bound::BoundError> {
        use axum::http::StatusCode;
        use cairn_api::bound::BoundError;
        let body = serde_json::json!({
            "feature_service": service,
            "entities": entities
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::Array(v.clone())))
                .collect::<serde_json::Map<_, _>>(),
            "full_feature_names": true,
        });
        let (status, answer) = self
            .0
            .post_json("/get-online-features", &body)
            .map_err(|e| {
                BoundError(StatusCode::BAD_GATEWAY, format!("the feature store: {e:#}"))
            })?;
        match status {
            200 => Ok(answer),
            400..=499 => Err(BoundError::invalid(
                answer["message"]
                    .as_str()
                    .map_or_else(|| answer.to_string(), str::to_string),
            )),
            _ => Err(BoundError(
                StatusCode::BAD_GATEWAY,
                format!("the feature store answered HTTP {status}: {answer}"),
            )),
        }
    }
}

/// The `.onnx` file a path names: the file itself, or the only one in a folder.
fn onnx_file(path: &Path) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    if path.is_dir() {
        let found: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
            .collect();
        return match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => bail!("no .onnx file in {}", path.display()),
            _ => bail!("several .onnx files in {}: name one", path.display()),
        };
    }
    bail!("model '{}' not found", path.display())
}

/// `models:/name/3` → ("name", Some("3")); `models:/name@champion` → ("name", Some("champion"));
/// `models:/name` → ("name", None).
fn parse_models_uri(uri: &str) -> anyhow::Result<(String, Option<String>)> {
    let rest = uri.strip_prefix("models:/").context("not a models:/ URI")?;
    let (name, version) = match rest.split_once('@') {
        Some((name, alias)) => (name, Some(alias)),
        None => match rest.rsplit_once('/') {
            Some((name, version)) => (name, Some(version)),
            None => (rest, None),
        },
    };
    if name.is_empty() || version.is_some_and(str::is_empty) {
        bail!("'{uri}' is not of the form models:/NAME[/VERSION] or models:/NAME@ALIAS");
    }
    Ok((name.to_string(), version.map(str::to_string)))
}

/// Resolves a registered version on a Cairn (or MLflow) server and downloads its `.onnx` file.
/// Returns (version number, the feature service it is bound to, file bytes).
fn fetch_remote(
    base: &str,
    name: &str,
    version: Option<&str>,
) -> anyhow::Result<(String, Option<String>, Vec<u8>)> {
    let client = crate::client::Client::new(base);
    let api = "/api/2.0/mlflow";
    let number = match version {
        Some(v) if v.chars().all(|c| c.is_ascii_digit()) => v.to_string(),
        Some(alias) => client.get(&format!(
            "{api}/registered-models/alias?name={}&alias={}",
            encode(name),
            encode(alias)
        ))?["model_version"]["version"]
            .as_str()
            .context("the server gave no version for the alias")?
            .to_string(),
        None => client.get(&format!(
            "{api}/registered-models/get?name={}",
            encode(name)
        ))?["registered_model"]["latest_versions"]
            .as_array()
            .and_then(|vs| {
                vs.iter()
                    .filter_map(|v| v["version"].as_str()?.parse::<i64>().ok())
                    .max()
            })
            .with_context(|| format!("model '{name}' has no versions"))?
            .to_string(),
    };
    let bound = client.get(&format!(
        "{api}/model-versions/get?name={}&version={number}",
        encode(name)
    ))?["model_version"]["tags"]
        .as_array()
        .and_then(|tags| {
            tags.iter()
                .find(|t| t["key"] == cairn_core::FEATURE_SERVICE_TAG)
                .and_then(|t| t["value"].as_str().map(str::to_string))
        });
    let uri = client.get(&format!(
        "{api}/model-versions/get-download-uri?name={}&version={number}",
        encode(name)
    ))?["artifact_uri"]
        .as_str()
        .context("the server gave no download URI")?
        .to_string();
    let root = uri
        .strip_prefix("mlflow-artifacts:")
        .with_context(|| format!("'{uri}' is not served by the server's artifact proxy"))?
        .trim_start_matches('/')
        .to_string();
    let listing = client.get(&format!(
        "/api/2.0/mlflow-artifacts/artifacts?path={}",
        encode(&root)
    ))?;
    let onnx: Vec<&str> = listing["files"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter(|f| f["is_dir"] != true)
                .filter_map(|f| f["path"].as_str())
                .filter(|p| p.ends_with(".onnx"))
                .collect()
        })
        .unwrap_or_default();
    let file = match onnx.as_slice() {
        [one] => *one,
        [] => bail!("no .onnx file in {uri}"),
        _ => bail!("several .onnx files in {uri}"),
    };
    let bytes = client.get_artifact(&format!("{root}/{file}"))?;
    Ok((number, bound, bytes))
}

/// The model a `models:/` URI names, loaded and ready.
async fn registered(args: &ServeArgs) -> anyhow::Result<Arc<ServedModel>> {
    let (name, version) = parse_models_uri(&args.model)?;
    let options = args.runner.options();
    match args.tracking_uri.clone() {
        Some(base) => {
            let (n, v) = (name.clone(), version.clone());
            let remote = base.clone();
            let (number, bound, bytes) =
                tokio::task::spawn_blocking(move || fetch_remote(&remote, &n, v.as_deref()))
                    .await??;
            let (model, bytes) = tokio::task::spawn_blocking(move || {
                OnnxModel::from_bytes(&bytes).map(|m| (m, bytes))
            })
            .await?
            .with_context(|| format!("cannot serve {}", args.model))?;
            let mut served = ServedModel::new(name, number, Runner::new(model, options), &bytes);
            served.binding = bound.map(|service| cairn_api::bound::Binding {
                service,
                lookup: Some(Arc::new(RemoteFeatures(crate::client::Client::from_env(
                    &base,
                )))),
            });
            Ok(Arc::new(served))
        }
        None => {
            let home = crate::home_dir();
            let uri = args.model.clone();
            let mut server_args = crate::server::ServerArgs::local();
            server_args.features_project = args.features_project.clone();
            server_args.features_online_store = args.features_online_store.clone();
            tokio::task::spawn_blocking(move || {
                let (state, _) = crate::server::open_state(&server_args, &home)?;
                let models = cairn_api::served::RegistryModels::new(
                    state.registry,
                    state.artifacts,
                    options,
                    cairn_api::served::CacheBounds::default(),
                )
                .with_features(
                    state
                        .features
                        .map(|f| f as Arc<dyn cairn_api::bound::FeatureLookup>),
                );
                models
                    .resolve(&name, version.as_deref())
                    .map_err(|e| anyhow::anyhow!("cannot serve {uri}: {e}"))
            })
            .await?
        }
    }
}

async fn from_file(args: &ServeArgs) -> anyhow::Result<Arc<ServedModel>> {
    let file = onnx_file(Path::new(&args.model))?;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let shown = file.display().to_string();
    let (model, bytes) =
        tokio::task::spawn_blocking(move || OnnxModel::from_bytes(&bytes).map(|m| (m, bytes)))
            .await?
            .with_context(|| format!("cannot serve {shown}"))?;
    let name = args.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    Ok(Arc::new(ServedModel::new(
        name,
        "1".into(),
        Runner::new(model, args.runner.options()),
        &bytes,
    )))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.model.starts_with("runs:/") {
        bail!(
            "'{}': serve a registered version (models:/NAME/VERSION or models:/NAME@ALIAS) or a .onnx file",
            args.model
        );
    }
    let served = if args.model.starts_with("models:/") {
        registered(&args).await?
    } else {
        from_file(&args).await?
    };
    let name = served.name.clone();
    let version = served.version.clone();
    let home = crate::home_dir();
    std::fs::create_dir_all(&home)
        .with_context(|| format!("cannot create home {}", home.display()))?;
    let home = std::fs::canonicalize(&home)?;
    let store = {
        let home = home.clone();
        tokio::task::spawn_blocking(move || crate::server::metadata_store(None, &home)).await??
    };
    let monitoring = args.monitoring.open(&home, store)?;
    monitoring.clone().spawn_evaluator();
    let serving = Serving {
        models: Arc::new(StaticModels(vec![served])),
        metrics: Arc::default(),
        monitoring: Some(monitoring.clone()),
    };
    let pages = cairn_ui::serve_routes(&serving, &name, &version)
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    let router = cairn_api::serving_router_with_pages(
        serving,
        name.clone(),
        args.http.api_options(&args.runner),
        pages,
    );
    let listener = crate::server::bind(&args.host, args.port).await?;
    let addr = listener.local_addr()?;
    println!(
        "Cairn serving model '{name}' version {version} (Open Inference Protocol, /invocations) listening on http://{addr}"
    );
    println!("Playground: http://{addr}/");
    crate::server::serve_until(
        listener,
        router,
        &args.http,
        &args.host,
        std::future::pending(),
    )
    .await?;
    tokio::task::spawn_blocking(move || monitoring.flush()).await?;
    Ok(())
}
