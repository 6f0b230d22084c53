//! The authorization table: every route the servers register, mapped to what a caller needs.
//! A route missing here is refused to everyone but admins (deny by default); the test at the
//! bottom reads every `.route(...)` in this crate and in `cairn-ui` and fails if one is
//! missing (MLflow's CVE-2026-0545 was a route left out of its table).
use axum::http::Method;
use cairn_core::auth::Permission;

/// Where a request names the resource a permission is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Find {
    /// `experiment_id`.
    ExperimentId,
    /// `experiment_ids` (every one must allow).
    ExperimentIds,
    /// `experiment_name` (get-by-name).
    ExperimentName,
    /// `run_id` (or MLflow's older `run_uuid`).
    RunId,
    /// `run_ids` (every one must allow).
    RunIds,
    /// `run_id`, repeatable (every one must allow).
    RunIdList,
    /// The logged model id in the path (`/logged-models/{model_id}...`).
    LoggedModelInPath,
    /// The artifact path (in the path, or `path=` for listings): its first component is the
    /// experiment id (`<experiment>/<run>/artifacts/...`).
    ArtifactPath,
    /// `name` (registered model).
    ModelName,
    /// The model name in an OIP path (`/v2/models/{name}/...`).
    ModelInPath,
    /// The experiment of a UI page (`/experiments/{id}/...`).
    PageExperiment,
    /// The experiments a UI page lists (`?experiments=1,2`, repeatable; every one must allow).
    PageExperiments,
    /// The run of a UI page (`/runs/{run}`).
    PageRun,
    /// The runs a UI page draws or compares (`?run=`, repeatable; every one must allow).
    PageRuns,
    /// The model of a UI page (`/models/{name}/...`, `/monitoring/{name}/...`).
    PageModel,
    /// The trace id in the path (`/mlflow/traces/{id}/...`): its experiment.
    TraceInPath,
    /// `trace_id` (or `request_id`): its experiment.
    TraceId,
    /// `trace_ids` / `request_ids` (every one's experiment must allow).
    TraceIds,
    /// A trace search's `locations` (every experiment must allow).
    TraceLocations,
    /// A new trace's `trace.trace_info.trace_location` experiment.
    NewTraceLocation,
    /// The `x-mlflow-experiment-id` header of an OTLP export.
    ExperimentHeader,
    /// The evaluation dataset in the path (`/mlflow/datasets/{id}/...`): its experiments.
    DatasetInPath,
    /// The issue in the path (`/mlflow/issues/{id}`): its experiment.
    IssueInPath,
    /// `experiment_id`, where naming none would span every experiment (admins only then).
    ExperimentIdRequired,
}

/// What a caller needs for a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nobody needs credentials (health, version, static files).
    Public,
    /// Any signed-in user (the handler, or a filter of the answer, does the rest).
    Authenticated,
    /// Admins only.
    Admin,
    /// A level on the experiment found by [`Find`] (runs, logged models, artifacts inherit).
    Experiment(Permission, Find),
    /// A level on the registered model found by [`Find`] (versions, aliases, endpoints inherit).
    Model(Permission, Find),
    /// The auth API: its handlers decide (self, admin, or MANAGE on the resource).
    AuthApi,
}

/// The path of an MLflow REST route without its `/api/2.0/` or `/ajax-api/2.0/` (or `3.0`)
/// prefix, or `None` when it is not one.
fn rest_path(path: &str) -> Option<&str> {
    for prefix in ["/api/2.0/", "/ajax-api/2.0/", "/api/3.0/", "/ajax-api/3.0/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return Some(rest);
        }
    }
    None
}

/// Whether `path` is one of the web UI's pages (a browser is sent to sign in, not given a
/// JSON 401).
pub fn is_page(path: &str) -> bool {
    path == "/"
        || [
            "/experiments",
            "/runs",
            "/chart",
            "/compare",
            "/models",
            "/datasets",
            "/monitoring",
        ]
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        || path == "/chart.svg"
}

