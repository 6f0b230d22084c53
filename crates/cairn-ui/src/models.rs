//! Registered models, their versions, aliases, stages and tags; a version's signature, source
//! run, serving counters, and its lineage graph: model version -> run -> code commit and
//! dataset versions -> validation results.
use crate::csrf::{self, CsrfToken};
use crate::format::{self, enc};
use crate::layout::{button_form, csrf_field, document, kv_table, rename_form};
use crate::params::Params;
use crate::viewer::Viewer;
use crate::{blocking, PageError, Shared};
use axum::extract::{Path, RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use cairn_api::metrics::VersionSnapshot;
use cairn_core::auth::{Permission, ResourceType};
use cairn_core::lineage::ModelLineage;
use cairn_core::model::{DatasetValidation, ModelVersion, RegisteredModel, Stage};
use maud::{html, Markup};
use serde_json::Value;
use std::collections::HashMap;

/// The tag holding a version's ONNX signature (set by the server at registration).
pub const SIGNATURE_TAG: &str = cairn_api::served::SIGNATURE_TAG;

/// `GET /models?q=`.
pub async fn list(
    State(ui): State<Shared>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let p = Params::parse(raw.as_deref())?;
    let q = p.str("q").to_string();
    let filter = if q.is_empty() {
        String::new()
    } else {
        format!("name ILIKE '%{}%'", q.replace('\'', "''"))
    };
    let registry = ui.state.registry.clone();
    let models = blocking(move || {
        let mut readable = Vec::new();
        for m in registry.search_models(&filter, &[], Some(1000), "")?.items {
            if viewer.may(ResourceType::RegisteredModel, &m.name, Permission::Read)? {
                readable.push(m);
            }
        }
        Ok(readable)
    })
    .await?;
    let body = html! {
        h1 { "Models" }
        form.search method="get" action="/models" {
            input type="search" name="q" value=(q) placeholder="Search by name" aria-label="Search models";
            button { "Search" }
        }
        @if models.is_empty() { p.muted { "No registered models." } } @else {
            table.grid #models {
                thead { tr { th { "Name" } th { "Latest versions" } th { "Aliases" } th { "Last modified" } th { "Tags" } } }
                tbody { @for m in &models { tr {
                    td { a href={ "/models/" (enc(&m.name)) } { (m.name) } }
                    td { @for v in &m.latest_versions {
                        a href={ "/models/" (enc(&m.name)) "/versions/" (v.version) } { "v" (v.version) }
                        @if v.current_stage != Stage::None { " (" (v.current_stage.as_str()) ")" } " "
                    } }
                    td { @for (a, v) in &m.aliases { span.tag { "@" (a) " → v" (v) } } }
                    td { (format::time(m.last_updated_time)) }
                    td { @for t in &m.tags { span.tag { (t.key) "=" (t.value) } } }
                } } }
            }
        }
    };
    Ok(Html(document("Models", &[], body).into_string()).into_response())
}

/// `GET /models/{name}`: the model, its versions and aliases, with edits.
pub async fn model(
    State(ui): State<Shared>,
    token: CsrfToken,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let registry = ui.state.registry.clone();
    let n = name.clone();
    let (model, versions) = blocking(move || {
        let model = registry.get_model(&n)?;
        let filter = format!("name = '{}'", n.replace('\'', "''"));
        let mut versions = Vec::new();
        let mut token = String::new();
        loop {
            let page = registry.search_versions(
                &filter,
                &["version_number DESC".into()],
                Some(1000),
                &token,
            )?;
            versions.extend(page.items);
            match page.next_offset {
                Some(next) => token = cairn_core::search::page_token(next),
                None => break,
            }
        }
        Ok((model, versions))
    })
    .await?;
    let href = format!("/models/{}", enc(&model.name));
    let edit = format!("{href}/edit");
    let body = html! {
        h1 { (model.name) }
        p.meta { "Created " (format::time(model.creation_time)) " · modified " (format::time(model.last_updated_time)) }
        form.stack method="post" action=(edit) {
            (csrf_field(&token))
            input type="hidden" name="action" value="describe";
            textarea name="description" rows="3" aria-label="Description" placeholder="Description" { (model.description) }
            button { "Save description" }
        }
        h2 { "Versions" }
        table.grid #versions {
            thead { tr { th { "Version" } th { "Stage" } th { "Aliases" } th { "Source run" } th { "Registered" } th { "Tags" } } }
            tbody { @for v in &versions { tr {
                td { a href={ (href) "/versions/" (v.version) } { "Version " (v.version) } }
                td { (v.current_stage.as_str()) }
                td { @for a in &v.aliases { span.tag.alias { "@" (a) } } }
                td { @if let Some(r) = v.run_id.as_deref().filter(|r| !r.is_empty()) { a href={ "/runs/" (r) } { (format::short(r)) } } }
                td { (format::time(v.creation_time)) }
                td { @for t in v.tags.iter().filter(|t| t.key != SIGNATURE_TAG) { span.tag { (t.key) "=" (t.value) } } }
            } } }
        }
        h2 { "Aliases" }
        (aliases_editor(&model, &edit, &token, None))
        h2 { "Tags" }
        (tags_editor(&model.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect::<Vec<_>>(), &edit, &token))
        details.panel {
            summary { "Manage model" }
            (rename_form(&edit, &token, &model.name))
            (button_form(&edit, &token, &[("action", "delete")], "Delete model", Some("Delete this model and all its versions? This cannot be undone.")))
        }
    };
    Ok(
        Html(document(&model.name, &[("Models".into(), "/models".into())], body).into_string())
            .into_response(),
    )
}

