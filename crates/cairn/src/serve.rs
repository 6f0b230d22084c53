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
/// Returns (version number, file bytes).
fn fetch_remote(
    base: &str,
    name: &str,
    version: Option<&str>,
) -> anyhow::Result<(String, Vec<u8>)> {
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
    Ok((number, bytes))
}

/// The model a `models:/` URI names, loaded and ready.
async fn registered(args: &ServeArgs) -> anyhow::Result<Arc<ServedModel>> {
    let (name, version) = parse_models_uri(&args.model)?;
    let options = args.runner.options();
    match args.tracking_uri.clone() {
        Some(base) => {
            let (n, v) = (name.clone(), version.clone());
            let (number, bytes) =
                tokio::task::spawn_blocking(move || fetch_remote(&base, &n, v.as_deref()))
                    .await??;
            let model = tokio::task::spawn_blocking(move || OnnxModel::from_bytes(&bytes))
                .await?
                .with_context(|| format!("cannot serve {}", args.model))?;
            Ok(Arc::new(ServedModel {
                name,
                version: number,
                runner: Runner::new(model, options),
            }))
        }
        None => {
            let home = crate::home_dir();
            let uri = args.model.clone();
            tokio::task::spawn_blocking(move || {
                let (state, _) =
                    crate::server::open_state(&crate::server::ServerArgs::local(), &home)?;
                let models = cairn_api::served::RegistryModels::new(
                    state.registry,
                    state.artifacts,
                    options,
                    cairn_api::served::CacheBounds::default(),
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
    let model = tokio::task::spawn_blocking(move || OnnxModel::from_bytes(&bytes))
        .await?
        .with_context(|| format!("cannot serve {shown}"))?;
    let name = args.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    Ok(Arc::new(ServedModel {
        name,
        version: "1".into(),
        runner: Runner::new(model, args.runner.options()),
    }))
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
