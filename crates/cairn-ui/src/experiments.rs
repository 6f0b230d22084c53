//! The experiments list and the runs table: MLflow's search grammar in the search box (run by
//! the store; a bad filter is shown next to the box with status 400), sorting by any column,
//! columns chosen from the experiments' metric, param and tag keys, paging, grouping by a param
//! or tag with min/mean/max of a metric, and selection for comparison. All state is in the URL.
use crate::csrf::{self, CsrfToken};
use crate::format::{self, enc};
use crate::layout::{button_form, csrf_field, document, rename_form};
use crate::params::Params;
use crate::viewer::Viewer;
use crate::{blocking, PageError, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use cairn_core::auth::{Permission, ResourceType};
use cairn_core::model::{
    Experiment, ExperimentActivity, LifecycleStage, Run, RunKeyKind, ViewType,
};
use cairn_core::search::page_token;
use cairn_core::Error;
use maud::{html, Markup};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

const PAGE_SIZE: u64 = 100;
const MAX_PAGE_SIZE: u64 = 1000;
/// Default columns: this many metric and param keys, taken from the page's runs.
const DEFAULT_COLUMNS: usize = 6;
/// Keys the column chooser lists at once (an experiment may have 12,000).
const CHOOSER_LIMIT: u64 = 200;
/// Runs read for grouping, at most.
const GROUP_MAX_RUNS: u64 = 50_000;

fn view_of(p: &Params) -> Result<(ViewType, &'static str), PageError> {
    let v = p.choice("view", &["active", "deleted", "all"])?;
    Ok((
        match v {
            "deleted" => ViewType::DeletedOnly,
            "all" => ViewType::All,
            _ => ViewType::ActiveOnly,
        },
        v,
    ))
}

/// `GET /` and `/experiments`: every experiment with its run count and last activity; `q`
/// searches names.
pub async fn list(
    State(ui): State<Shared>,
    viewer: Viewer,
    token: CsrfToken,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let q = p.str("q").to_string();
    let (view, view_name) = view_of(&p)?;
    let filter = if q.is_empty() {
        String::new()
    } else {
        format!("name ILIKE '%{}%'", q.replace('\'', "''"))
    };
    let tracking = ui.state.tracking.clone();
    let (experiments, activity) = blocking(move || {
        let page = tracking.search_experiments(
            &filter,
            &["last_update_time DESC".to_string()],
            view,
            Some(1000),
            "",
        )?;
        let mut readable = Vec::with_capacity(page.items.len());
        for e in page.items {
            if viewer.may(ResourceType::Experiment, &e.experiment_id, Permission::Read)? {
                readable.push(e);
            }
        }
        let ids: Vec<String> = readable.iter().map(|e| e.experiment_id.clone()).collect();
        let activity = tracking.experiment_activity(&ids)?;
        Ok((readable, activity))
    })
    .await?;
    let body = html! {
        h1 { "Experiments" }
        form.search method="get" action="/experiments" {
            input type="search" name="q" value=(q) placeholder="Search by name" aria-label="Search experiments by name";
            select name="view" {
                @for v in ["active", "deleted", "all"] {
                    option value=(v) selected[v == view_name] { (v) }
                }
            }
            button { "Search" }
        }
        @if experiments.is_empty() {
            p.muted { "No experiments match." }
        } @else {
            form #experiment-selection method="get" action="/runs" {
                div.toolbar { button type="submit" { "Show runs of the selected experiments" } }
                table.grid #experiments {
                    thead { tr { th {} th { "Name" } th { "ID" } th.num { "Runs" } th { "Last activity" } th { "Created" } th { "Tags" } } }
                    tbody {
                        @for (e, a) in experiments.iter().zip(&activity) {
                            (experiment_row(e, a))
                        }
                    }
                }
            }
        }
        details.panel {
            summary { "New experiment" }
            form method="post" action="/experiments" {
                (csrf_field(&token))
                input name="name" placeholder="Name" required;
                button { "Create" }
            }
        }
    };
    Ok(Html(document("Experiments", &[], body).into_string()).into_response())
}

