//! A run's page (params, metrics with sparklines, tags, description, dataset inputs linked to
//! Cairn dataset versions, logged models, child runs) and its artifact browser with previews.
use crate::charts;
use crate::csrf::{self, CsrfToken};
use crate::format::{self, enc};
use crate::layout::{self, button_form, csrf_field, kv_table, rename_form};
use crate::params::Params;
use crate::viewer::Viewer;
use crate::{blocking, PageError, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use cairn_api::artifacts::proxied_root;
use cairn_core::auth::{Permission, ResourceType};
use cairn_core::model::{LifecycleStage, Run, ViewType};
use cairn_core::paths::ArtifactPath;
use cairn_core::ArtifactEntry;
use maud::{html, Markup};
use std::collections::HashMap;
use std::io::Read;

/// Metrics listed on a run page at once (a run may log 12,000 keys); a filter finds others.
const METRICS_SHOWN: usize = 100;
/// Points of a sparkline.
const SPARK_POINTS: usize = 60;
/// Bytes of a text artifact shown; the rest is a download.
const PREVIEW_BYTES: u64 = 256 * 1024;
/// Rows of a CSV artifact shown.
const PREVIEW_ROWS: usize = 50;
/// Child runs listed.
const CHILDREN_MAX: u64 = 200;
/// Largest Parquet file the preview reads (its first rows only are shown).
const TABLE_PREVIEW_MAX: u64 = 64 * 1024 * 1024;
/// Largest ONNX file whose signature the preview reads.
const ONNX_PREVIEW_MAX: u64 = 64 * 1024 * 1024;

/// `GET /runs/{run}`: the run's page under its experiment.
pub async fn by_id(
    State(ui): State<Shared>,
    Path(run_id): Path<String>,
) -> Result<Response, PageError> {
    let tracking = ui.state.tracking.clone();
    let run = blocking(move || Ok(tracking.get_run(&run_id)?)).await?;
    Ok(Redirect::to(&format!(
        "/experiments/{}/runs/{}",
        run.info.experiment_id, run.info.run_id
    ))
    .into_response())
}

struct RunData {
    run: Run,
    experiment_name: String,
    /// Metrics matching the page's metric filter (only the first [`METRICS_SHOWN`] are shown).
    matching: usize,
    sparks: Vec<(String, Vec<(f64, f64)>)>,
    children: Vec<Run>,
    models: Vec<(String, String)>,
    inputs: Vec<cairn_core::lineage::InputLineage>,
    artifacts: Vec<ArtifactEntry>,
}

fn load_run(
    ui: &Shared,
    experiment_id: &str,
    run_id: &str,
    metric_filter: &str,
) -> Result<RunData, PageError> {
    let tracking = &ui.state.tracking;
    let run = tracking.get_run(run_id)?;
    if run.info.experiment_id != experiment_id {
        return Err(PageError::not_found(format!(
            "Run {run_id} is not in experiment {experiment_id}."
        )));
    }
    let experiment_name = tracking.get_experiment(experiment_id)?.name;
    let wanted = metric_filter.to_lowercase();
    let shown: Vec<&cairn_core::model::Metric> = run
        .metrics
        .iter()
        .filter(|m| wanted.is_empty() || m.key.to_lowercase().contains(&wanted))
        .collect();
    let matching = shown.len();
    let mut sparks = Vec::new();
    for m in shown.into_iter().take(METRICS_SHOWN) {
        let history = tracking
            .store()
            .metric_points(run_id, &m.key, i64::MIN, i64::MAX)?;
        let points: Vec<(f64, f64)> = history.iter().map(|h| (h.step as f64, h.value)).collect();
        sparks.push((m.key.clone(), charts::downsample(&points, SPARK_POINTS / 2)));
    }
    let children = tracking
        .search_runs(
            vec![experiment_id.to_string()],
            &format!("tags.mlflow.parentRunId = '{run_id}'"),
            &[],
            ViewType::ActiveOnly,
            Some(CHILDREN_MAX),
            "",
        )?
        .items;
    let mut models = Vec::new();
    for output in &run.model_outputs {
        match tracking.get_logged_model(&output.model_id) {
            Ok(m) => models.push((m.model_id, m.name)),
            Err(cairn_core::Error::NotFound(_)) => {
                models.push((output.model_id.clone(), "(deleted)".into()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let inputs = ui.state.lineage.inputs_of_run(&run)?;
    let artifacts = match proxied_root(&run.info.artifact_uri) {
        Some(root) => ui.state.artifacts.list(&ArtifactPath::parse(&root)?)?,
        None => vec![],
    };
    Ok(RunData {
        run,
        experiment_name,
        matching,
        sparks,
        children,
        models,
        inputs,
        artifacts,
    })
}

/// `GET /experiments/{id}/runs/{run}`.
pub async fn page(
    State(ui): State<Shared>,
    token: CsrfToken,
    Path((experiment_id, run_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let metric_filter = p.str("metrics").to_string();
    let d = {
        let (ui, e, r, f) = (
            ui.clone(),
            experiment_id.clone(),
            run_id.clone(),
            metric_filter.clone(),
        );
        blocking(move || load_run(&ui, &e, &r, &f)).await?
    };
    let info = &d.run.info;
    let exp_href = format!("/experiments/{experiment_id}");
    let run_href = format!("{exp_href}/runs/{run_id}");
    let tag = |k: &str| {
        d.run
            .tags
            .iter()
            .find(|t| t.key == k)
            .map(|t| t.value.clone())
    };
    let description = tag("mlflow.note.content").unwrap_or_default();
    let overview = vec![
        ("Run ID".to_string(), info.run_id.clone()),
        ("Status".to_string(), info.status.as_str().to_string()),
        ("Started".to_string(), format::time(info.start_time)),
        (
            "Duration".to_string(),
            info.end_time
                .map(|e| format::duration(e - info.start_time))
                .unwrap_or_else(|| "running".into()),
        ),
        ("User".to_string(), info.user_id.clone()),
        (
            "Source".to_string(),
            tag("mlflow.source.name").unwrap_or_default(),
        ),
        (
            "Git commit".to_string(),
            tag("mlflow.source.git.commit").unwrap_or_default(),
        ),
        ("Artifacts".to_string(), info.artifact_uri.clone()),
    ];
    let overview: Vec<_> = overview
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let mut params: Vec<_> = d
        .run
        .params
        .iter()
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    params.sort();
    let (system, user): (Vec<_>, Vec<_>) = d
        .run
        .tags
        .iter()
        .partition(|t| t.key.starts_with("mlflow."));
    let parent = tag("mlflow.parentRunId");
    let edit = format!("{run_href}/edit");
    let body = html! {
        h1 {
            (info.run_name)
            " " span class={ "status " (info.status.as_str().to_lowercase()) } { (info.status.as_str()) }
            @if info.lifecycle_stage == LifecycleStage::Deleted { " " span.badge { "deleted" } }
        }
        @if let Some(p) = &parent {
            p { "Child of " a href={ (exp_href) "/runs/" (p) } { (format::short(p)) } }
        }
        section.columns2 {
            div { h2 { "Overview" } (kv_table(&overview, "")) }
            div {
                h2 { "Description" }
                form.stack method="post" action=(edit) {
                    (csrf_field(&token))
                    input type="hidden" name="action" value="describe";
                    textarea name="description" rows="4" aria-label="Description" placeholder="Description" { (description) }
                    button { "Save description" }
                }
            }
        }
        h2 { "Metrics" }
        @if d.run.metrics.len() > METRICS_SHOWN || !metric_filter.is_empty() {
            form.search method="get" action=(run_href) {
                input type="search" name="metrics" value=(metric_filter) placeholder="Find metrics" aria-label="Find metrics";
                button { "Find" }
                span.muted { (d.matching) " of " (d.run.metrics.len()) " metrics match"
                    @if d.matching > METRICS_SHOWN { "; the first " (METRICS_SHOWN) " are shown" } }
            }
        }
        @if d.sparks.is_empty() { p.muted { "No metrics." } } @else {
            form method="get" action="/chart" {
                input type="hidden" name="run" value=(info.run_id);
                table.grid #metrics {
                    thead { tr { th { "Metric" } th.num { "Latest" } th.num { "Step" } th { "History" } th {} } }
                    tbody {
                        @for m in d.run.metrics.iter().filter(|m| d.sparks.iter().any(|s| s.0 == m.key)) {
                            tr {
                                td { (m.key) }
                                td.num { (format::number(m.value)) }
                                td.num { (m.step) }
                                td { (layout::raw(charts::sparkline(d.sparks.iter().find(|s| s.0 == m.key).map(|s| s.1.as_slice()).unwrap_or(&[])))) }
                                td { a href={ "/chart" (format::query(&[("run", &info.run_id), ("metric", &m.key)])) } { "chart" } }
                            }
                        }
                    }
                }
            }
        }
        section.columns2 {
            div { h2 { "Parameters" } (kv_table(&params, "No parameters.")) }
            div {
                h2 { "Tags" }
                (kv_table(&user.iter().map(|t| (t.key.clone(), t.value.clone())).collect::<Vec<_>>(), "No tags."))
                form.inline method="post" action=(edit) {
                    (csrf_field(&token))
                    input type="hidden" name="action" value="set_tag";
                    input name="key" placeholder="key" required aria-label="Tag key";
                    input name="value" placeholder="value" aria-label="Tag value";
                    button { "Set tag" }
                }
                details { summary { "System tags (" (system.len()) ")" }
                    (kv_table(&system.iter().map(|t| (t.key.clone(), t.value.clone())).collect::<Vec<_>>(), ""))
                }
            }
        }
        h2 { "Dataset inputs" }
        @if d.inputs.is_empty() { p.muted { "No dataset inputs." } } @else {
            table.grid #inputs {
                thead { tr { th { "Name" } th { "Context" } th { "Digest" } th { "Source" } th { "Cairn dataset version" } } }
                tbody { @for i in &d.inputs { tr {
                    td { (i.name) }
                    td { (i.context.clone().unwrap_or_default()) }
                    td { code { (i.digest) } }
                    td { (i.source_type) " " (i.source) }
                    td { @for v in &i.versions {
                        a href={ "/datasets/" (enc(&v.name)) "/" (v.version) } { (v.name) "@" (v.version) } " "
                    } }
                } } }
            }
        }
        @if !d.models.is_empty() {
            h2 { "Logged models" }
            ul { @for (id, name) in &d.models { li { (name) " " code { (id) } } } }
        }
        @if !d.children.is_empty() {
            h2 { "Child runs" }
            ul #children { @for c in &d.children {
                li { a href={ (exp_href) "/runs/" (c.info.run_id) } { (c.info.run_name) } " " span.muted { (c.info.status.as_str()) } }
            } }
        }
        h2 { "Artifacts" }
        (artifact_list(&run_href, &d.artifacts, ""))
        details.panel {
            summary { "Manage run" }
            (rename_form(&edit, &token, &info.run_name))
            @for t in &user {
                (button_form(&edit, &token, &[("action", "delete_tag"), ("key", &t.key)], &format!("Remove tag {}", t.key), None))
            }
            @if info.lifecycle_stage == LifecycleStage::Deleted {
                (button_form(&edit, &token, &[("action", "restore")], "Restore run", None))
            } @else {
                (button_form(&edit, &token, &[("action", "delete")], "Delete run", Some("Delete this run? It can be restored.")))
            }
        }
    };
    let crumbs = vec![
        ("Experiments".to_string(), "/experiments".to_string()),
        (d.experiment_name.clone(), exp_href.clone()),
    ];
    Ok(Html(layout::document(&info.run_name, &crumbs, body).into_string()).into_response())
}

/// `POST .../runs/{run}/edit`: rename, description, tags, delete and restore.
pub async fn edit(
    State(ui): State<Shared>,
    viewer: Viewer,
    token: CsrfToken,
    Path((experiment_id, run_id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    csrf::check(&token, &form)?;
    let field = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (action, name, key, value, description) = (
        field("action"),
        field("name"),
        field("key"),
        field("value"),
        form.get("description").cloned().unwrap_or_default(),
    );
    let tracking = ui.state.tracking.clone();
    let id = run_id.clone();
    let experiment = experiment_id.clone();
    blocking(move || {
        // The guard checked the experiment in the path: the run must be one of its own.
        if tracking.get_run(&id)?.info.experiment_id != experiment {
            return Err(PageError::not_found(format!(
                "Run {id} is not in experiment {experiment}."
            )));
        }
        if matches!(action.as_str(), "delete" | "restore") {
            viewer.require(
                ResourceType::Experiment,
                &experiment,
                Permission::Manage,
                "Deleting or restoring a run",
            )?;
        }
        match action.as_str() {
            "rename" => {
                tracking.update_run(&id, None, None, Some(&name))?;
            }
            "describe" => tracking.set_tag(&id, "mlflow.note.content", &description)?,
            "set_tag" => tracking.set_tag(&id, &key, &value)?,
            "delete_tag" => tracking.delete_tag(&id, &key)?,
            "delete" => tracking.delete_run(&id)?,
            "restore" => tracking.restore_run(&id)?,
            other => {
                return Err(PageError::bad_request(format!(
                    "Unknown run action '{other}'."
                )))
            }
        }
        Ok(())
    })
    .await?;
    Ok(Redirect::to(&format!("/experiments/{experiment_id}/runs/{run_id}")).into_response())
}

fn artifact_list(run_href: &str, entries: &[ArtifactEntry], prefix: &str) -> Markup {
    html! {
        @if entries.is_empty() { p.muted { "No artifacts here." } } @else {
            table.grid #artifacts {
                thead { tr { th { "Path" } th.num { "Size" } } }
                tbody { @for e in entries {
                    @let path = if prefix.is_empty() { e.path.clone() } else { format!("{prefix}/{}", e.path.rsplit('/').next().unwrap_or(&e.path)) };
                    @let name = path.rsplit('/').next().unwrap_or(&path).to_string();
                    tr {
                        td { a href={ (run_href) "/artifacts?path=" (enc(&path)) } { (name) @if e.is_dir { "/" } } }
                        td.num { (e.file_size.map(|s| format::bytes(s as i64)).unwrap_or_default()) }
                    }
                } }
            }
        }
    }
}

/// The run's artifact root joined with a user's relative path (checked: no `..`, no absolute).
fn artifact_path(run: &Run, rel: &str) -> Result<ArtifactPath, PageError> {
    let root = proxied_root(&run.info.artifact_uri).ok_or_else(|| {
        PageError::not_found(format!(
            "This run's artifacts live at {}, outside this server's store.",
            run.info.artifact_uri
        ))
    })?;
    Ok(ArtifactPath::parse(&root)?.join(&ArtifactPath::parse(rel)?))
}

enum Preview {
    Dir(Vec<ArtifactEntry>),
    Text(String, bool),
    Json(String),
    Table(Vec<Vec<String>>, bool),
    Image,
    Html,
    Onnx(cairn_serving::Signature),
    Binary(u64),
}

fn kind_of(path: &str) -> &'static str {
    let lower = path.to_ascii_lowercase();
    let ext = lower.rsplit('.').next().unwrap_or("");
    let name = lower.rsplit('/').next().unwrap_or("");
    match ext {
        "png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "bmp" => "image",
        "html" | "htm" => "html",
        "json" => "json",
        "csv" | "tsv" => "table",
        "parquet" => "parquet",
        "onnx" => "onnx",
        "txt" | "log" | "md" | "py" | "yaml" | "yml" | "toml" | "cfg" | "ini" | "sh" | "r"
        | "sql" | "ipynb" | "xml" => "text",
        _ if name == "mlmodel" || name == "requirements.txt" || name == "conda.yaml" => "text",
        _ if !name.contains('.') => "text",
        _ => "binary",
    }
}

fn read_prefix(reader: &mut dyn Read, limit: u64) -> Result<Vec<u8>, PageError> {
    let mut buf = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|e| PageError::internal(format!("reading an artifact: {e}")))?;
    Ok(buf)
}

fn preview(ui: &Shared, path: &ArtifactPath, rel: &str) -> Result<Preview, PageError> {
    let store = &ui.state.artifacts;
    let (mut reader, size) = match store.open(path) {
        Ok(found) => found,
        // A directory (or a path not there, which lists as empty).
        Err(cairn_core::Error::InvalidParameter(_)) => return Ok(Preview::Dir(store.list(path)?)),
        Err(cairn_core::Error::NotFound(_)) => {
            let entries = store.list(path)?;
            if entries.is_empty() {
                return Err(PageError::not_found(format!("No artifact at '{rel}'.")));
            }
            return Ok(Preview::Dir(entries));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(match kind_of(rel) {
        "image" => Preview::Image,
        "html" => Preview::Html,
        "onnx" if size <= ONNX_PREVIEW_MAX => {
            let bytes = read_prefix(&mut reader, size)?;
            match cairn_serving::OnnxModel::from_bytes(&bytes) {
                Ok(model) => Preview::Onnx(model.signature().clone()),
                Err(e) => Preview::Text(format!("This ONNX model cannot be loaded: {e}"), false),
            }
        }
        "json" => {
            let bytes = read_prefix(&mut reader, PREVIEW_BYTES)?;
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(v) => Preview::Json(serde_json::to_string_pretty(&v).unwrap_or_default()),
                Err(_) => Preview::Text(
                    String::from_utf8_lossy(&bytes).into_owned(),
                    size > PREVIEW_BYTES,
                ),
            }
        }
        "table" => {
            let bytes = read_prefix(&mut reader, PREVIEW_BYTES)?;
            let delimiter = if rel.to_ascii_lowercase().ends_with(".tsv") {
                b'\t'
            } else {
                b','
            };
            let mut rows = Vec::new();
            let mut csv = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(delimiter)
                .from_reader(bytes.as_slice());
            for record in csv.records().take(PREVIEW_ROWS + 1) {
                match record {
                    Ok(r) => rows.push(r.iter().map(str::to_string).collect()),
                    Err(_) => break,
                }
            }
            let more = size > PREVIEW_BYTES || rows.len() > PREVIEW_ROWS;
            rows.truncate(PREVIEW_ROWS + 1);
            Preview::Table(rows, more)
        }
        "parquet" if size <= TABLE_PREVIEW_MAX => {
            let bytes = read_prefix(&mut reader, size)?;
            match parquet_rows(bytes) {
                Ok((rows, total)) => Preview::Table(rows, total > PREVIEW_ROWS as i64),
                Err(e) => Preview::Text(format!("This Parquet file cannot be read: {e}"), false),
            }
        }
        "text" => {
            let bytes = read_prefix(&mut reader, PREVIEW_BYTES)?;
            if bytes.contains(&0) {
                Preview::Binary(size)
            } else {
                Preview::Text(
                    String::from_utf8_lossy(&bytes).into_owned(),
                    size > PREVIEW_BYTES,
                )
            }
        }
        _ => Preview::Binary(size),
    })
}

/// The header and first rows of a Parquet file as text, and its total row count.
fn parquet_rows(bytes: Vec<u8>) -> Result<(Vec<Vec<String>>, i64), String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .map_err(|e| e.to_string())?;
    let total = builder.metadata().file_metadata().num_rows();
    let header: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut reader = builder
        .with_batch_size(PREVIEW_ROWS)
        .build()
        .map_err(|e| e.to_string())?;
    let mut rows = vec![header];
    if let Some(batch) = reader.next() {
        let batch = batch.map_err(|e| e.to_string())?;
        let columns: Vec<Option<arrow_array::StringArray>> = batch
            .columns()
            .iter()
            .map(|c| cairn_data::columns::to_text(c.as_ref()))
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| match c {
                        Some(text) if !arrow_array::Array::is_null(text, r) => {
                            text.value(r).to_string()
                        }
                        Some(_) => String::new(),
                        None => "(unsupported type)".to_string(),
                    })
                    .collect(),
            );
        }
    }
    Ok((rows, total))
}

