//! Dataset versions (`cairn data add`), and back from one version to every run and model
//! version that used it, with the validations recorded against its bytes.
use crate::format::{self, enc};
use crate::layout::document;
use crate::params::Params;
use crate::{blocking, PageError, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use maud::html;

/// `GET /datasets?q=`: every recorded version, newest first.
pub async fn list(
    State(ui): State<Shared>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let q = p.str("q").to_lowercase();
    let lineage = ui.state.lineage.clone();
    let mut versions =
        blocking(move || Ok(lineage.datasets().list_dataset_versions(None)?)).await?;
    versions.retain(|v| q.is_empty() || v.name.to_lowercase().contains(&q));
    let body = html! {
        h1 { "Data" }
        form.search method="get" action="/datasets" {
            input type="search" name="q" value=(p.str("q")) placeholder="Search by name" aria-label="Search datasets";
            button { "Search" }
        }
        @if versions.is_empty() { p.muted { "No dataset versions. Record one with " code { "cairn data add FILE" } "." } } @else {
            table.grid #datasets {
                thead { tr { th { "Version" } th { "Kind" } th { "Format" } th.num { "Files" } th.num { "Size" } th { "Digest" } th { "Added" } th { "Message" } } }
                tbody { @for v in &versions { tr {
                    td { a href={ "/datasets/" (enc(&v.name)) "/" (v.version) } { (v.name) "@" (v.version) } }
                    td { (v.kind) }
                    td { (v.format) }
                    td.num { (v.files) }
                    td.num { (format::bytes(v.size)) }
                    td { code { (format::short(&v.digest)) } }
                    td { (format::time(v.creation_time)) }
                    td { (v.message) }
                } } }
            }
        }
    };
    Ok(Html(document("Data", &[], body).into_string()).into_response())
}

/// `GET /datasets/{name}/{version}`.
pub async fn version(
    State(ui): State<Shared>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let number: i64 = version.parse().map_err(|_| {
        PageError::not_found(format!("'{version}' is not a dataset version number."))
    })?;
    let lineage = ui.state.lineage.clone();
    let (l, others) = blocking(move || {
        let l = lineage.of_dataset_version(&name, number)?;
        let others = lineage.datasets().list_dataset_versions(Some(&name))?;
        Ok((l, others))
    })
    .await?;
    let d = &l.dataset;
    let body = html! {
        h1 { (d.name) "@" (d.version) }
        table.kv #dataset {
            tr { th { "Digest (BLAKE3)" } td { code.digest { (d.digest) } } }
            tr { th { "Digest runs log (first 32)" } td { code { (cairn_core::lineage::run_input_digest(&d.digest)) } } }
            tr { th { "Kind" } td { (d.kind) } }
            tr { th { "Format" } td { (d.format) } }
            tr { th { "Files" } td { (d.files) } }
            tr { th { "Size" } td { (format::bytes(d.size)) } }
            tr { th { "Path" } td { (d.path) } }
            tr { th { "Added" } td { (format::time(d.creation_time)) " by " (d.user_id) } }
            tr { th { "Message" } td { (d.message) } }
        }
        @if !l.sources.is_empty() {
            h2 { "Made from" }
            table.grid #dataset-sources {
                thead { tr { th { "Kind" } th { "What" } th { "Digest" } } }
                tbody { @for s in &l.sources { tr {
                    td { (s.kind) }
                    td { @if s.kind == "dataset" {
                        @if let Some((n, v)) = s.reference.split_once(':').map_or(s.reference.as_str(), |(r, _)| r).rsplit_once('@') {
                            a href={ "/datasets/" (enc(n)) "/" (v) } { (s.reference) }
                        } @else { (s.reference) }
                    } @else { (s.reference) } }
                    td { code.digest { (format::short(&s.digest)) } }
                } } }
            }
        }
        h2 { "Validations" }
        @if l.validations.is_empty() { p.muted { "No validation recorded against these bytes." } } @else {
            table.grid #validations {
                thead { tr { th { "Suite" } th { "File" } th { "Result" } th.num { "Expectations met" } th { "When" } } }
                tbody { @for c in &l.validations { tr {
                    td { (c.suite) }
                    td { (c.path) }
                    td { @if c.success { span.status.finished { "passed" } } @else { span.status.failed { "failed" } } }
                    td.num { (c.successful) " / " (c.evaluated) }
                    td { (format::time(c.creation_time)) }
                } } }
            }
        }
        h2 { "Used by runs" }
        @if l.runs.is_empty() { p.muted { "No run logged this version as an input." } } @else {
            ul #dataset-runs { @for r in &l.runs {
                li { a href={ "/experiments/" (r.experiment_id) "/runs/" (r.run_id) } { (r.run_name) }
                    @if let Some(c) = &r.git_commit { " · commit " code { (format::short(c)) } } }
            } }
        }
        h2 { "Model versions trained on it" }
        @if l.model_versions.is_empty() { p.muted { "None." } } @else {
            ul #dataset-models { @for v in &l.model_versions {
                li { a href={ "/models/" (enc(&v.name)) "/versions/" (v.version) } { (v.name) " version " (v.version) } }
            } }
        }
        @if others.len() > 1 {
            h2 { "Other versions of " (d.name) }
            ul { @for o in others.iter().filter(|o| o.version != d.version) {
                li { a href={ "/datasets/" (enc(&o.name)) "/" (o.version) } { (o.name) "@" (o.version) } " · " (format::bytes(o.size)) " · " (format::time(o.creation_time))
                    " · " a href={ "/datasets/" (enc(&o.name)) "/diff/" (o.version.min(d.version)) "/" (o.version.max(d.version)) } { "diff" } }
            } }
        }
    };
    Ok(Html(
        document(
            &format!("{}@{}", d.name, d.version),
            &[("Data".into(), "/datasets".into())],
            body,
        )
        .into_string(),
    )
    .into_response())
}