fn experiment_row(e: &Experiment, a: &ExperimentActivity) -> Markup {
    html! {
        tr {
            td { input type="checkbox" name="experiments" value=(e.experiment_id) aria-label={ "Select " (e.name) }; }
            td {
                a href={ "/experiments/" (e.experiment_id) } { (e.name) }
                @if e.lifecycle_stage == LifecycleStage::Deleted { " " span.badge { "deleted" } }
            }
            td { (e.experiment_id) }
            td.num { (a.runs) }
            td { (format::opt_time(a.last_activity.or(Some(e.last_update_time)))) }
            td { (format::time(e.creation_time)) }
            td.tags {
                @for t in e.tags.iter().filter(|t| !t.key.starts_with("mlflow.")) {
                    span.tag { (t.key) "=" (t.value) }
                }
            }
        }
    }
}

/// `POST /experiments`: creates an experiment and opens it.
pub async fn create(
    State(ui): State<Shared>,
    viewer: Viewer,
    token: CsrfToken,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    csrf::check(&token, &form)?;
    let name = form.get("name").cloned().unwrap_or_default();
    let tracking = ui.state.tracking.clone();
    let id = blocking(move || {
        let id = tracking.create_experiment(name.trim(), None, vec![])?;
        viewer.created(ResourceType::Experiment, &id)?;
        Ok(id)
    })
    .await?;
    Ok(Redirect::to(&format!("/experiments/{id}")).into_response())
}

/// `POST /experiments/{id}/edit`: rename, set or delete a tag, delete or restore.
pub async fn edit(
    State(ui): State<Shared>,
    viewer: Viewer,
    token: CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    csrf::check(&token, &form)?;
    let field = |k: &str| {
        form.get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (action, name, key, value) = (field("action"), field("name"), field("key"), field("value"));
    let tracking = ui.state.tracking.clone();
    let exp = id.clone();
    blocking(move || {
        if matches!(action.as_str(), "delete" | "restore") {
            viewer.require(
                ResourceType::Experiment,
                &exp,
                Permission::Manage,
                "Deleting or restoring an experiment",
            )?;
        }
        match action.as_str() {
            "rename" => tracking.rename_experiment(&exp, &name)?,
            "set_tag" => tracking.set_experiment_tag(&exp, &key, &value)?,
            "delete_tag" => tracking.delete_experiment_tag(&exp, &key)?,
            "delete" => tracking.delete_experiment(&exp)?,
            "restore" => tracking.restore_experiment(&exp)?,
            other => {
                return Err(PageError::bad_request(format!(
                    "Unknown experiment action '{other}'."
                )))
            }
        }
        Ok(())
    })
    .await?;
    Ok(Redirect::to(&format!("/experiments/{}", enc(&id))).into_response())
}

/// A column of the runs table: an entity (`metrics`, `params`, `tags`) and a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// `metrics`, `params` or `tags`.
    pub entity: &'static str,
    /// The key.
    pub key: String,
}

impl Column {
    /// Reads `metrics.KEY`, `params.KEY` or `tags.KEY` (also `metric.`, `param.`, `tag.`).
    pub fn parse(spec: &str) -> Result<Column, PageError> {
        let (prefix, key) = spec.split_once('.').ok_or_else(|| {
            PageError::bad_request(format!(
                "Column '{spec}' must be metrics.KEY, params.KEY or tags.KEY."
            ))
        })?;
        let entity = match prefix {
            "metrics" | "metric" => "metrics",
            "params" | "param" => "params",
            "tags" | "tag" => "tags",
            _ => {
                return Err(PageError::bad_request(format!(
                    "Column '{spec}' must start with metrics., params. or tags."
                )))
            }
        };
        if key.is_empty() {
            return Err(PageError::bad_request(format!(
                "Column '{spec}' names no key."
            )));
        }
        Ok(Column {
            entity,
            key: key.to_string(),
        })
    }

    /// `metrics.KEY` as it goes back into URLs.
    pub fn spec(&self) -> String {
        format!("{}.{}", self.entity, self.key)
    }

