//! An experiment's evaluation datasets (MLflow 3's `mlflow.genai.datasets`): a list searched
//! with MLflow's dataset grammar (records, digest, times, tags), and a dataset's page with its
//! records (inputs, expectations, outputs, source, tags), paged.
use crate::error::{check_experiment_id, PageError};
use crate::format;
use crate::layout::{document, filter_form, filter_status};
use crate::params::Params;
use crate::{blocking, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde_json::Value;

const DATASETS_PER_PAGE: u64 = 50;
const RECORDS_PER_PAGE: u64 = 100;
/// Characters of one cell's JSON shown before it is cut.
const CELL_CHARS: usize = 300;

/// A JSON value in a cell: text as itself, anything else compact JSON, cut when long.
fn cell(v: Option<&Value>) -> Markup {
    let text = match v {
        None | Some(Value::Null) => return html! { span.muted { "-" } },
        Some(Value::Object(o)) if o.is_empty() => return html! { span.muted { "-" } },
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let shown: String = text.chars().take(CELL_CHARS).collect();
    let cut = shown.len() < text.len();
    html! { code.json { (shown) @if cut { "…" } } }
}

/// `GET /experiments/{id}/evaluation-datasets?filter=...&page_token=...`.
pub async fn list(
    State(ui): State<Shared>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    check_experiment_id(&id)?;
    let p = Params::parse(raw.as_deref())?;
    let filter = p.get("filter").unwrap_or_default().to_string();
    let token = p.get("page_token").unwrap_or_default().to_string();
    let (experiment, found) = {
        let (ui, id, filter, token) = (ui.clone(), id.clone(), filter.clone(), token.clone());
        blocking(move || {
            let experiment = ui.state.tracking.get_experiment(&id)?;
            let found = ui.state.evaluation.search_datasets(
                vec![id],
                &filter,
                &[],
                Some(DATASETS_PER_PAGE),
                &token,
            );
            Ok((experiment, found))
        })
        .await?
    };
    let base = format!("/experiments/{id}/evaluation-datasets");
    let error = found.as_ref().err().map(|e| e.to_string());
    let status = filter_status(error.as_deref());
    let title = format!("Evaluation datasets of {}", experiment.name);
    let body = html! {
        h1 { (title) }
        p.meta {
            a href=(format!("/experiments/{id}")) { "Runs" } " · "
            a href=(format!("/experiments/{id}/traces")) { "Traces" } " · Evaluation datasets"
        }
        (filter_form("dataset-search", &base, &filter, "name LIKE 'qa%' and tags.team = 'search'", "Filter evaluation datasets", error.as_deref()))
        @match &found {
            Err(_) => p.muted { "Fix the filter to see datasets." },
            Ok(page) if page.items.is_empty() => p.muted {
                "No evaluation datasets. Create one with "
                code { "mlflow.genai.datasets.create_dataset(...)" } "."
            },
            Ok(page) => {
                table.grid #evaluation-datasets {
                    thead { tr {
                        th { "Name" } th.num { "Records" } th { "Digest" } th { "Created" }
                        th { "Updated" } th { "By" } th { "Tags" }
                    } }
                    tbody {
                        @for d in &page.items {
                            tr {
                                td { a href=(format!("{base}/{}", d.dataset_id)) { (d.name) } }
                                td.num { (d.num_records) }
                                td { code { (d.digest) } }
                                td { (format::time(d.created_time)) }
                                td { (format::time(d.last_update_time)) }
                                td { (d.last_updated_by.as_deref().or(d.created_by.as_deref()).unwrap_or("")) }
                                td { @for t in d.tags.iter().filter(|t| !t.key.starts_with("mlflow.")) {
                                    span.tag { (t.key) "=" (t.value) } " "
                                } }
                            }
                        }
                    }
                }
                @if let Some(next) = page.next_offset {
                    p.pager {
                        a href=(format!("{base}?{}", format::query(&[("filter", &filter), ("page_token", &cairn_core::search::page_token(next))]))) { "Next page" }
                    }
                }
            }
        }
    };
    let crumbs = vec![
        ("Experiments".to_string(), "/experiments".to_string()),
        (experiment.name.clone(), format!("/experiments/{id}")),
    ];
    Ok((status, Html(document(&title, &crumbs, body).into_string())).into_response())
}

/// `GET /experiments/{id}/evaluation-datasets/{dataset_id}?page_token=...`.
pub async fn page(
    State(ui): State<Shared>,
    Path((id, dataset_id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    check_experiment_id(&id)?;
    let p = Params::parse(raw.as_deref())?;
    let token = p.get("page_token").unwrap_or_default().to_string();
    let (experiment, dataset, records) = {
        let (ui, id, dataset_id) = (ui.clone(), id.clone(), dataset_id.clone());
        blocking(move || {
            let experiment = ui.state.tracking.get_experiment(&id)?;
            let dataset = ui.state.evaluation.get_dataset(&dataset_id)?;
            let records =
                ui.state
                    .evaluation
                    .get_records(&dataset_id, Some(RECORDS_PER_PAGE), &token)?;
            Ok((experiment, dataset, records))
        })
        .await?
    };
    // A reader of this experiment reaches only its datasets.
    if !dataset.experiment_ids.contains(&id) {
        return Err(PageError::not_found(format!(
            "No evaluation dataset '{dataset_id}' in experiment {id}."
        )));
    }
    let rows: Vec<Value> = records
        .items
        .iter()
        .map(|r| serde_json::from_str(&r.payload).unwrap_or(Value::Null))
        .collect();
    let base = format!("/experiments/{id}/evaluation-datasets/{dataset_id}");
    let title = format!("Evaluation dataset {}", dataset.name);
    let body = html! {
        h1 { (title) }
        p.meta {
            (dataset.num_records) " records · digest " code { (dataset.digest) }
            " · created " (format::time(dataset.created_time))
            @if let Some(by) = &dataset.created_by { " by " (by) }
            " · updated " (format::time(dataset.last_update_time))
            " · id " code { (dataset.dataset_id) }
        }
        @if !dataset.tags.is_empty() {
            div.tags { @for t in &dataset.tags { span.tag { (t.key) "=" (t.value) } " " } }
        }
        @if rows.is_empty() {
            p.muted { "No records. Add some with " code { "dataset.merge_records(...)" } "." }
        } @else {
            table.grid.records #records {
                thead { tr {
                    th { "Inputs" } th { "Expectations" } th { "Outputs" } th { "Source" }
                    th { "Tags" } th { "Updated" }
                } }
                tbody {
                    @for (r, row) in records.items.iter().zip(&rows) {
                        tr data-record=(r.record_id) {
                            td { (cell(row.get("inputs"))) }
                            td { (cell(row.get("expectations"))) }
                            td { (cell(row.get("outputs"))) }
                            td { (cell(row.get("source").and_then(|s| s.get("source_type")).or(row.get("source")))) }
                            td { (cell(row.get("tags"))) }
                            td { (format::time(r.last_update_time)) }
                        }
                    }
                }
            }
            @if let Some(next) = records.next_offset {
                p.pager {
                    a href=(format!("{base}?{}", format::query(&[("page_token", &cairn_core::search::page_token(next))]))) { "Next records" }
                }
            }
        }
    };
    let crumbs = vec![
        ("Experiments".to_string(), "/experiments".to_string()),
        (experiment.name.clone(), format!("/experiments/{id}")),
        (
            "Evaluation datasets".to_string(),
            format!("/experiments/{id}/evaluation-datasets"),
        ),
    ];
    Ok(Html(document(&title, &crumbs, body).into_string()).into_response())
}
