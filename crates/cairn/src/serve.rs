//! `cairn serve MODEL`: one ONNX model behind the Open Inference Protocol.
use anyhow::{bail, Context};
use cairn_api::oip::{ServedModel, Serving, StaticModels};
use cairn_api::ApiOptions;
use cairn_serving::{OnnxModel, Runner};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Flags of `cairn serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The model: a `.onnx` file, or a folder holding exactly one (an MLflow `onnx` flavor
    /// folder, for example).
    model: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Name the model answers to (default: the file name without `.onnx`).
    #[arg(long)]
    name: Option<String>,
    /// Largest request body in bytes; larger requests get 413.
    #[arg(long, default_value_t = cairn_api::DEFAULT_MAX_JSON_BYTES)]
    max_request_bytes: usize,
    #[command(flatten)]
    runner: crate::server::RunnerArgs,
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

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.model.starts_with("models:/") || args.model.starts_with("runs:/") {
        bail!(
            "serving '{}' from a registry is not available yet: pass a path to a .onnx file or \
             to a folder holding one",
            args.model
        );
    }
    let file = onnx_file(Path::new(&args.model))?;
    let bytes = std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
    let model = tokio::task::spawn_blocking(move || OnnxModel::from_bytes(&bytes))
        .await?
        .with_context(|| format!("cannot serve {}", file.display()))?;
    let name = args.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    });
    let options = args.runner.options();
    let served = Arc::new(ServedModel {
        name: name.clone(),
        version: "1".into(),
        runner: Runner::new(model, options),
    });
    let serving = Serving {
        models: Arc::new(StaticModels(vec![served])),
        metrics: Arc::default(),
    };
    let router = cairn_api::serving_router(
        serving,
        name.clone(),
        ApiOptions {
            max_json_bytes: args.max_request_bytes,
            runner: options,
        },
    );
    let listener = crate::server::bind(&args.host, args.port).await?;
    let addr = listener.local_addr()?;
    println!("Cairn serving model '{name}' (Open Inference Protocol) listening on http://{addr}");
    axum::serve(listener, router)
        .with_graceful_shutdown(crate::server::shutdown_signal())
        .await
        .context("server failed")?;
    Ok(())
}