    /// This column in MLflow's `order_by` grammar.
    fn order_by(&self, ascending: bool) -> String {
        format!(
            "{}.`{}` {}",
            self.entity,
            self.key.replace('`', ""),
            if ascending { "ASC" } else { "DESC" }
        )
    }

    /// The run's value in this column.
    pub fn value(&self, run: &Run) -> Option<String> {
        match self.entity {
            "metrics" => run
                .metrics
                .iter()
                .find(|m| m.key == self.key)
                .map(|m| format::number(m.value)),
            "params" => run
                .params
                .iter()
                .find(|p| p.key == self.key)
                .map(|p| p.value.clone()),
            _ => run
                .tags
                .iter()
                .find(|t| t.key == self.key)
                .map(|t| t.value.clone()),
        }
    }

    /// The run's value as a number, for aggregates.
    fn number(&self, run: &Run) -> Option<f64> {
        match self.entity {
            "metrics" => run
                .metrics
                .iter()
                .find(|m| m.key == self.key)
                .map(|m| m.value)
                .filter(|v| v.is_finite()),
            _ => self.value(run).and_then(|v| v.parse().ok()),
        }
    }
}

/// Attribute columns that sort by name in MLflow's grammar.
const ATTRIBUTE_SORTS: [(&str, &str); 3] = [
    ("Run", "attributes.run_name"),
    ("Created", "attributes.start_time"),
    ("Status", "attributes.status"),
];

/// Everything a runs table view is made of, read from the URL.
#[derive(Clone)]
struct RunsView {
    experiment_ids: Vec<String>,
    filter: String,
    order: String,
    columns: Vec<Column>,
    offset: u64,
    size: u64,
    view: ViewType,
    view_name: &'static str,
    group: Option<Column>,
    agg: Option<Column>,
}

impl RunsView {
    fn parse(experiment_ids: Vec<String>, p: &Params) -> Result<RunsView, PageError> {
        let (view, view_name) = view_of(p)?;
        let size = p.num("size")?.unwrap_or(PAGE_SIZE);
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(PageError::bad_request(format!(
                "The parameter 'size' must be between 1 and {MAX_PAGE_SIZE}, not {size}."
            )));
        }
        Ok(RunsView {
            experiment_ids,
            filter: p.str("filter").to_string(),
            order: p.str("order").to_string(),
            columns: p
                .all("col")
                .iter()
                .map(|c| Column::parse(c))
                .collect::<Result<_, _>>()?,
            offset: p.num("offset")?.unwrap_or(0),
            size,
            view,
            view_name,
            group: p.get("group").map(Column::parse).transpose()?,
            agg: p.get("agg").map(Column::parse).transpose()?,
        })
    }

    /// This view's URL with some parameters replaced (`None` drops one); the offset is kept
    /// only when given, so any other change goes back to the first page.
    fn url(&self, base: &str, changes: &[(&str, Option<&str>)]) -> String {
        let default_view = if self.view_name == "active" {
            ""
        } else {
            self.view_name
        };
        let size = if self.size == PAGE_SIZE {
            String::new()
        } else {
            self.size.to_string()
        };
        let group = self.group.as_ref().map(Column::spec).unwrap_or_default();
        let agg = self.agg.as_ref().map(Column::spec).unwrap_or_default();
        let cols: Vec<String> = self.columns.iter().map(Column::spec).collect();
        let current: Vec<(&str, Vec<&str>)> = vec![
            ("filter", vec![self.filter.as_str()]),
            ("order", vec![self.order.as_str()]),
            ("col", cols.iter().map(String::as_str).collect()),
            ("view", vec![default_view]),
            ("size", vec![size.as_str()]),
            ("group", vec![group.as_str()]),
            ("agg", vec![agg.as_str()]),
            ("offset", vec![]),
        ];
        let mut q = Vec::new();
        for (key, values) in current {
            let values = match changes.iter().find(|(k, _)| *k == key) {
                Some((_, new)) => new.iter().copied().collect(),
                None => values,
            };
            q.extend(
                values
                    .into_iter()
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{}={}", enc(key), enc(v))),
            );
        }
        if q.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", q.join("&"))
        }
    }
}