fn data_error(e: cairn_data::Error) -> PageError {
    match e {
        cairn_data::Error::NotFound(m) | cairn_data::Error::Invalid(m) => PageError::bad_request(m),
        cairn_data::Error::Missing(d) => PageError::not_found(format!(
            "The bytes of object {d} are not in this server's store (pushed elsewhere?)."
        )),
        cairn_data::Error::Meta(e) => e.into(),
        other => PageError::internal(other.to_string()),
    }
}

/// `GET /datasets/{name}/diff/{a}/{b}`: files added, removed and changed between two versions,
/// with rows and columns for CSV, TSV and Parquet files (`cairn data diff`'s answer).
pub async fn diff(
    State(ui): State<Shared>,
    Path((name, a, b)): Path<(String, String, String)>,
) -> Result<Response, PageError> {
    let (va, vb): (i64, i64) = match (a.parse(), b.parse()) {
        (Ok(x), Ok(y)) => (x, y),
        _ => {
            return Err(PageError::not_found(format!(
                "'{a}' and '{b}' must be version numbers."
            )))
        }
    };
    let home = ui
        .data_home
        .clone()
        .ok_or_else(|| PageError::not_found("This server keeps no dataset bytes."))?;
    let store = ui.state.lineage.datasets().clone();
    let n = name.clone();
    let d = blocking(move || {
        for v in [va, vb] {
            if store.get_dataset_version(&n, v)?.is_none() {
                return Err(PageError::not_found(format!(
                    "Dataset version {n}@{v} not found."
                )));
            }
        }
        let repo = cairn_data::repo::DataRepo::open(&home, &home, store).map_err(data_error)?;
        let side_a = repo.side(&home, &format!("{n}@{va}")).map_err(data_error)?;
        let side_b = repo.side(&home, &format!("{n}@{vb}")).map_err(data_error)?;
        repo.diff(&side_a, &side_b).map_err(data_error)
    })
    .await?;
    let body = html! {
        h1 { (d.a) " → " (d.b) }
        p #diff-summary { (d.changes.len()) " files changed, " (d.unchanged) " unchanged." }
        @if !d.changes.is_empty() {
            table.grid #diff {
                thead { tr { th { "File" } th { "Change" } th.num { "Size before" } th.num { "Size after" } th.num { "Rows +" } th.num { "Rows −" } th { "Columns" } } }
                tbody { @for c in &d.changes { tr {
                    td { (if c.path.is_empty() { d.a.as_str() } else { c.path.as_str() }) }
                    td { (format!("{:?}", c.change).to_lowercase()) }
                    td.num { (c.size_a.map(|s| format::bytes(s as i64)).unwrap_or_default()) }
                    td.num { (c.size_b.map(|s| format::bytes(s as i64)).unwrap_or_default()) }
                    @match &c.table {
                        Some(t) => {
                            td.num { (t.rows_added) }
                            td.num { (t.rows_removed) }
                            td {
                                @for col in &t.columns_added { span.tag { "+" (col) } }
                                @for col in &t.columns_removed { span.tag { "−" (col) } }
                                @for (col, ta, tb) in &t.type_changes { span.tag { (col) ": " (ta) " → " (tb) } }
                            }
                        }
                        None => { td {} td {} td {} }
                    }
                } } }
            }
        }
    };
    Ok(Html(
        document(
            "Dataset diff",
            &[
                ("Data".into(), "/datasets".into()),
                (name.clone(), format!("/datasets/{}/{va}", enc(&name))),
            ],
            body,
        )
        .into_string(),
    )
    .into_response())
}