/// `GET .../runs/{run}/artifacts?path=`: a folder's listing or a file's preview.
pub async fn artifacts(
    State(ui): State<Shared>,
    Path((experiment_id, run_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let rel = p.str("path").to_string();
    let (run, shown) = {
        let (ui, run_id, rel) = (ui.clone(), run_id.clone(), rel.clone());
        blocking(move || {
            let run = ui.state.tracking.get_run(&run_id)?;
            let path = artifact_path(&run, &rel)?;
            let shown = preview(&ui, &path, &rel)?;
            Ok((run, shown))
        })
        .await?
    };
    if run.info.experiment_id != experiment_id {
        return Err(PageError::not_found(format!(
            "Run {run_id} is not in experiment {experiment_id}."
        )));
    }
    let run_href = format!("/experiments/{experiment_id}/runs/{run_id}");
    let raw_href = format!("{run_href}/artifact-raw?path={}", enc(&rel));
    let body = html! {
        h1 { code { (if rel.is_empty() { "/" } else { rel.as_str() }) } }
        p { a href=(raw_href) download { "Download" } }
        @match &shown {
            Preview::Dir(entries) => (artifact_list(&run_href, entries, &rel)),
            Preview::Text(text, more) => {
                (layout::pre(text))
                @if *more { p.muted { "Showing the first " (format::bytes(PREVIEW_BYTES as i64)) "; download for the rest." } }
            }
            Preview::Json(text) => (layout::pre(text)),
            Preview::Table(rows, more) => {
                table.grid.preview {
                    @if let Some((head, body)) = rows.split_first() {
                        thead { tr { @for h in head { th { (h) } } } }
                        tbody { @for r in body { tr { @for c in r { td { (c) } } } } }
                    }
                }
                @if *more { p.muted { "Showing the first " (PREVIEW_ROWS) " rows." } }
            }
            Preview::Image => img.artifact src=(raw_href) alt=(rel);,
            Preview::Html => iframe.report sandbox="" src=(raw_href) title=(rel) {},
            Preview::Onnx(sig) => {
                h2 { "Inputs" }
                (signature_table(&sig.inputs))
                h2 { "Outputs" }
                (signature_table(&sig.outputs))
            }
            Preview::Binary(size) => p.muted { "A binary file of " (format::bytes(*size as i64)) "." },
        }
    };
    let crumbs = vec![
        ("Experiments".to_string(), "/experiments".to_string()),
        (run.info.run_name.clone(), run_href.clone()),
    ];
    Ok(Html(layout::document("Artifact", &crumbs, body).into_string()).into_response())
}

/// A signature's tensors as a table.
pub fn signature_table(specs: &[cairn_serving::TensorSpec]) -> Markup {
    html! {
        table.grid.signature {
            thead { tr { th { "Name" } th { "Type" } th { "Shape" } } }
            tbody { @for s in specs { tr {
                td { (s.name) }
                td { (format!("{:?}", s.element_type)) }
                td { "[" (s.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")) "]" }
            } } }
        }
    }
}

/// `GET .../runs/{run}/artifact-raw?path=`: the bytes, streamed. HTML is sandboxed by CSP so
/// a report cannot run script with this origin's rights.
pub async fn artifact_raw(
    State(ui): State<Shared>,
    Path((experiment_id, run_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let rel = p.str("path").to_string();
    let (reader, size) = {
        let (ui, rel) = (ui.clone(), rel.clone());
        blocking(move || {
            let run = ui.state.tracking.get_run(&run_id)?;
            // The guard checked the experiment in the path: the run must be one of its own.
            if run.info.experiment_id != experiment_id {
                return Err(PageError::not_found(format!(
                    "Run {run_id} is not in experiment {experiment_id}."
                )));
            }
            let path = artifact_path(&run, &rel)?;
            Ok(ui.state.artifacts.open(&path)?)
        })
        .await?
    };
    let content_type = match rel
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("webp") => "image/webp",
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("csv" | "txt" | "log" | "yaml" | "yml" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    let name = rel
        .rsplit('/')
        .next()
        .unwrap_or("artifact")
        .replace('"', "");
    Ok((
        [
            (CONTENT_TYPE, content_type.to_string()),
            (CONTENT_SECURITY_POLICY, "sandbox".to_string()),
            (CONTENT_DISPOSITION, format!("inline; filename=\"{name}\"")),
            (axum::http::header::CONTENT_LENGTH, size.to_string()),
        ],
        cairn_api::artifacts::stream_body(reader),
    )
        .into_response())
}