/// What the store answered for a view.
struct RunsPage {
    experiments: Vec<Experiment>,
    activity: Vec<ExperimentActivity>,
    runs: Result<(Vec<Run>, Option<u64>), String>,
    groups: Option<Vec<Group>>,
}

struct Group {
    value: String,
    runs: u64,
    min: Option<f64>,
    mean: Option<f64>,
    max: Option<f64>,
}

fn load(ui: &Shared, v: &RunsView) -> Result<RunsPage, PageError> {
    let tracking = &ui.state.tracking;
    let mut experiments = Vec::new();
    for id in &v.experiment_ids {
        experiments.push(tracking.get_experiment(id)?);
    }
    let activity = tracking.experiment_activity(&v.experiment_ids)?;
    let order: Vec<String> = if v.order.is_empty() {
        vec![]
    } else {
        vec![v.order.clone()]
    };
    let search = |offset: u64, limit: u64| {
        tracking.search_runs(
            v.experiment_ids.clone(),
            &v.filter,
            &order,
            v.view,
            Some(limit),
            &if offset == 0 {
                String::new()
            } else {
                page_token(offset)
            },
        )
    };
    let runs = match search(v.offset, v.size) {
        Ok(page) => Ok((page.items, page.next_offset)),
        Err(Error::InvalidParameter(m) | Error::BadRequest(m)) => Err(m),
        Err(e) => return Err(e.into()),
    };
    let groups = match (&v.group, &runs) {
        (Some(group), Ok(_)) => {
            let mut all = Vec::new();
            let mut offset = 0;
            loop {
                let page = search(offset, GROUP_MAX_RUNS.min(10_000))?;
                all.extend(page.items);
                match page.next_offset {
                    Some(next) if (all.len() as u64) < GROUP_MAX_RUNS => offset = next,
                    _ => break,
                }
            }
            Some(group_runs(&all, group, v.agg.as_ref()))
        }
        _ => None,
    };
    Ok(RunsPage {
        experiments,
        activity,
        runs,
        groups,
    })
}

fn group_runs(runs: &[Run], group: &Column, agg: Option<&Column>) -> Vec<Group> {
    let mut by: BTreeMap<String, (u64, Vec<f64>)> = BTreeMap::new();
    for run in runs {
        let key = group.value(run).unwrap_or_else(|| "(none)".into());
        let entry = by.entry(key).or_default();
        entry.0 += 1;
        if let Some(v) = agg.and_then(|a| a.number(run)) {
            entry.1.push(v);
        }
    }
    by.into_iter()
        .map(|(value, (runs, values))| Group {
            value,
            runs,
            min: values.iter().copied().reduce(f64::min),
            mean: (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64),
            max: values.iter().copied().reduce(f64::max),
        })
        .collect()
}

/// `GET /experiments/{id}` (and `/experiments/{id}/runs`, MLflow's link): one experiment's runs.
pub async fn runs_of_one(
    State(ui): State<Shared>,
    token: CsrfToken,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    runs_page(ui, token, vec![id], p).await
}

/// `GET /runs?experiments=1,2`: the runs of several experiments in one table.
pub async fn runs_of_many(
    State(ui): State<Shared>,
    token: CsrfToken,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let ids: Vec<String> = p
        .all("experiments")
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Err(PageError::bad_request(
            "Name the experiments to show: /runs?experiments=1,2",
        ));
    }
    runs_page(ui, token, ids, p).await
}