fn aliases_editor(
    model: &RegisteredModel,
    edit: &str,
    token: &CsrfToken,
    version: Option<i64>,
) -> Markup {
    html! {
        table.grid #aliases {
            thead { tr { th { "Alias" } th { "Version" } th {} } }
            tbody { @for (a, v) in &model.aliases { tr {
                td { "@" (a) }
                td { a href={ "/models/" (enc(&model.name)) "/versions/" (v) } { "Version " (v) } }
                td { (button_form(edit, token, &[("action", "delete_alias"), ("alias", a)], "Remove", Some("Remove this alias? Traffic sent to it will fail."))) }
            } } }
        }
        form.inline #set-alias method="post" action=(edit) {
            (csrf_field(token))
            input type="hidden" name="action" value="set_alias";
            input name="alias" placeholder="alias, e.g. champion" required aria-label="Alias";
            input name="version" type="number" min="1" value=[version] placeholder="version" required aria-label="Version";
            button { "Set or move alias" }
        }
    }
}

fn tags_editor(tags: &[(String, String)], edit: &str, token: &CsrfToken) -> Markup {
    html! {
        (kv_table(tags, "No tags."))
        @for (k, _) in tags { (button_form(edit, token, &[("action", "delete_tag"), ("key", k)], &format!("Remove tag {k}"), None)) }
        form.inline method="post" action=(edit) {
            (csrf_field(token))
            input type="hidden" name="action" value="set_tag";
            input name="key" placeholder="key" required aria-label="Tag key";
            input name="value" placeholder="value" aria-label="Tag value";
            button { "Set tag" }
        }
    }
}

fn field(form: &HashMap<String, String>, k: &str) -> String {
    form.get(k)
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

fn version_number(v: &str) -> Result<i64, PageError> {
    v.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| PageError::bad_request(format!("'{v}' is not a version number.")))
}

/// `POST /models/{name}/edit`: description, rename, tags, aliases, delete.
pub async fn edit_model(
    State(ui): State<Shared>,
    viewer: Viewer,
    token: CsrfToken,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    csrf::check(&token, &form)?;
    let action = field(&form, "action");
    let registry = ui.state.registry.clone();
    let target = blocking(move || {
        let mut target = format!("/models/{}", enc(&name));
        match action.as_str() {
            "describe" => {
                registry.update_model(
                    &name,
                    form.get("description").map(String::as_str).unwrap_or(""),
                )?;
            }
            "rename" => {
                let new_name = field(&form, "name");
                registry.rename_model(&name, &new_name)?;
                viewer.model_renamed(&name, &new_name)?;
                target = format!("/models/{}", enc(&new_name));
            }
            "set_tag" => {
                registry.set_model_tag(&name, &field(&form, "key"), &field(&form, "value"))?
            }
            "delete_tag" => registry.delete_model_tag(&name, &field(&form, "key"))?,
            "set_alias" => {
                let version = version_number(&field(&form, "version"))?;
                registry.set_alias(&name, &field(&form, "alias"), version)?;
                if let Some(back) = form.get("back").filter(|b| b.starts_with("/models/")) {
                    target = back.clone();
                }
            }
            "delete_alias" => registry.delete_alias(&name, &field(&form, "alias"))?,
            "delete" => {
                viewer.require(
                    ResourceType::RegisteredModel,
                    &name,
                    Permission::Manage,
                    "Deleting a model",
                )?;
                registry.delete_model(&name)?;
                viewer.model_deleted(&name)?;
                target = "/models".into();
            }
            other => {
                return Err(PageError::bad_request(format!(
                    "Unknown model action '{other}'."
                )))
            }
        }
        Ok(target)
    })
    .await?;
    Ok(Redirect::to(&target).into_response())
}

