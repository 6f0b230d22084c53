//! The playground: a form generated from a served version's signature (names, types,
//! shapes). The page's script sends the same Open Inference Protocol request a client would,
//! shows it with a copyable `curl`, and shows the answer; a CSV file is scored as one batch
//! and the answers can be downloaded.
use crate::format::enc;
use crate::layout::document;
use crate::models::signature_of;
use crate::{blocking, PageError, Shared};
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use cairn_api::oip::Serving;
use maud::html;
use serde_json::Value;

/// Width of one row of an input: the product of its non-batch dimensions.
fn row_width(spec: &Value) -> Option<usize> {
    let shape = spec["shape"].as_array()?;
    let dims: Vec<i64> = shape.iter().filter_map(Value::as_i64).collect();
    let rest = dims.get(1..).unwrap_or(&[]);
    if rest.iter().any(|d| *d < 0) {
        return None;
    }
    Some(rest.iter().product::<i64>().max(1) as usize)
}

/// `GET /models/{name}/versions/{version}/playground`.
pub async fn page(
    State(ui): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let number: i64 = version
        .parse()
        .map_err(|_| PageError::not_found(format!("'{version}' is not a version number.")))?;
    let registry = ui.state.registry.clone();
    let v = {
        let name = name.clone();
        blocking(move || Ok(registry.get_version(&name, number)?)).await?
    };
    let (inputs, outputs) = signature_of(&v).ok_or_else(|| {
        PageError::not_found(format!(
            "{name} version {number} has no ONNX signature, so it is not served by this server."
        ))
    })?;
    let crumbs = vec![
        ("Models".to_string(), "/models".to_string()),
        (v.name.clone(), format!("/models/{}", enc(&v.name))),
        (
            format!("Version {}", v.version),
            format!("/models/{}/versions/{}", enc(&v.name), v.version),
        ),
    ];
    let version = v.version.to_string();
    render(&ui.serving, &v.name, &version, &inputs, &outputs, &crumbs).await
}

/// The playground of one served model version.
async fn render(
    serving: &Serving,
    name: &str,
    version: &str,
    inputs: &[Value],
    outputs: &[Value],
    crumbs: &[(String, String)],
) -> Result<Response, PageError> {
    let endpoint = format!("/v2/models/{}/versions/{}/infer", enc(name), enc(version));
    let example = match serving.monitoring.clone() {
        Some(m) => {
            let (name, version) = (name.to_string(), version.to_string());
            blocking(move || Ok(reference_row(&m, &name, &version))).await?
        }
        None => None,
    };
    // A single-input model takes the reference's features in order.
    let prefill = |input: usize, j: usize| -> (Option<String>, String) {
        match (&example, input) {
            (Some((features, row)), 0) if inputs.len() == 1 => (
                features.get(j).cloned(),
                row.get(j).cloned().unwrap_or_else(|| "0".into()),
            ),
            _ => (None, "0".into()),
        }
    };
    let body = html! {
        h1 { "Playground: " (name) " version " (version) }
        noscript { p.error { "The playground sends requests from the page: turn on JavaScript." } }
        p.meta { "Sends " code { "POST " (endpoint) } " (Open Inference Protocol), exactly as a client would." }
        @if let Some((_, _)) = &example { p.muted #prefilled { "Prefilled with the first row of the version's training reference." } }
        form #playground data-endpoint=(endpoint) {
            @for (i, spec) in inputs.iter().enumerate() {
                @let input_name = spec["name"].as_str().unwrap_or("input");
                @let datatype = spec["datatype"].as_str().unwrap_or("FP32");
                fieldset.tensor data-name=(input_name) data-datatype=(datatype) data-shape=(spec["shape"].to_string()) {
                    legend { (input_name) " " span.muted { (datatype) " " (spec["shape"].to_string()) } }
                    @match row_width(spec) {
                        Some(width) => {
                            @for j in 0..width {
                                @let (feature, value) = prefill(i, j);
                                label.field { span { (feature.unwrap_or_else(|| format!("{input_name}[{j}]"))) }
                                    input type="text" inputmode="decimal" name={ "in" (i) "_" (j) } value=(value) data-index=(j) required; }
                            }
                        }
                        None => p.muted { "Free inner dimensions: type a JSON array of one row." textarea name={ "in" (i) } rows="2" { "[]" } },
                    }
                }
            }
            button type="submit" { "Predict" }
        }
        section #answer hidden {
            h2 { "Answer" }
            table.grid #prediction { tbody {} }
        }
        details.panel open {
            summary { "The request" }
            pre #request-json {}
            p { "With curl:" }
            pre #request-curl {}
        }
        h2 { "Score a CSV file" }
        p.muted { "One row per line, the inputs' values in order (a header line is skipped); all rows go in one request." }
        form #batch {
            input type="file" accept=".csv,text/csv" name="file" aria-label="CSV file";
            button type="submit" { "Score" }
        }
        section #batch-answer hidden {
            p #batch-summary {}
            a #batch-download download="predictions.csv" { "Download the answers (CSV)" }
            table.grid #batch-table { thead {} tbody {} }
        }
        h2 { "Outputs" }
        ul { @for o in outputs { li { code { (o["name"].as_str().unwrap_or("")) } " " (o["datatype"].as_str().unwrap_or("")) " " (o["shape"].to_string()) } } }
    };
    Ok(Html(document("Playground", crumbs, body).into_string()).into_response())
}

/// The reference's feature names and, when its source is a CSV file that still exists, the
/// values of those features in its first row (a real training example).
fn reference_row(
    m: &cairn_api::monitoring::Monitoring,
    name: &str,
    version: &str,
) -> Option<(Vec<String>, Vec<String>)> {
    let reference = m.reference(name, version).ok()??;
    let features = reference.features.clone();
    let file = std::fs::File::open(&reference.source).ok()?;
    let mut csv = csv::Reader::from_reader(file);
    let header = csv.headers().ok()?.clone();
    let first = csv.records().next()?.ok()?;
    let row = features
        .iter()
        .map(|f| {
            header
                .iter()
                .position(|h| h == f)
                .and_then(|i| first.get(i))
                .unwrap_or("0")
                .to_string()
        })
        .collect();
    Some((features, row))
}

/// What `cairn serve`'s playground shows: its one model and that model's signature.
struct ServedPlayground {
    serving: Serving,
    name: String,
    version: String,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
}

async fn served_playground(
    State(p): State<std::sync::Arc<ServedPlayground>>,
) -> Result<Response, PageError> {
    render(&p.serving, &p.name, &p.version, &p.inputs, &p.outputs, &[]).await
}

/// The pages of `cairn serve`: its one model's playground at `/` (and `/playground`), with the
/// assets. The model's signature comes from the loaded graph.
pub fn serve_routes(
    serving: &Serving,
    name: &str,
    version: &str,
) -> Result<axum::Router, PageError> {
    let served = serving
        .models
        .resolve(name, Some(version))
        .map_err(|e| PageError::internal(e.to_string()))?;
    let sig = served.runner.model().signature();
    let state = std::sync::Arc::new(ServedPlayground {
        serving: serving.clone(),
        name: name.to_string(),
        version: version.to_string(),
        inputs: sig.inputs.iter().map(cairn_api::oip::spec_json).collect(),
        outputs: sig.outputs.iter().map(cairn_api::oip::spec_json).collect(),
    });
    Ok(axum::Router::new()
        .route("/", axum::routing::get(served_playground))
        .route("/playground", axum::routing::get(served_playground))
        .with_state(state)
        .merge(crate::asset_routes()))
}