async fn runs_page(
    ui: Shared,
    token: CsrfToken,
    ids: Vec<String>,
    p: Params,
) -> Result<Response, PageError> {
    for id in &ids {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.len() > 19 {
            return Err(PageError::not_found(format!(
                "No experiment with id '{id}'."
            )));
        }
    }
    let mut view = RunsView::parse(ids, &p)?;
    let loaded = {
        let ui = ui.clone();
        let v = view.clone();
        blocking(move || load(&ui, &v)).await?
    };
    if view.columns.is_empty() {
        if let Ok((runs, _)) = &loaded.runs {
            view.columns = default_columns(runs);
        }
    }
    let status = if loaded.runs.is_err() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let (title, crumbs, base) = if view.experiment_ids.len() == 1 {
        let e = &loaded.experiments[0];
        (
            e.name.clone(),
            vec![("Experiments".to_string(), "/experiments".to_string())],
            format!("/experiments/{}", e.experiment_id),
        )
    } else {
        let names: Vec<&str> = loaded.experiments.iter().map(|e| e.name.as_str()).collect();
        (
            format!("Runs of {}", names.join(", ")),
            vec![("Experiments".to_string(), "/experiments".to_string())],
            "/runs".to_string(),
        )
    };
    let body = html! {
        @if view.experiment_ids.len() == 1 {
            (experiment_header(&loaded.experiments[0], &loaded.activity[0], &token))
        } @else {
            h1 { (title) }
        }
        (search_box(&view, &base, loaded.runs.as_ref().err()))
        (column_chooser(&view, &base))
        @if let Some(groups) = &loaded.groups { (group_table(&view, groups)) }
        @match &loaded.runs {
            Ok((runs, next)) => (runs_table(&view, &base, runs, *next, &loaded.experiments)),
            Err(_) => p.muted { "Fix the filter to see runs." },
        }
    };
    let html = document(&title, &crumbs, body).into_string();
    Ok((status, Html(html)).into_response())
}

/// The first metric and param keys of the page's runs, when the URL chooses none.
fn default_columns(runs: &[Run]) -> Vec<Column> {
    let mut metrics = std::collections::BTreeSet::new();
    let mut params = std::collections::BTreeSet::new();
    for run in runs {
        metrics.extend(run.metrics.iter().map(|m| m.key.as_str()));
        params.extend(run.params.iter().map(|p| p.key.as_str()));
    }
    let metrics = metrics.into_iter().take(DEFAULT_COLUMNS).map(|k| Column {
        entity: "metrics",
        key: k.to_string(),
    });
    let params = params.into_iter().take(DEFAULT_COLUMNS).map(|k| Column {
        entity: "params",
        key: k.to_string(),
    });
    metrics.chain(params).collect()
}

fn experiment_header(e: &Experiment, a: &ExperimentActivity, token: &CsrfToken) -> Markup {
    let action = format!("/experiments/{}/edit", e.experiment_id);
    let user_tags: Vec<_> = e
        .tags
        .iter()
        .filter(|t| !t.key.starts_with("mlflow."))
        .collect();
    let description = e
        .tags
        .iter()
        .find(|t| t.key == "mlflow.note.content")
        .map(|t| t.value.as_str());
    html! {
        h1 {
            (e.name)
            @if e.lifecycle_stage == LifecycleStage::Deleted { " " span.badge { "deleted" } }
        }
        p.meta {
            "ID " (e.experiment_id) " · " (a.runs) " runs · last activity "
            (format::opt_time(a.last_activity)) " · artifacts at " code { (e.artifact_location) }
            " · " a #traces-link href=(format!("/experiments/{}/traces", e.experiment_id)) { "Traces" }
            " · " a #evaluation-link href=(format!("/experiments/{}/evaluation-datasets", e.experiment_id)) { "Evaluation datasets" }
        }
        @if let Some(d) = description { p.description { (d) } }
        div.tags {
            @for t in &user_tags {
                span.tag { (t.key) "=" (t.value) }
            }
        }
        details.panel {
            summary { "Manage experiment" }
            (rename_form(&action, token, &e.name))
            form.inline method="post" action=(action) {
                (csrf_field(token))
                input type="hidden" name="action" value="set_tag";
                input name="key" placeholder="tag key" required;
                input name="value" placeholder="value";
                button { "Set tag" }
            }
            @for t in &user_tags {
                (button_form(&action, token, &[("action", "delete_tag"), ("key", &t.key)], &format!("Remove tag {}", t.key), None))
            }
            @if e.lifecycle_stage == LifecycleStage::Deleted {
                (button_form(&action, token, &[("action", "restore")], "Restore experiment", None))
            } @else if e.experiment_id != "0" {
                (button_form(&action, token, &[("action", "delete")], "Delete experiment", Some("Delete this experiment and its runs? It can be restored.")))
            }
        }
    }
}