/// `POST /models/{name}/versions/{version}/edit`: description, stage, tags, delete.
pub async fn edit_version(
    State(ui): State<Shared>,
    viewer: Viewer,
    token: CsrfToken,
    Path((name, version)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, PageError> {
    csrf::check(&token, &form)?;
    let number = version_number(&version)?;
    let action = field(&form, "action");
    let registry = ui.state.registry.clone();
    let target = blocking(move || {
        let mut target = format!("/models/{}/versions/{number}", enc(&name));
        match action.as_str() {
            "describe" => {
                registry.update_version(
                    &name,
                    number,
                    form.get("description").map(String::as_str).unwrap_or(""),
                )?;
            }
            "stage" => {
                let stage = Stage::parse(&field(&form, "stage"))?;
                registry.transition_stage(
                    &name,
                    number,
                    stage,
                    form.contains_key("archive_others"),
                )?;
            }
            "set_tag" => registry.set_version_tag(
                &name,
                number,
                &field(&form, "key"),
                &field(&form, "value"),
            )?,
            "delete_tag" => registry.delete_version_tag(&name, number, &field(&form, "key"))?,
            "delete" => {
                viewer.require(
                    ResourceType::RegisteredModel,
                    &name,
                    Permission::Manage,
                    "Deleting a model version",
                )?;
                registry.delete_version(&name, number)?;
                target = format!("/models/{}", enc(&name));
            }
            other => {
                return Err(PageError::bad_request(format!(
                    "Unknown version action '{other}'."
                )))
            }
        }
        Ok(target)
    })
    .await?;
    Ok(Redirect::to(&target).into_response())
}

/// A version's signature from its tag: (inputs, outputs) as OIP metadata JSON.
pub fn signature_of(v: &ModelVersion) -> Option<(Vec<Value>, Vec<Value>)> {
    let tag = v.tags.iter().find(|t| t.key == SIGNATURE_TAG)?;
    let sig: Value = serde_json::from_str(&tag.value).ok()?;
    Some((
        sig["inputs"].as_array().cloned().unwrap_or_default(),
        sig["outputs"].as_array().cloned().unwrap_or_default(),
    ))
}

fn signature_table(specs: &[Value]) -> Markup {
    html! {
        table.grid.signature {
            thead { tr { th { "Name" } th { "Type" } th { "Shape" } } }
            tbody { @for s in specs { tr {
                td { (s["name"].as_str().unwrap_or("")) }
                td { (s["datatype"].as_str().unwrap_or("")) }
                td { (s["shape"].to_string()) }
            } } }
        }
    }
}

struct VersionData {
    model: RegisteredModel,
    lineage: ModelLineage,
    validations: Vec<(String, i64, Vec<DatasetValidation>)>,
}

/// `GET /models/{name}/versions/{version}`.
pub async fn version(
    State(ui): State<Shared>,
    token: CsrfToken,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let data = {
        let (ui, name, version) = (ui.clone(), name.clone(), version.clone());
        blocking(move || {
            let model = ui.state.registry.get_model(&name)?;
            let lineage = ui.state.lineage.of_model_version(&name, &version)?;
            let mut validations = Vec::new();
            if let Some(run) = &lineage.run {
                for input in &run.inputs {
                    for v in &input.versions {
                        let found = ui
                            .state
                            .lineage
                            .datasets()
                            .list_dataset_validations(&v.name, v.version)?;
                        validations.push((v.name.clone(), v.version, found));
                    }
                }
            }
            Ok(VersionData {
                model,
                lineage,
                validations,
            })
        })
        .await?
    };
    let v = &data.lineage.model_version;
    let number = v.version.to_string();
    let stats: Option<VersionSnapshot> = ui
        .serving
        .metrics
        .snapshot()
        .into_iter()
        .find(|s| s.model == v.name && s.version == number);
    let loaded = ui
        .serving
        .models
        .loaded_bytes(&v.name, v.version, v.creation_time);
    let href = format!("/models/{}/versions/{}", enc(&v.name), v.version);
    let edit = format!("{href}/edit");
    let model_edit = format!("/models/{}/edit", enc(&v.name));
    let signature = signature_of(v);
    let body = html! {
        h1 { (v.name) " version " (v.version)
            @for a in &v.aliases { " " span.tag.alias { "@" (a) } }
        }
        p.meta { "Stage " (v.current_stage.as_str()) " · registered " (format::time(v.creation_time)) " by " (v.user_id) " · status " (v.status) }
        p.meta { "Source " code { (v.source) } }
        @if signature.is_some() {
            p { a.button href={ (href) "/playground" } { "Open the playground" } }
        }
        h2 { "Lineage" }
        (lineage_graph(&data.lineage, &data.validations))
        h2 { "Promotion gate" }
        (gate_panel(v))
        h2 { "Serving" }
        p #loaded {
            @match &loaded {
                Some(bytes) => { span.status.finished { "Loaded" } " in this server (" (format::bytes(*bytes as i64)) " of graph)." }
                None => { span.status { "Not loaded" } " in this server: it loads on its first inference request." }
            }
        }
        @match &stats {
            Some(s) => {
                table.kv #serving {
                    tr { th { "Requests" } td { (s.requests) } }
                    tr { th { "Errors" } td { (s.errors) } }
                    tr { th { "Mean latency" } td { (format::number(s.mean_seconds * 1000.0)) " ms" } }
                    tr { th { "p50 / p95 / p99 under" } td {
                        (s.quantiles.iter().map(|q| q.map(|q| format!("{} ms", format::number(q * 1000.0))).unwrap_or_else(|| "-".into())).collect::<Vec<_>>().join(" / "))
                    } }
                }
            }
            None => p.muted { "No inference requests since this server started. Endpoint: "
                code { "/v2/models/" (v.name) "/versions/" (v.version) "/infer" } },
        }
        @if let Some((inputs, outputs)) = &signature {
            h2 { "Signature" }
            h3 { "Inputs" } (signature_table(inputs))
            h3 { "Outputs" } (signature_table(outputs))
        }
        h2 { "Aliases" }
        (aliases_editor(&data.model, &model_edit, &token, Some(v.version)))
        h2 { "Description" }
        form.stack method="post" action=(edit) {
            (csrf_field(&token))
            input type="hidden" name="action" value="describe";
            textarea name="description" rows="3" aria-label="Description" placeholder="Description" { (v.description) }
            button { "Save description" }
        }
        h2 { "Tags" }
        (tags_editor(&v.tags.iter().filter(|t| t.key != SIGNATURE_TAG).map(|t| (t.key.clone(), t.value.clone())).collect::<Vec<_>>(), &edit, &token))
        details.panel {
            summary { "Stage and deletion" }
            form.inline method="post" action=(edit) {
                (csrf_field(&token))
                input type="hidden" name="action" value="stage";
                select name="stage" aria-label="Stage" { @for s in ["None", "Staging", "Production", "Archived"] { option selected[s == v.current_stage.as_str()] { (s) } } }
                label { input type="checkbox" name="archive_others" value="1"; " archive other versions in that stage" }
                button { "Transition" }
            }
            (button_form(&edit, &token, &[("action", "delete")], "Delete version", Some("Delete this version? This cannot be undone.")))
        }
    };
    let crumbs = vec![
        ("Models".to_string(), "/models".to_string()),
        (v.name.clone(), format!("/models/{}", enc(&v.name))),
    ];
    Ok(
        Html(document(&format!("{} v{}", v.name, v.version), &crumbs, body).into_string())
            .into_response(),
    )
}