/// What `method path` needs; `None` for a route not in the table.
pub fn need(method: &Method, path: &str) -> Option<Need> {
    use Find::*;
    use Need::*;
    use Permission::{Edit, Manage, Read, Use};
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    if let Some(rest) = rest_path(path) {
        if let Some(artifact) = rest.strip_prefix("mlflow-artifacts/artifacts") {
            if artifact.is_empty() {
                return Some(Experiment(Read, ArtifactPath));
            }
            return Some(match *method {
                Method::GET | Method::HEAD => Experiment(Read, ArtifactPath),
                Method::PUT => Experiment(Edit, ArtifactPath),
                _ => Experiment(Manage, ArtifactPath),
            });
        }
        if let Some(logged) = rest.strip_prefix("mlflow/logged-models/") {
            if logged == "search" {
                return Some(Experiment(Read, ExperimentIds));
            }
            return Some(if *method == Method::GET {
                Experiment(Read, LoggedModelInPath)
            } else {
                Experiment(Edit, LoggedModelInPath)
            });
        }
        if let Some(trace) = rest.strip_prefix("mlflow/traces/") {
            let need = match trace {
                "search" => Experiment(Read, TraceLocations),
                "metrics" | "calculate-filter-correlation" => Experiment(Read, ExperimentIds),
                "get" => Experiment(Read, TraceId),
                "batchGet" | "batchGetInfos" => Experiment(Read, TraceIds),
                "delete-traces" => Experiment(Manage, ExperimentId),
                // Linking changes the traces; the run is only named.
                "link-to-run" => Experiment(Edit, TraceIds),
                _ if *method == Method::GET => Experiment(Read, TraceInPath),
                _ => Experiment(Edit, TraceInPath),
            };
            return Some(need);
        }
        if let Some(dataset) = rest.strip_prefix("mlflow/datasets/") {
            return Some(match dataset {
                "create" => Experiment(Edit, ExperimentIds),
                "search" => Experiment(Read, ExperimentIds),
                _ if *method == Method::GET => Experiment(Read, DatasetInPath),
                // Deleting a dataset or its records removes what others may rely on.
                _ if *method == Method::DELETE && !dataset.contains('/') => {
                    Experiment(Manage, DatasetInPath)
                }
                _ => Experiment(Edit, DatasetInPath),
            });
        }
        if rest == "mlflow/issues" {
            return Some(Experiment(Edit, ExperimentId));
        }
        if let Some(issue) = rest.strip_prefix("mlflow/issues/") {
            return Some(match issue {
                "search" => Experiment(Read, ExperimentIdRequired),
                _ if *method == Method::GET => Experiment(Read, IssueInPath),
                _ => Experiment(Edit, IssueInPath),
            });
        }
        if let Some(scorer) = rest.strip_prefix("mlflow/scorers/") {
            return Some(match scorer {
                "register" => Experiment(Edit, ExperimentId),
                "delete" => Experiment(Manage, ExperimentId),
                // Answers no configuration for any scorer.
                "online-configs" => Authenticated,
                _ => Experiment(Read, ExperimentId),
            });
        }
        if rest == "mlflow/traces" {
            return Some(match *method {
                Method::GET => Experiment(Read, ExperimentIds),
                _ if path.contains("/3.0/") => Experiment(Edit, NewTraceLocation),
                _ => Experiment(Edit, ExperimentId),
            });
        }
        if rest.starts_with("mlflow/users/") || rest.starts_with("mlflow/roles/") {
            return Some(AuthApi);
        }
        let need = match rest {
            "mlflow/server-info" | "cairn/version" => Public,
            "mlflow/experiments/create" => Authenticated,
            "mlflow/experiments/search" => Authenticated,
            "mlflow/experiments/get" => Experiment(Read, ExperimentId),
            "mlflow/experiments/get-by-name" => Experiment(Read, ExperimentName),
            "mlflow/experiments/update"
            | "mlflow/experiments/set-experiment-tag"
            | "mlflow/experiments/delete-experiment-tag" => Experiment(Edit, ExperimentId),
            "mlflow/experiments/delete" | "mlflow/experiments/restore" => {
                Experiment(Manage, ExperimentId)
            }
            "mlflow/runs/create" | "mlflow/logged-models" => Experiment(Edit, ExperimentId),
            "mlflow/runs/get" | "mlflow/metrics/get-history" | "mlflow/artifacts/list" => {
                Experiment(Read, RunId)
            }
            "mlflow/metrics/get-history-bulk-interval" => Experiment(Read, RunIds),
            "mlflow/metrics/get-history-bulk" => Experiment(Read, RunIdList),
            "mlflow/experiments/search-datasets" => Experiment(Read, ExperimentIds),
            "mlflow/runs/search" => Experiment(Read, ExperimentIds),
            "mlflow/get-trace-artifact" => Experiment(Read, TraceId),
            "mlflow/runs/update"
            | "mlflow/runs/log-metric"
            | "mlflow/runs/log-parameter"
            | "mlflow/runs/set-tag"
            | "mlflow/runs/delete-tag"
            | "mlflow/runs/log-batch"
            | "mlflow/runs/log-inputs"
            | "mlflow/runs/outputs"
            | "mlflow/runs/log-model" => Experiment(Edit, RunId),
            "mlflow/runs/delete" | "mlflow/runs/restore" => Experiment(Manage, RunId),
            "mlflow/registered-models/create" => Authenticated,
            "mlflow/registered-models/search" | "mlflow/model-versions/search" => Authenticated,
            "mlflow/registered-models/get"
            | "mlflow/registered-models/get-latest-versions"
            | "mlflow/model-versions/get"
            | "mlflow/model-versions/get-download-uri"
            | "cairn/lineage/model-version" => Model(Read, ModelName),
            "mlflow/registered-models/alias" if *method == Method::GET => Model(Read, ModelName),
            "mlflow/registered-models/rename"
            | "mlflow/registered-models/update"
            | "mlflow/registered-models/set-tag"
            | "mlflow/registered-models/delete-tag"
            | "mlflow/registered-models/alias"
            | "mlflow/model-versions/create"
            | "mlflow/model-versions/update"
            | "mlflow/model-versions/transition-stage"
            | "mlflow/model-versions/set-tag"
            | "mlflow/model-versions/delete-tag" => Model(Edit, ModelName),
            "mlflow/registered-models/delete" | "mlflow/model-versions/delete" => {
                Model(Manage, ModelName)
            }
            // Dataset versions are shared by every experiment: any signed-in user reads them.
            "cairn/datasets/list" | "cairn/datasets/get" | "cairn/lineage/dataset" => Authenticated,
            "cairn/monitoring/drift" | "cairn/monitoring/metrics" => Model(Read, ModelName),
            // Labels name requests, not models, and alerts span every model.
            "cairn/monitoring/labels" | "cairn/monitoring/alerts" => Admin,
            "cairn/tokens/create" | "cairn/tokens/list" | "cairn/tokens/revoke" => Authenticated,
            _ => return None,
        };
        return Some(need);
    }
    if let Some(model) = path.strip_prefix("/v2/models/") {
        let infer = model.ends_with("/infer");
        return Some(if infer {
            Model(Use, ModelInPath)
        } else {
            Model(Read, ModelInPath)
        });
    }
    Some(match path {
        "/v1/traces" => Experiment(Edit, ExperimentHeader),
        "/health" | "/version" | "/ping" | "/v2/health/live" | "/v2/health/ready"
        | "/static/cairn.css" | "/static/cairn.js" | "/favicon.ico" => Public,
        "/v2" => Authenticated,
        // `cairn serve`'s scoring route: that server has no users.
        "/invocations" => Public,
        // Prometheus gauges name every model.
        "/metrics" => Admin,
        // The web UI: lists show only what the caller may read (the pages filter); a page
        // about one resource needs what the same API call needs. Deleting through a page
        // needs MANAGE, which the edit handlers check on top of EDIT.
        "/login" | "/logout" => Public,
        // `cairn serve`'s playground: that server has no users.
        "/playground" => Admin,
        "/" | "/models" | "/monitoring" => Authenticated,
        "/experiments" => Authenticated,
        "/runs" | "/ui-api/keys" => Experiment(Read, PageExperiments),
        "/chart" | "/chart.svg" | "/compare" => Experiment(Read, PageRuns),
        // Dataset versions are shared by every experiment, as in the API.
        "/datasets" => Authenticated,
        p if p.starts_with("/datasets/") => Authenticated,
        p if p.starts_with("/experiments/") => {
            if p.ends_with("/edit") {
                Experiment(Edit, PageExperiment)
            } else {
                Experiment(Read, PageExperiment)
            }
        }
        p if p.starts_with("/runs/") => Experiment(Read, PageRun),
        p if p.starts_with("/models/") => {
            if p.ends_with("/edit") {
                Model(Edit, PageModel)
            } else if p.ends_with("/playground") {
                Model(Use, PageModel)
            } else {
                Model(Read, PageModel)
            }
        }
        p if p.starts_with("/monitoring/") => Model(Read, PageModel),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route("PATH", get(..).post(..))` of a source file, with the methods.
    fn routes_in(source: &str) -> Vec<(String, Vec<Method>)> {
        let route = regex::Regex::new(r#"\.route\(\s*"([^"]+)"\s*,"#).unwrap();
        let method = regex::Regex::new(r"\b(get|post|put|patch|delete)\(").unwrap();
        let mut found = Vec::new();
        let starts: Vec<(usize, String)> = route
            .captures_iter(source)
            .map(|c| (c.get(0).unwrap().end(), c[1].to_string()))
            .collect();
        for (i, (start, path)) in starts.iter().enumerate() {
            let end = starts.get(i + 1).map_or(source.len(), |(s, _)| *s);
            // The method router ends at the route call's closing parenthesis: the first `)`
            // that closes more than it opened.
            let mut depth = 1i32;
            let mut stop = end;
            for (j, c) in source[*start..end].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            stop = start + j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let methods = method
                .captures_iter(&source[*start..stop])
                .map(|c| match &c[1] {
                    "get" => Method::GET,
                    "post" => Method::POST,
                    "put" => Method::PUT,
                    "patch" => Method::PATCH,
                    _ => Method::DELETE,
                })
                .collect();
            found.push((path.clone(), methods));
        }
        found
    }

    /// Fills `{param}` and `{*rest}` segments with sample values.
    fn concrete(path: &str) -> String {
        path.split('/')
            .map(|s| {
                if s.starts_with("{*") {
                    "0/run/artifacts/x.txt"
                } else if s.starts_with('{') {
                    "sample"
                } else {
                    s
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn every_registered_route_is_in_the_table() {
        // (source, prefixes its routes are nested under). A new `.nest(` must be added here:
        // the count below fails until it is.
        let sources: [(&str, &[&str]); 13] = [
            (
                include_str!("evaluation.rs"),
                &["/api/3.0", "/ajax-api/3.0"],
            ),
            (
                include_str!("traces.rs"),
                &["/api/2.0", "/ajax-api/2.0", "/api/3.0", "/ajax-api/3.0"],
            ),
            (include_str!("tracking.rs"), &["/api/2.0", "/ajax-api/2.0"]),
            (include_str!("registry.rs"), &["/api/2.0", "/ajax-api/2.0"]),
            (include_str!("lineage.rs"), &["/api/2.0", "/ajax-api/2.0"]),
            (include_str!("artifacts.rs"), &["/api/2.0", "/ajax-api/2.0"]),
            (include_str!("auth.rs"), &["/api", "/ajax-api"]),
            (
                include_str!("monitoring.rs"),
                &[
                    "/api/2.0/cairn/monitoring",
                    "/ajax-api/2.0/cairn/monitoring",
                ],
            ),
            (include_str!("lib.rs"), &[""]),
            (include_str!("oip.rs"), &[""]),
            (include_str!("scoring.rs"), &[""]),
            (include_str!("../../cairn-ui/src/lib.rs"), &[""]),
            (include_str!("../../cairn-ui/src/playground.rs"), &[""]),
        ];
        let nests: usize = sources
            .iter()
            .map(|(s, _)| s.matches(".nest(\"").count())
            .sum();
        assert_eq!(
            nests, 8,
            "a router is nested somewhere new: list its prefix above"
        );
        let mut checked = 0;
        for (source, prefixes) in sources {
            let routes = routes_in(source);
            for (path, methods) in routes {
                assert!(!methods.is_empty(), "no method found for {path}");
                for prefix in prefixes {
                    let full = concrete(&format!("{prefix}{path}"));
                    for m in &methods {
                        assert!(
                            need(m, &full).is_some(),
                            "{m} {prefix}{path} is not in the authorization table"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(
            checked > 150,
            "only {checked} routes were found; is the scan broken?"
        );
    }

    #[test]
    fn the_table_says_what_mlflow_says() {
        use Permission::*;
        let n = |m: Method, p: &str| need(&m, p);
        assert_eq!(n(Method::GET, "/health"), Some(Need::Public));
        assert_eq!(
            n(Method::POST, "/api/2.0/mlflow/runs/log-batch"),
            Some(Need::Experiment(Edit, Find::RunId))
        );
        assert_eq!(
            n(Method::POST, "/ajax-api/2.0/mlflow/experiments/delete"),
            Some(Need::Experiment(Manage, Find::ExperimentId))
        );
        assert_eq!(
            n(Method::POST, "/v2/models/m/versions/1/infer"),
            Some(Need::Model(Use, Find::ModelInPath))
        );
        assert_eq!(
            n(Method::GET, "/v2/models/m/versions/1"),
            Some(Need::Model(Read, Find::ModelInPath))
        );
        assert_eq!(
            n(
                Method::DELETE,
                "/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/x"
            ),
            Some(Need::Experiment(Manage, Find::ArtifactPath))
        );
        assert_eq!(
            n(Method::POST, "/v1/traces"),
            Some(Need::Experiment(Edit, Find::ExperimentHeader))
        );
        assert_eq!(
            n(Method::POST, "/api/3.0/mlflow/traces/delete-traces"),
            Some(Need::Experiment(Manage, Find::ExperimentId))
        );
        assert_eq!(
            n(Method::GET, "/api/3.0/mlflow/traces/tr-1/assessments/a-1"),
            Some(Need::Experiment(Read, Find::TraceInPath))
        );
        assert_eq!(
            n(Method::POST, "/api/3.0/mlflow/traces"),
            Some(Need::Experiment(Edit, Find::NewTraceLocation))
        );
        assert_eq!(n(Method::GET, "/api/2.0/mlflow/unknown"), None);
        assert_eq!(n(Method::GET, "/nowhere"), None);
    }
}