fn hidden_state(view: &RunsView, skip: &[&str]) -> Markup {
    html! {
        @if !skip.contains(&"filter") && !view.filter.is_empty() { input type="hidden" name="filter" value=(view.filter); }
        @if !skip.contains(&"order") && !view.order.is_empty() { input type="hidden" name="order" value=(view.order); }
        @if !skip.contains(&"col") { @for c in &view.columns { input type="hidden" name="col" value=(c.spec()); } }
        @if !skip.contains(&"view") && view.view_name != "active" { input type="hidden" name="view" value=(view.view_name); }
        @if !skip.contains(&"group") { @if let Some(g) = &view.group { input type="hidden" name="group" value=(g.spec()); } }
        @if !skip.contains(&"group") { @if let Some(a) = &view.agg { input type="hidden" name="agg" value=(a.spec()); } }
        @if view.experiment_ids.len() > 1 { input type="hidden" name="experiments" value=(view.experiment_ids.join(",")); }
    }
}

fn search_box(view: &RunsView, base: &str, error: Option<&String>) -> Markup {
    html! {
        form.search #run-search method="get" action=(base) {
            input type="search" name="filter" value=(view.filter) size="60"
                placeholder="metrics.rmse < 1 and params.model = \"tree\"" aria-label="Filter runs";
            select name="view" aria-label="Runs shown" {
                @for v in ["active", "deleted", "all"] { option value=(v) selected[v == view.view_name] { (v) } }
            }
            (hidden_state(view, &["filter", "view"]))
            button { "Search" }
            @if let Some(e) = error { p.error #filter-error role="alert" { (e) } }
        }
    }
}

fn column_chooser(view: &RunsView, base: &str) -> Markup {
    let keys_url = format!(
        "/ui-api/keys?experiments={}",
        enc(&view.experiment_ids.join(","))
    );
    let browse = if view.experiment_ids.len() == 1 {
        format!("/experiments/{}/columns", view.experiment_ids[0])
    } else {
        String::new()
    };
    html! {
        details.panel #columns {
            summary { "Columns (" (view.columns.len()) ")" }
            form #column-form method="get" action=(base) data-keys=(keys_url) {
                (hidden_state(view, &["col"]))
                div.chosen {
                    @for c in &view.columns {
                        label.chip { input type="checkbox" name="col" value=(c.spec()) checked; " " (c.spec()) }
                    }
                }
                div.chooser {
                    input type="search" .key-search placeholder="Find a metric, param or tag key" aria-label="Find a column";
                    div.key-results {}
                }
                input name="col" placeholder="or type metrics.KEY / params.KEY / tags.KEY" size="40";
                button { "Apply columns" }
                @if !browse.is_empty() { " " a href=(browse) { "Browse all keys" } }
            }
            form.inline method="get" action=(base) {
                (hidden_state(view, &["group"]))
                label { "Group by " input name="group" value=(view.group.as_ref().map(Column::spec).unwrap_or_default()) placeholder="params.KEY"; }
                label { " with " input name="agg" value=(view.agg.as_ref().map(Column::spec).unwrap_or_default()) placeholder="metrics.KEY"; }
                button { "Group" }
            }
        }
    }
}