/// The lineage as boxes joined by arrows, left to right.
/// The version's last `cairn gate` outcome (its `cairn.gate.*` tags) and how it was promoted
/// (`cairn.promote.*`).
fn gate_panel(v: &ModelVersion) -> Markup {
    let tag = |k: &str| v.tags.iter().find(|t| t.key == k).map(|t| t.value.as_str());
    let result: Option<Value> = tag("cairn.gate.result").and_then(|r| serde_json::from_str(r).ok());
    let time = tag("cairn.gate.time")
        .and_then(|t| t.parse::<i64>().ok())
        .map(format::time);
    html! {
        div #gate {
            @match tag("cairn.gate.status") {
                None => p.muted { "No gate has run on this version. "
                    code { "cairn gate models:/" (v.name) "/" (v.version) " --policy gate.yaml" }
                    " measures it against a policy (metrics, latency, size, memory, data)." },
                Some(status) => {
                    p {
                        @if status == "passed" { span.status.finished { "Gate passed" } }
                        @else { span.status.failed { "Gate failed" } }
                        @if let Some(t) = &time { " " (t) }
                        @if let Some(with) = result.as_ref().and_then(|r| r["compared_with"].as_str()).filter(|w| !w.is_empty()) {
                            " · compared with " (with)
                        }
                    }
                    @if let Some(checks) = result.as_ref().and_then(|r| r["checks"].as_array()) {
                        table.grid {
                            thead { tr { th { "Requirement" } th { "Measured" } th { "Limit" } th { "Result" } } }
                            tbody {
                                @for c in checks {
                                    tr {
                                        td { (c["requirement"].as_str().unwrap_or_default()) }
                                        td { (c["measured"].as_str().unwrap_or_default()) }
                                        td { (c["limit"].as_str().unwrap_or_default()) }
                                        td { @if c["passed"].as_bool() == Some(true) { span.status.finished { "pass" } } @else { span.status.failed { "FAIL" } } }
                                    }
                                }
                            }
                        }
                    } @else if let Some(failed) = result.as_ref().and_then(|r| r["failed"].as_array()) {
                        p { "Failed: " (failed.iter().filter_map(|f| f.as_str()).collect::<Vec<_>>().join("; ")) }
                        p.muted { "The full table is in the run's " code { "gate/" } " artifacts." }
                    }
                }
            }
            @if let Some(alias) = tag("cairn.promote.alias") {
                p #promoted {
                    "Promoted to " span.tag.alias { "@" (alias) }
                    @if let Some(by) = tag("cairn.promote.by") { " by " (by) }
                    @if let Some(t) = tag("cairn.promote.time").and_then(|t| t.parse::<i64>().ok()) { " " (format::time(t)) }
                    @if tag("cairn.promote.forced") == Some("true") {
                        " · " span.status.failed { "forced" }
                        @if let Some(reason) = tag("cairn.promote.reason") { ": " (reason) }
                    }
                }
            }
        }
    }
}