fn group_table(view: &RunsView, groups: &[Group]) -> Markup {
    let agg = view.agg.as_ref().map(Column::spec).unwrap_or_default();
    html! {
        table.grid #groups {
            thead { tr {
                th { (view.group.as_ref().map(Column::spec).unwrap_or_default()) }
                th.num { "Runs" }
                @if !agg.is_empty() { th.num { "min " (agg) } th.num { "mean " (agg) } th.num { "max " (agg) } }
            } }
            tbody {
                @for g in groups {
                    tr {
                        td { (g.value) }
                        td.num { (g.runs) }
                        @if !agg.is_empty() {
                            td.num { (g.min.map(format::number).unwrap_or_default()) }
                            td.num { (g.mean.map(format::number).unwrap_or_default()) }
                            td.num { (g.max.map(format::number).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// The sort link of a column header: toggles direction when this column sorts already.
fn sort_link(
    view: &RunsView,
    base: &str,
    order_asc: &str,
    order_desc: &str,
    label: &str,
) -> Markup {
    let (arrow, next) = if view.order == order_desc {
        (" ↓", order_asc)
    } else if view.order == order_asc {
        (" ↑", order_desc)
    } else {
        ("", order_desc)
    };
    let href = view.url(base, &[("order", Some(next))]);
    html! { a.sort href=(href) title={ "Sort by " (label) } { (label) (arrow) } }
}

fn runs_table(
    view: &RunsView,
    base: &str,
    runs: &[Run],
    next: Option<u64>,
    experiments: &[Experiment],
) -> Markup {
    let many = experiments.len() > 1;
    let exp_name = |id: &str| {
        experiments
            .iter()
            .find(|e| e.experiment_id == id)
            .map(|e| e.name.clone())
            .unwrap_or_default()
    };
    let first = view.offset + 1;
    let last = view.offset + runs.len() as u64;
    let prev = view.offset.saturating_sub(view.size);
    let metric_keys: Vec<&Column> = view
        .columns
        .iter()
        .filter(|c| c.entity == "metrics")
        .collect();
    html! {
        form #selection method="get" action="/compare" {
            div.toolbar {
                span.count { @if runs.is_empty() { "No runs" } @else { "Runs " (first) "–" (last) } }
                button type="submit" formaction="/compare" { "Compare selected" }
                " "
                select name="metric" aria-label="Metric to chart" {
                    @for c in &metric_keys { option value=(c.key) { (c.key) } }
                }
                button type="submit" formaction="/chart" { "Chart selected" }
                span.pager {
                    @if view.offset > 0 {
                        a href=(view.url(base, &[("offset", Some(&prev.to_string()))])) { "← Previous" }
                    }
                    @if let Some(n) = next {
                        " " a #next-page href=(view.url(base, &[("offset", Some(&n.to_string()))])) { "Next →" }
                    }
                }
            }
            table.grid #runs {
                thead { tr {
                    th { input type="checkbox" .select-all aria-label="Select all"; }
                    @for (label, attr) in ATTRIBUTE_SORTS {
                        th { (sort_link(view, base, &format!("{attr} ASC"), &format!("{attr} DESC"), label)) }
                    }
                    th { "Duration" }
                    @if many { th { "Experiment" } }
                    @for c in &view.columns {
                        th.num[c.entity == "metrics"] data-col=(c.spec()) {
                            (sort_link(view, base, &c.order_by(true), &c.order_by(false), &c.spec()))
                        }
                    }
                } }
                tbody {
                    @for run in runs {
                        @let i = &run.info;
                        tr {
                            td { input type="checkbox" name="run" value=(i.run_id) aria-label={ "Select " (i.run_name) }; }
                            td { a href={ "/experiments/" (i.experiment_id) "/runs/" (i.run_id) } { (i.run_name) } }
                            td { (format::time(i.start_time)) }
                            td { span class={ "status " (i.status.as_str().to_lowercase()) } { (i.status.as_str()) } }
                            td { (i.end_time.map(|e| format::duration(e - i.start_time)).unwrap_or_default()) }
                            @if many { td { (exp_name(&i.experiment_id)) } }
                            @for c in &view.columns {
                                td.num[c.entity == "metrics"] { (c.value(run).unwrap_or_default()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /experiments/{id}/columns?q=&kind=`: every key (up to the chooser's limit) matching
/// `q`, as checkboxes that go back to the runs table; works without script.
pub async fn columns(
    State(ui): State<Shared>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let q = p.str("q").to_string();
    let chosen = p.all("col");
    let tracking = ui.state.tracking.clone();
    let (exp, keys) = {
        let (id, q) = (id.clone(), q.clone());
        blocking(move || {
            let exp = tracking.get_experiment(&id)?;
            let ids = vec![id];
            let mut keys = Vec::new();
            for (entity, kind) in [
                ("metrics", RunKeyKind::Metric),
                ("params", RunKeyKind::Param),
                ("tags", RunKeyKind::Tag),
            ] {
                for k in tracking.run_keys(&ids, kind, &q, CHOOSER_LIMIT + 1)? {
                    keys.push(format!("{entity}.{k}"));
                }
            }
            Ok((exp, keys))
        })
        .await?
    };
    let base = format!("/experiments/{}", exp.experiment_id);
    let body = html! {
        h1 { "Columns of " (exp.name) }
        form.search method="get" action={ (base) "/columns" } {
            input type="search" name="q" value=(q) placeholder="Find keys";
            @for c in &chosen { input type="hidden" name="col" value=(c); }
            button { "Find" }
        }
        form method="get" action=(base) {
            div.key-list {
                @for k in &keys {
                    label.chip { input type="checkbox" name="col" value=(k) checked[chosen.contains(k)]; " " (k) }
                }
            }
            p.muted { "At most " (CHOOSER_LIMIT) " keys of each kind are listed; narrow the search to find others." }
            button { "Show these columns" }
        }
    };
    Ok(Html(
        document(
            "Columns",
            &[
                ("Experiments".into(), "/experiments".into()),
                (exp.name.clone(), base.clone()),
            ],
            body,
        )
        .into_string(),
    )
    .into_response())
}

/// `GET /ui-api/keys?experiments=1,2&kind=metric|param|tag&q=`: keys for the column chooser,
/// at most 200, as JSON (`{"keys": [...], "truncated": bool}`).
pub async fn keys_json(
    State(ui): State<Shared>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let ids: Vec<String> = p
        .str("experiments")
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let q = p.str("q").to_string();
    let kinds: Vec<(&str, RunKeyKind)> =
        match p.choice("kind", &["all", "metric", "param", "tag"])? {
            "metric" => vec![("metrics", RunKeyKind::Metric)],
            "param" => vec![("params", RunKeyKind::Param)],
            "tag" => vec![("tags", RunKeyKind::Tag)],
            _ => vec![
                ("metrics", RunKeyKind::Metric),
                ("params", RunKeyKind::Param),
                ("tags", RunKeyKind::Tag),
            ],
        };
    let tracking = ui.state.tracking.clone();
    let (keys, truncated) = blocking(move || {
        let mut keys = Vec::new();
        let mut truncated = false;
        for (entity, kind) in kinds {
            let found = tracking.run_keys(&ids, kind, &q, CHOOSER_LIMIT + 1)?;
            truncated |= found.len() as u64 > CHOOSER_LIMIT;
            keys.extend(
                found
                    .into_iter()
                    .take(CHOOSER_LIMIT as usize)
                    .map(|k| format!("{entity}.{k}")),
            );
        }
        Ok((keys, truncated))
    })
    .await?;
    Ok(Json(json!({"keys": keys, "truncated": truncated})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_parse_and_order() {
        let c = Column::parse("metrics.val loss").unwrap();
        assert_eq!(c.entity, "metrics");
        assert_eq!(c.order_by(false), "metrics.`val loss` DESC");
        assert!(Column::parse("loss").is_err());
        assert!(Column::parse("foo.loss").is_err());
        assert_eq!(Column::parse("param.a.b").unwrap().key, "a.b");
    }

    #[test]
    fn view_urls_keep_state_and_replace_one_value() {
        let p = Params::parse(Some(
            "filter=metrics.a%3E1&col=metrics.a&col=params.b&offset=100",
        ))
        .unwrap();
        let v = RunsView::parse(vec!["1".into()], &p).unwrap();
        assert_eq!(v.offset, 100);
        let url = v.url("/experiments/1", &[("order", Some("metrics.`a` DESC"))]);
        assert_eq!(
            url,
            "/experiments/1?filter=metrics.a%3E1&order=metrics.%60a%60%20DESC&col=metrics.a&col=params.b"
        );
    }
}