fn lineage_graph(
    l: &ModelLineage,
    validations: &[(String, i64, Vec<DatasetValidation>)],
) -> Markup {
    let v = &l.model_version;
    html! {
        div.lineage #lineage {
            div.node.model { div.kind { "model version" } strong { (v.name) " v" (v.version) } }
            span.arrow { "→" }
            @match &l.run {
                None => div.node.missing { div.kind { "run" } "no run recorded" },
                Some(run) => {
                    div.node.run {
                        div.kind { "run" }
                        a href={ "/experiments/" (run.experiment_id) "/runs/" (run.run_id) } { (run.run_name) }
                        @if let Some(c) = &run.git_commit { div { "commit " code.commit { (format::short(c)) } } }
                        @if let Some(s) = &run.source_name { div.muted { (s) } }
                    }
                    span.arrow { "→" }
                    div.stack-nodes {
                        @if run.inputs.is_empty() { div.node.missing { div.kind { "data" } "no dataset inputs" } }
                        @for input in &run.inputs {
                            div.node.data {
                                div.kind { "dataset input" @if let Some(c) = &input.context { " (" (c) ")" } }
                                strong { (input.name) }
                                @if input.versions.is_empty() {
                                    div.muted { "digest " code { (input.digest) } " (not a Cairn dataset)" }
                                }
                                @for dv in &input.versions {
                                    div { a href={ "/datasets/" (enc(&dv.name)) "/" (dv.version) } { (dv.name) "@" (dv.version) } }
                                    div { "blake3 " code.digest { (dv.digest) } }
                                    @for (n, ver, checks) in validations {
                                        @if *n == dv.name && *ver == dv.version {
                                            @for c in checks {
                                                div class={ "check " (if c.success { "ok" } else { "failed" }) } {
                                                    (if c.success { "✓ " } else { "✗ " }) (c.suite) ": " (c.successful) "/" (c.evaluated) " expectations"
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
