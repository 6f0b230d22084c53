//! Authentication and authorization on the HTTP surface, and MLflow's auth REST API.
//!
//! Credentials: HTTP Basic exactly as the MLflow client sends it (`MLFLOW_TRACKING_USERNAME`,
//! `MLFLOW_TRACKING_PASSWORD`), or `Authorization: Bearer <token>` with a token Cairn issued
//! (`MLFLOW_TRACKING_TOKEN`). Verified passwords are remembered for a minute under a hash of
//! the credentials (an Argon2 check per request would cost more than the request), tokens for
//! a few seconds; failed attempts are limited per user and per client address (429).
//!
//! Every request passes [`guard`]: the route's need comes from [`crate::authz::need`]; missing
//! or wrong credentials get 401 with `WWW-Authenticate: Basic realm="cairn"`, too little
//! permission gets 403. Creators get MANAGE on what they create; search answers are filtered
//! to what the caller may read.
use crate::authz::{Find, Need};
use crate::error::ApiError;
use crate::request::{read_limited, Fields};
use crate::{blocking, reply, ApiResult, AppState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::Router;
use base64::Engine;
use cairn_core::auth::{
    AccessToken, Auth, Permission, ResourceType, Role, RoleAssignment, RolePermission, User,
    TOKEN_PREFIX,
};
use cairn_core::Error;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a verified password is taken without checking its hash again.
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a resolved permission is taken.
const PERMISSION_CACHE_TTL: Duration = Duration::from_secs(5);
/// How long a token lookup is taken (revocation reaches other replicas within this).
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(5);
/// Failed attempts allowed per user, and per client address, in [`FAILURE_WINDOW`].
const FAILURES_PER_USER: usize = 10;
const FAILURES_PER_ADDRESS: usize = 30;
const FAILURE_WINDOW: Duration = Duration::from_secs(300);
/// Most cache entries kept (beyond, the cache is emptied: it only saves work).
const CACHE_CAP: usize = 10_000;

/// Argon2id with the `argon2` crate's defaults (19 MiB, 2 passes: OWASP's recommendation).
pub struct Argon2Hasher;

impl cairn_core::auth::PasswordHasher for Argon2Hasher {
    fn hash(&self, password: &str) -> cairn_core::Result<String> {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| Error::Storage(format!("salt: {e}")))?;
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Storage(format!("password hash: {e}")))
    }

    fn verify(&self, password: &str, hash: &str) -> bool {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        PasswordHash::new(hash).is_ok_and(|parsed| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    }
}

/// A token's stored form: BLAKE3 of the token, hex.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// A new token: the prefix and 32 random bytes, URL-safe base64.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The signed-in caller, as a request extension for handlers.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

/// (user id, resource type, resource id).
type PermissionKey = (i64, ResourceType, String);

/// Authentication state shared by every request.
pub struct Authn {
    auth: Auth,
    passwords: Mutex<HashMap<[u8; 32], (User, Instant)>>,
    tokens: Mutex<HashMap<String, TokenEntry>>,
    /// Effective permissions, for [`PERMISSION_CACHE_TTL`]: a grant or revocation through this
    /// process clears them at once; other replicas see it within the TTL.
    permissions: Mutex<HashMap<PermissionKey, (Permission, Instant)>>,
    /// A run's experiment (it never changes).
    run_experiments: Mutex<HashMap<String, String>>,
    failures: Mutex<Failures>,
}

#[derive(Default)]
struct Failures {
    by_user: HashMap<String, Vec<Instant>>,
    by_address: HashMap<IpAddr, Vec<Instant>>,
}

impl Failures {
    fn prune(list: &mut Vec<Instant>) {
        list.retain(|t| t.elapsed() < FAILURE_WINDOW);
    }

    /// Whether more attempts are refused for this user or address right now.
    fn limited(&mut self, user: &str, address: Option<IpAddr>) -> bool {
        let user_list = self.by_user.entry(user.to_string()).or_default();
        Self::prune(user_list);
        if user_list.len() >= FAILURES_PER_USER {
            return true;
        }
        if let Some(a) = address {
            let list = self.by_address.entry(a).or_default();
            Self::prune(list);
            if list.len() >= FAILURES_PER_ADDRESS {
                return true;
            }
        }
        false
    }

    fn record(&mut self, user: &str, address: Option<IpAddr>) {
        if self.by_user.len() > CACHE_CAP {
            self.by_user.clear();
        }
        if self.by_address.len() > CACHE_CAP {
            self.by_address.clear();
        }
        self.by_user
            .entry(user.to_string())
            .or_default()
            .push(Instant::now());
        if let Some(a) = address {
            self.by_address.entry(a).or_default().push(Instant::now());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Authn {
    /// Authentication over `auth`.
    pub fn new(auth: Auth) -> Arc<Self> {
        Arc::new(Authn {
            auth,
            passwords: Mutex::default(),
            tokens: Mutex::default(),
            permissions: Mutex::default(),
            run_experiments: Mutex::default(),
            failures: Mutex::default(),
        })
    }

    /// The authorization service.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Forgets remembered credentials (after a password change, a deletion, a revocation).
    pub fn forget(&self) {
        lock(&self.permissions).clear();
        lock(&self.passwords).clear();
        lock(&self.tokens).clear();
    }
}

/// The cookie that carries a browser's session: an access token of the signed-in user named
/// [`SESSION_TOKEN_NAME`], `HttpOnly` and `SameSite=Strict`.
pub const SESSION_COOKIE: &str = "cairn_session";
/// How long a UI session lasts.
pub const SESSION_SECONDS: i64 = 12 * 3600;
/// The name session tokens carry in a user's token list (where they can be revoked).
pub const SESSION_TOKEN_NAME: &str = "web session";

/// The session token a browser sent, if any.
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().find_map(|v| {
        v.to_str().ok()?.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == SESSION_COOKIE && !v.is_empty() && v.len() <= 128).then(|| v.to_string())
        })
    })
}

/// Why signing in through the UI failed.
#[derive(Debug)]
pub enum SignInError {
    /// Unknown user or wrong password (which of the two is not said).
    Wrong,
    /// Too many recent failures for this user or address.
    TooManyAttempts,
    /// The store failed.
    Failed(ApiError),
}

impl Authn {
    /// Checks a username and password as HTTP Basic is checked (same rate limits, same log
    /// lines) and opens a session: a new token of [`SESSION_SECONDS`], returned once.
    pub async fn sign_in(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<(User, String), SignInError> {
        let given = Credentials::Basic(username.to_string(), password.to_string());
        let user = match identify(self, Some(given), address).await {
            Ok(user) => user,
            Err(Refusal::TooManyAttempts) => return Err(SignInError::TooManyAttempts),
            Err(Refusal::Failed(e)) => return Err(SignInError::Failed(e)),
            Err(_) => return Err(SignInError::Wrong),
        };
        let token = new_token();
        let hash = token_hash(&token);
        let (a, id) = (self.clone(), user.id);
        let now = now_ms();
        blocking(move || {
            a.auth.store().create_token(
                id,
                SESSION_TOKEN_NAME,
                &hash,
                now,
                Some(now + SESSION_SECONDS * 1000),
            )
        })
        .await
        .map_err(SignInError::Failed)?;
        tracing::info!(username = user.username, ?address, "signed in to the UI");
        Ok((user, token))
    }

    /// Ends the session `token` opens (revokes it), if it is one.
    pub async fn sign_out(self: &Arc<Self>, token: &str) -> Result<(), ApiError> {
        let (a, hash) = (self.clone(), token_hash(token));
        blocking(move || {
            if let Some(t) = a.auth.store().token_by_hash(&hash)? {
                a.auth.store().revoke_token(t.user_id, t.id)?;
            }
            Ok(())
        })
        .await?;
        self.forget();
        Ok(())
    }

    /// Whether `user` holds `level` on a resource (cached as the guard's checks are).
    pub fn may(
        &self,
        user: &User,
        kind: ResourceType,
        id: &str,
        level: Permission,
    ) -> cairn_core::Result<bool> {
        Ok(self.permission(user, kind, id)?.allows(level))
    }

    /// Records that `user` created a resource: creators get MANAGE, as through the API.
    pub fn created(&self, user: &User, kind: ResourceType, id: &str) -> cairn_core::Result<()> {
        if !user.is_admin {
            self.auth.grant(user, kind, id, Permission::Manage)?;
            self.forget();
        }
        Ok(())
    }
}

/// A token lookup remembered for [`TOKEN_CACHE_TTL`].
#[derive(Clone)]
struct TokenEntry {
    user: User,
    expires_ms: Option<i64>,
    checked: Instant,
}

/// Why a request was not let through.
enum Refusal {
    Unauthenticated,
    TooManyAttempts,
    Forbidden(String),
    Failed(ApiError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated => {
                let mut r = ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "You are not authenticated: give a username and password (HTTP Basic, \
                     MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) or a token \
                     (Bearer, MLFLOW_TRACKING_TOKEN)",
                )
                .into_response();
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"cairn\""),
                );
                r
            }
            Refusal::TooManyAttempts => {
                let mut r = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "REQUEST_LIMIT_EXCEEDED",
                    "Too many failed sign-in attempts; wait a few minutes",
                )
                .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("300"));
                r
            }
            Refusal::Forbidden(why) => {
                ApiError::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", why).into_response()
            }
            Refusal::Failed(e) => e.into_response(),
        }
    }
}

/// The credentials a request carries.
enum Credentials {
    Basic(String, String),
    Bearer(String),
}

fn credentials(req: &Request) -> Option<Credentials> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        // A browser signed in to the UI: its session token, sent only to this site
        // (SameSite=Strict), so a cross-site request carries no credentials at all.
        return session_token(req.headers()).map(Credentials::Bearer);
    };
    let value = value.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some(Credentials::Basic(user.to_string(), password.to_string()));
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials::Bearer(rest.trim().to_string()));
    }
    None
}

async fn identify(
    authn: &Arc<Authn>,
    given: Option<Credentials>,
    address: Option<IpAddr>,
) -> Result<User, Refusal> {
    match given {
        None => Err(Refusal::Unauthenticated),
        Some(Credentials::Basic(username, password)) => {
            let key: [u8; 32] =
                *blake3::hash(format!("{username}\0{password}").as_bytes()).as_bytes();
            let cached = lock(&authn.passwords)
                .get(&key)
                .filter(|(_, at)| at.elapsed() < PASSWORD_CACHE_TTL)
                .map(|(user, _)| user.clone());
            let a = authn.clone();
            if let Some(user) = cached {
                return Ok(user);
            }
            if lock(&authn.failures).limited(&username, address) {
                tracing::warn!(username, ?address, "sign-in refused: too many failures");
                return Err(Refusal::TooManyAttempts);
            }
            let name = username.clone();
            let checked = blocking(move || a.auth.check_password(&name, &password))
                .await
                .map_err(Refusal::Failed)?;
            match checked {
                Some(user) => {
                    let mut cache = lock(&authn.passwords);
                    if cache.len() > CACHE_CAP {
                        cache.clear();
                    }
                    cache.insert(key, (user.clone(), Instant::now()));
                    Ok(user)
                }
                None => {
                    tracing::warn!(username, ?address, "sign-in failed");
                    lock(&authn.failures).record(&username, address);
                    Err(Refusal::Unauthenticated)
                }
            }
        }
        Some(Credentials::Bearer(token)) => {
            let hash = token_hash(&token);
            let cached = lock(&authn.tokens)
                .get(&hash)
                .filter(|e| e.checked.elapsed() < TOKEN_CACHE_TTL)
                .cloned();
            let entry = match cached {
                Some(hit) => hit,
                None => {
                    let (a, h) = (authn.clone(), hash.clone());
                    let found = blocking(move || {
                        let Some(t) = a.auth.store().token_by_hash(&h)? else {
                            return Ok(None);
                        };
                        if t.revoked {
                            return Ok(None);
                        }
                        Ok(a.auth.store().get_user_by_id(t.user_id)?.map(|u| (t, u)))
                    })
                    .await
                    .map_err(Refusal::Failed)?;
                    let Some((t, user)) = found else {
                        tracing::warn!(?address, "sign-in with an unknown or revoked token");
                        return Err(Refusal::Unauthenticated);
                    };
                    let entry = TokenEntry {
                        user,
                        expires_ms: t.expires_ms,
                        checked: Instant::now(),
                    };
                    let mut cache = lock(&authn.tokens);
                    if cache.len() > CACHE_CAP {
                        cache.clear();
                    }
                    cache.insert(hash, entry.clone());
                    entry
                }
            };
            if entry.expires_ms.is_some_and(|e| e <= now_ms()) {
                return Err(Refusal::Unauthenticated);
            }
            Ok(entry.user)
        }
    }
}

/// The request's fields (query string and JSON object body), without consuming it: the
/// body is read (within the JSON limit) and put back.
async fn peek_fields(req: Request) -> Result<(Request, Map<String, Value>), ApiError> {
    let (parts, body) = req.into_parts();
    // A malformed query is the handler's 400 to give; here it names nothing.
    let mut map = parts
        .uri
        .query()
        .and_then(|q| crate::request::query_fields(q).ok())
        .unwrap_or_default();
    let streaming = parts.method == Method::PUT || parts.method == Method::GET;
    if streaming {
        return Ok((Request::from_parts(parts, body), map));
    }
    let probe = Request::from_parts(parts.clone_without_body(), body);
    let bytes = read_limited(probe).await?;
    // Only the fields that name a resource are kept; the rest of a large body (a log-batch of
    // thousands of metrics) is skipped without building values.
    // As in `Fields`, a body's field wins over the query's: the guard must check the very
    // resource the handler will act on.
    if let Ok(named) = serde_json::from_slice::<NamingFields>(&bytes) {
        for (k, v) in named.into_pairs() {
            map.insert(k, v);
        }
    }
    Ok((Request::from_parts(parts, Body::from(bytes)), map))
}

/// The fields of a JSON body that name what a request is about.
#[derive(serde::Deserialize)]
struct NamingFields {
    experiment_id: Option<Value>,
    experiment_ids: Option<Value>,
    experiment_name: Option<Value>,
    run_id: Option<Value>,
    run_uuid: Option<Value>,
    run_ids: Option<Value>,
    name: Option<Value>,
    new_name: Option<Value>,
}

impl NamingFields {
    fn into_pairs(self) -> impl Iterator<Item = (String, Value)> {
        [
            ("experiment_id", self.experiment_id),
            ("experiment_ids", self.experiment_ids),
            ("experiment_name", self.experiment_name),
            ("run_id", self.run_id),
            ("run_uuid", self.run_uuid),
            ("run_ids", self.run_ids),
            ("name", self.name),
            ("new_name", self.new_name),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
    }
}

/// Copying request parts (the body is handled apart).
trait CloneParts {
    fn clone_without_body(&self) -> axum::http::request::Parts;
}

impl CloneParts for axum::http::request::Parts {
    fn clone_without_body(&self) -> axum::http::request::Parts {
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone())
            .version(self.version);
        for (k, v) in &self.headers {
            builder = builder.header(k, v);
        }
        let (mut parts, ()) = builder.body(()).unwrap_or_default().into_parts();
        if let Some(limit) = self.extensions.get::<crate::JsonLimit>() {
            parts.extensions.insert(*limit);
        }
        parts
    }
}

/// A field's text; an empty string counts as absent, as `Fields` treats it (so `run_id: ""`
/// with `run_uuid` names the run the handler will use).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn strings_of(map: &Map<String, Value>, key: &str) -> Vec<String> {
    match map.get(key) {
        Some(Value::Array(items)) => items.iter().filter_map(text_of).collect(),
        Some(v) => text_of(v).into_iter().collect(),
        None => vec![],
    }
}

/// The resources a request names, by [`Find`]; empty when it names none.
fn resources(
    state: &AppState,
    authn: &Authn,
    find: Find,
    path: &str,
    fields: &Map<String, Value>,
) -> cairn_core::Result<Vec<String>> {
    let one = |key: &str| fields.get(key).and_then(text_of);
    Ok(match find {
        Find::ExperimentId => one("experiment_id").into_iter().collect(),
        Find::ExperimentIds => strings_of(fields, "experiment_ids"),
        Find::ExperimentName => match one("experiment_name") {
            Some(name) => match state.tracking.get_experiment_by_name(&name) {
                Ok(e) => vec![e.experiment_id],
                Err(Error::NotFound(_)) => vec![],
                Err(e) => return Err(e),
            },
            None => vec![],
        },
        Find::RunId => {
            let id = one("run_id").or_else(|| one("run_uuid"));
            run_experiments(state, authn, id.into_iter())?
        }
        Find::RunIds => run_experiments(state, authn, strings_of(fields, "run_ids").into_iter())?,
        Find::RunIdList => run_experiments(state, authn, strings_of(fields, "run_id").into_iter())?,
        Find::LoggedModelInPath => {
            let Some(id) = logged_model_in_path(path) else {
                return Ok(vec![]);
            };
            match state.tracking.get_logged_model(&id) {
                Ok(m) => vec![m.experiment_id],
                Err(Error::NotFound(_) | Error::InvalidParameter(_)) => vec![],
                Err(e) => return Err(e),
            }
        }
        Find::ArtifactPath => artifact_experiment(path, one("path")).into_iter().collect(),
        Find::ModelName => one("name").into_iter().collect(),
        Find::ModelInPath => model_in_path(path).into_iter().collect(),
        Find::PageExperiment => page_segment(path, "/experiments/").into_iter().collect(),
        Find::PageExperiments => page_list(fields, "experiments"),
        Find::PageRun => run_experiments(state, authn, page_segment(path, "/runs/").into_iter())?,
        Find::PageRuns => run_experiments(state, authn, page_list(fields, "run").into_iter())?,
        Find::PageModel => page_segment(path, "/models/")
            .or_else(|| page_segment(path, "/monitoring/"))
            .into_iter()
            .collect(),
        Find::TraceInPath => trace_experiments(state, trace_in_path(path).into_iter())?,
        Find::TraceId => {
            let id = one("trace_id").or_else(|| one("request_id"));
            trace_experiments(state, id.into_iter())?
        }
        Find::TraceIds => {
            let mut ids = strings_of(fields, "trace_ids");
            ids.extend(strings_of(fields, "request_ids"));
            trace_experiments(state, ids.into_iter())?
        }
        Find::TraceLocations => match fields.get("locations") {
            Some(Value::Array(locations)) => locations
                .iter()
                .filter_map(|l| {
                    l.pointer("/mlflow_experiment/experiment_id")
                        .and_then(text_of)
                })
                .collect(),
            _ => vec![],
        },
        Find::NewTraceLocation => fields
            .get("trace")
            .and_then(|t| t.pointer("/trace_info/trace_location/mlflow_experiment/experiment_id"))
            .and_then(text_of)
            .into_iter()
            .collect(),
        Find::ExperimentHeader => one(crate::traces::EXPERIMENT_HEADER).into_iter().collect(),
        Find::ExperimentIdRequired => one("experiment_id").into_iter().collect(),
        Find::IssueInPath => match path.split("/mlflow/issues/").nth(1).map(decoded) {
            Some(id) => match state.evaluation.get_issue(&id) {
                Ok(i) => vec![i.experiment_id],
                Err(Error::NotFound(_)) => vec![],
                Err(e) => return Err(e),
            },
            None => vec![],
        },
        Find::DatasetInPath => match dataset_in_path(path) {
            Some(id) => match state.evaluation.get_dataset(&id) {
                Ok(d) => d.experiment_ids,
                Err(Error::NotFound(_)) => vec![],
                Err(e) => return Err(e),
            },
            None => vec![],
        },
    })
}

/// The dataset id in `/mlflow/datasets/{id}/...`.
fn dataset_in_path(path: &str) -> Option<String> {
    path.split("/mlflow/datasets/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .filter(|s| !s.is_empty())
        .map(decoded)
}

/// The trace id in `/mlflow/traces/{id}/...`.
fn trace_in_path(path: &str) -> Option<String> {
    path.split("/mlflow/traces/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .filter(|s| !s.is_empty())
        .map(decoded)
}

/// The experiments of the traces named (unknown traces name none: the handler answers 404
/// and reveals nothing).
fn trace_experiments(
    state: &AppState,
    ids: impl Iterator<Item = String>,
) -> cairn_core::Result<Vec<String>> {
    let ids: Vec<String> = ids.collect();
    if ids.is_empty() || ids.len() > cairn_core::traces::MAX_BATCH_GET {
        return Ok(vec![]);
    }
    let mut experiments: Vec<String> = state
        .traces
        .get_trace_infos(&ids)?
        .into_iter()
        .map(|t| t.experiment_id)
        .collect();
    experiments.sort();
    experiments.dedup();
    Ok(experiments)
}

/// The first segment after `prefix` in a UI page's path, decoded as the router decodes it.
fn page_segment(path: &str, prefix: &str) -> Option<String> {
    path.strip_prefix(prefix)
        .and_then(|rest| rest.split('/').next())
        .filter(|s| !s.is_empty())
        .map(decoded)
}

/// Every value a UI page reads from a repeatable, comma-separated query parameter, trimmed
/// as the page trims them: the guard checks each one the page could use.
fn page_list(fields: &Map<String, Value>, key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in strings_of(fields, key) {
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if !out.iter().any(|o| o == part) {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// A path segment decoded as the router decodes its parameters: what the handler will see.
fn decoded(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// The model an OIP path names (`/v2/models/{name}/...`), decoded.
fn model_in_path(path: &str) -> Option<String> {
    path.strip_prefix("/v2/models/")
        .and_then(|rest| rest.split('/').next())
        .map(decoded)
}

/// The logged model a path names (`.../logged-models/{model_id}/...`), decoded.
fn logged_model_in_path(path: &str) -> Option<String> {
    path.split("/logged-models/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(decoded)
}

/// The experiment an artifact path belongs to: the first component of the path the handler
/// will use (decoded and normalised by `ArtifactPath`, so `./1/x` and `%31/x` name `1`).
fn artifact_experiment(path: &str, listing: Option<String>) -> Option<String> {
    let raw = match path.split_once("/mlflow-artifacts/artifacts/") {
        Some((_, rest)) if !rest.is_empty() => decoded(rest),
        _ => listing.unwrap_or_default(),
    };
    let parsed = cairn_core::paths::ArtifactPath::parse(&raw).ok()?;
    parsed.components().first().cloned()
}

/// The experiments of the runs named (unknown runs name none: the handler answers 404).
fn run_experiments(
    state: &AppState,
    authn: &Authn,
    ids: impl Iterator<Item = String>,
) -> cairn_core::Result<Vec<String>> {
    let mut out = Vec::new();
    for id in ids {
        if let Some(exp) = lock(&authn.run_experiments).get(&id) {
            out.push(exp.clone());
            continue;
        }
        match state.tracking.get_run(&id) {
            Ok(run) => {
                let mut cache = lock(&authn.run_experiments);
                if cache.len() > 10 * CACHE_CAP {
                    cache.clear();
                }
                cache.insert(id, run.info.experiment_id.clone());
                out.push(run.info.experiment_id)
            }
            Err(Error::NotFound(_) | Error::InvalidParameter(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Whether `user` has `level` on every resource named.
fn allowed(
    authn: &Authn,
    user: &User,
    kind: ResourceType,
    ids: &[String],
    level: Permission,
) -> cairn_core::Result<bool> {
    for id in ids {
        if !authn.permission(user, kind, id)?.allows(level) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Authn {
    /// The user's permission on a resource, remembered for [`PERMISSION_CACHE_TTL`].
    fn permission(
        &self,
        user: &User,
        kind: ResourceType,
        id: &str,
    ) -> cairn_core::Result<Permission> {
        if let Some(p) = self.cached_permission(user, kind, id) {
            return Ok(p);
        }
        let p = self.auth.permission(user, kind, id)?;
        let mut cache = lock(&self.permissions);
        if cache.len() > CACHE_CAP {
            cache.clear();
        }
        cache.insert((user.id, kind, id.to_string()), (p, Instant::now()));
        Ok(p)
    }

    fn cached_permission(&self, user: &User, kind: ResourceType, id: &str) -> Option<Permission> {
        if user.is_admin {
            return Some(Permission::Manage);
        }
        lock(&self.permissions)
            .get(&(user.id, kind, id.to_string()))
            .filter(|(_, at)| at.elapsed() < PERMISSION_CACHE_TTL)
            .map(|(p, _)| *p)
    }

    /// The decision from caches alone, when they hold everything it needs.
    fn decide_cached(
        &self,
        user: &User,
        kind: ResourceType,
        find: Find,
        path: &str,
        fields: &Map<String, Value>,
        level: Permission,
    ) -> Option<bool> {
        let one = |key: &str| fields.get(key).and_then(text_of);
        let id = match find {
            Find::ExperimentId => one("experiment_id")?,
            Find::ModelName => one("name")?,
            Find::ModelInPath => model_in_path(path)?,
            Find::PageExperiment => page_segment(path, "/experiments/")?,
            Find::PageModel => {
                page_segment(path, "/models/").or_else(|| page_segment(path, "/monitoring/"))?
            }
            Find::RunId => {
                let run = one("run_id").or_else(|| one("run_uuid"))?;
                lock(&self.run_experiments).get(&run)?.clone()
            }
            _ => return None,
        };
        Some(self.cached_permission(user, kind, &id)?.allows(level))
    }
}

/// Whether deciding on (or following up) a request needs its fields. A GET's are its query
/// (cheap); a body is read only for routes that name their resource in it, so inference and
/// artifact uploads are never read twice.
fn wants_fields(method: &Method, need: Option<Need>, path: &str) -> bool {
    let in_body = match need {
        Some(Need::Experiment(_, find)) | Some(Need::Model(_, find)) => !matches!(
            find,
            Find::ArtifactPath
                | Find::LoggedModelInPath
                | Find::ModelInPath
                | Find::PageExperiment
                | Find::PageModel
                | Find::PageRun
                | Find::TraceInPath
                | Find::ExperimentHeader
                | Find::DatasetInPath
                | Find::IssueInPath
        ),
        _ => false,
    };
    let followed_up = path.ends_with("/mlflow/registered-models/create")
        || path.ends_with("/mlflow/registered-models/delete")
        || path.ends_with("/mlflow/registered-models/rename");
    *method == Method::GET || in_body || followed_up
}

/// The middleware: authenticates, authorizes, grants creators MANAGE, filters searches.
pub async fn guard(
    State((state, authn)): State<(AppState, Arc<Authn>)>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let need = crate::authz::need(&method, &path);
    if need == Some(Need::Public) {
        let mut req = req;
        // The sign-in page signs in through it.
        req.extensions_mut().insert(authn.clone());
        return next.run(req).await;
    }
    let page = crate::authz::is_page(&path);
    let browser_get = page && method == Method::GET;
    // Where to come back to after signing in (built only for a page: the hot API paths
    // never pay for it).
    let target = if browser_get {
        req.uri()
            .path_and_query()
            .map_or_else(|| path.clone(), |p| p.as_str().to_string())
    } else {
        String::new()
    };
    let given = credentials(&req);
    let address = crate::listen::peer(&req).map(|a| a.ip());
    // A refusal leaves the body unread: the connection cannot carry another request, and a
    // pooling client must be told so.
    let unread_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let refuse = move |refusal: Refusal| {
        let mut response = match refusal {
            // A browser is sent to sign in (and back here after); an API client gets 401.
            Refusal::Unauthenticated if browser_get => {
                let next = url_encoded(&target);
                axum::response::Redirect::to(&format!("/login?next={next}")).into_response()
            }
            Refusal::Forbidden(why) if page => page_refusal(&why),
            other => other.into_response(),
        };
        if unread_body {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    };
    let user = match identify(&authn, given, address).await {
        Ok(user) => user,
        Err(refusal) => return refuse(refusal),
    };
    let mut req = req;
    req.extensions_mut().insert(Caller(user.clone()));
    req.extensions_mut().insert(authn.clone());
    let (req, mut fields) = if wants_fields(&method, need, &path) {
        match peek_fields(req).await {
            Ok(x) => x,
            Err(e) => return e.into_response(),
        }
    } else {
        (req, Map::new())
    };
    if let Some(Need::Experiment(_, Find::ExperimentHeader)) = need {
        // An OTLP export's body is protobuf: its experiment is named by a header.
        if let Some(id) = req
            .headers()
            .get(crate::traces::EXPERIMENT_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            fields.insert(
                crate::traces::EXPERIMENT_HEADER.into(),
                Value::String(id.to_string()),
            );
        }
    }
    if !user.is_admin {
        let decision = match need {
            None => Err(Refusal::Forbidden(format!(
                "{method} {path} is not open to users without the admin role"
            ))),
            Some(Need::Admin) => Err(Refusal::Forbidden(format!(
                "{method} {path} needs the admin role"
            ))),
            Some(Need::Public | Need::Authenticated | Need::AuthApi) => Ok(()),
            Some(Need::Experiment(level, find)) | Some(Need::Model(level, find)) => {
                let kind = if matches!(need, Some(Need::Experiment(..))) {
                    ResourceType::Experiment
                } else {
                    ResourceType::RegisteredModel
                };
                let (s, a, u, p, f) = (
                    state.clone(),
                    authn.clone(),
                    user.clone(),
                    path.clone(),
                    fields.clone(),
                );
                let fast = authn.decide_cached(&user, kind, find, &path, &fields, level);
                let verdict = match fast {
                    Some(v) => Ok(v),
                    None => {
                        blocking(move || {
                            let ids = resources(&s, &a, find, &p, &f)?;
                            if ids.is_empty() {
                                // One resource not named, or unknown (a missing field, an unknown
                                // run): the handler answers 400 or 404 and reveals nothing. A listing
                                // of many (no experiment ids, the artifact root) would span resources
                                // the caller may not read: refused.
                                return Ok(!matches!(
                                    find,
                                    Find::ArtifactPath
                                        | Find::ExperimentIdRequired
                                        | Find::ExperimentIds
                                        | Find::RunIds
                                        | Find::RunIdList
                                        | Find::PageExperiments
                                        | Find::PageRuns
                                ));
                            }
                            allowed(&a, &u, kind, &ids, level)
                        })
                        .await
                    }
                };
                match verdict {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(Refusal::Forbidden(format!(
                        "Permission denied: {method} {path} needs {} on the {}",
                        level.as_str(),
                        kind.as_str().replace('_', " ")
                    ))),
                    Err(e) => Err(Refusal::Failed(e)),
                }
            }
        };
        if let Err(refusal) = decision {
            tracing::warn!(user = user.username, %method, path, "request refused");
            return refuse(refusal);
        }
    }
    let response = next.run(req).await;
    if !response.status().is_success() {
        return response;
    }
    after(&authn, &user, &path, &fields, response).await
}

/// A query-string value, percent-encoded.
fn url_encoded(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A 403 a browser shows: what was refused, and a way to sign in as someone else.
fn page_refusal(why: &str) -> Response {
    let escaped = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not allowed · Cairn</title>\
         <link rel=\"stylesheet\" href=\"/static/cairn.css\"></head><body>\
         <header class=\"top\"><a class=\"brand\" href=\"/\">Cairn</a><nav><a href=\"/experiments\">Experiments</a>\
         <a href=\"/models\">Models</a><a href=\"/datasets\">Data</a><a href=\"/monitoring\">Monitoring</a></nav></header>\
         <main><h1>Not allowed</h1>\
         <p class=\"error\">{escaped}</p><p>Ask someone with MANAGE on it, or an admin, to grant you access, \
         or <a href=\"/login\">sign in as someone else</a>. <a href=\"/\">Back to the start</a>.</p></main></body></html>"
    );
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// What happens after a successful request: creators get MANAGE, deleted or renamed models
/// take their grants with them, search answers lose what the caller may not read.
async fn after(
    authn: &Arc<Authn>,
    user: &User,
    path: &str,
    fields: &Map<String, Value>,
    response: Response,
) -> Response {
    let Some(rest) = path
        .strip_prefix("/api/2.0/")
        .or_else(|| path.strip_prefix("/ajax-api/2.0/"))
    else {
        return response;
    };
    let name = fields.get("name").and_then(text_of);
    let auth = authn.auth.clone();
    let user = user.clone();
    match rest {
        "mlflow/experiments/create" => {
            let (response, body) = buffered(response).await;
            if let Some(id) = body.get("experiment_id").and_then(text_of) {
                let _ = blocking(move || {
                    auth.grant(&user, ResourceType::Experiment, &id, Permission::Manage)
                })
                .await;
            }
            response
        }
        "mlflow/registered-models/create" => {
            if let Some(name) = name {
                let _ = blocking(move || {
                    auth.grant(
                        &user,
                        ResourceType::RegisteredModel,
                        &name,
                        Permission::Manage,
                    )
                })
                .await;
                authn.forget();
            }
            response
        }
        "mlflow/registered-models/delete" => {
            if let Some(name) = name {
                let _ = blocking(move || {
                    auth.store()
                        .delete_grants_on(ResourceType::RegisteredModel, &name)
                })
                .await;
                authn.forget();
            }
            response
        }
        "mlflow/registered-models/rename" => {
            let new_name = fields.get("new_name").and_then(text_of);
            if let (Some(old), Some(new)) = (name, new_name) {
                let _ = blocking(move || {
                    auth.store()
                        .rename_grants(ResourceType::RegisteredModel, &old, &new)
                })
                .await;
                authn.forget();
            }
            response
        }
        "mlflow/experiments/search" if !user.is_admin => {
            filtered(
                response,
                "experiments",
                move |item| {
                    let id = item.get("experiment_id").and_then(text_of)?;
                    Some((ResourceType::Experiment, id))
                },
                authn.clone(),
                user,
            )
            .await
        }
        "mlflow/registered-models/search" | "mlflow/model-versions/search" if !user.is_admin => {
            let key = if rest.ends_with("registered-models/search") {
                "registered_models"
            } else {
                "model_versions"
            };
            filtered(
                response,
                key,
                move |item| {
                    let name = item.get("name").and_then(text_of)?;
                    Some((ResourceType::RegisteredModel, name))
                },
                authn.clone(),
                user,
            )
            .await
        }
        _ => response,
    }
}

/// The response with its body read (bounded: these are JSON answers of the API).
async fn buffered(response: Response) -> (Response, Value) {
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, 256 << 20).await {
        Ok(bytes) => {
            let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (Response::from_parts(parts, Body::from(bytes)), value)
        }
        Err(_) => (Response::from_parts(parts, Body::empty()), Value::Null),
    }
}

/// Drops the items of `key` the caller may not read.
async fn filtered(
    response: Response,
    key: &'static str,
    resource: impl Fn(&Value) -> Option<(ResourceType, String)> + Send + 'static,
    authn: Arc<Authn>,
    user: User,
) -> Response {
    let (response, mut body) = buffered(response).await;
    let Some(items) = body.get_mut(key).and_then(Value::as_array_mut) else {
        return response;
    };
    let taken = std::mem::take(items);
    let kept = blocking(move || {
        let mut kept = Vec::with_capacity(taken.len());
        for item in taken {
            let readable = match resource(&item) {
                Some((kind, id)) => authn.permission(&user, kind, &id)?.can_read(),
                None => false,
            };
            if readable {
                kept.push(item);
            }
        }
        Ok(kept)
    })
    .await;
    match kept {
        Ok(kept) => {
            *items = kept;
            let (parts, _) = response.into_parts();
            let mut parts = parts;
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(body.to_string()))
        }
        Err(e) => e.into_response(),
    }
}

// ---- MLflow's auth REST API ----

fn caller(req_caller: Option<axum::Extension<Caller>>) -> Result<User, ApiError> {
    req_caller.map(|c| c.0 .0).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "This server runs without authentication (--auth is off)",
        )
    })
}

fn authn_of(ext: Option<axum::Extension<Arc<Authn>>>) -> Result<Arc<Authn>, ApiError> {
    ext.map(|e| e.0).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ENDPOINT_NOT_FOUND",
            "Authentication is off on this server (start it with --auth)",
        )
    })
}

fn forbidden(why: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", why)
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "is_admin": u.is_admin})
}

fn grant_json(p: &RolePermission) -> Value {
    json!({
        "id": p.id,
        "role_id": p.role_id,
        "resource_type": p.resource_type.as_str(),
        "resource_pattern": p.resource_pattern,
        "permission": p.permission.as_str(),
    })
}

fn role_json(r: &Role) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "workspace": r.workspace,
        "description": r.description,
        "permissions": r.permissions.iter().map(grant_json).collect::<Vec<_>>(),
    })
}

fn assignment_json(a: &RoleAssignment) -> Value {
    json!({"id": a.id, "user_id": a.user_id, "role_id": a.role_id})
}

fn token_json(t: &AccessToken) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "created_ms": t.created_ms,
        "expires_ms": t.expires_ms,
        "revoked": t.revoked,
    })
}

type CallerExt = Option<axum::Extension<Caller>>;
type AuthnExt = Option<axum::Extension<Arc<Authn>>>;

/// The caller and the authentication state (404 when authentication is off).
fn who(c: CallerExt, a: AuthnExt) -> Result<(User, Arc<Authn>), ApiError> {
    let authn = authn_of(a)?;
    Ok((caller(c)?, authn))
}

fn require_admin(user: &User) -> Result<(), ApiError> {
    if user.is_admin {
        Ok(())
    } else {
        Err(forbidden("Permission denied: this needs the admin role"))
    }
}

/// Integers that the client may send as strings.
fn int_field(f: &Fields, name: &str) -> Result<i64, ApiError> {
    f.opt_i64(name)?
        .ok_or_else(|| crate::request::missing(name))
}

async fn create_user(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    require_admin(&user)?;
    let (username, password) = (f.str("username")?, f.str("password")?);
    let created = blocking(move || authn.auth.create_user(&username, &password, false)).await?;
    reply(json!({"user": user_json(&created)}))
}

async fn get_user(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let username = f.str("username")?;
    if !user.is_admin && user.username != username {
        return Err(forbidden(
            "Permission denied: you may read only your own user",
        ));
    }
    let found = blocking(move || authn.auth.user(&username)).await?;
    reply(json!({"user": user_json(&found)}))
}

async fn current_user(c: CallerExt) -> ApiResult {
    let user = caller(c)?;
    reply(json!({"user": user_json(&user), "is_basic_auth": true}))
}

async fn list_users(c: CallerExt, a: AuthnExt) -> ApiResult {
    let (user, authn) = who(c, a)?;
    require_admin(&user)?;
    let users = blocking(move || authn.auth.store().list_users()).await?;
    reply(json!({"users": users.iter().map(user_json).collect::<Vec<_>>()}))
}

async fn update_password(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let (username, password) = (f.str("username")?, f.str("password")?);
    if !user.is_admin {
        if user.username != username {
            return Err(forbidden(
                "Permission denied: you may change only your own password",
            ));
        }
        // A hijacked session must not rotate a password silently (MLflow's rule).
        let current = f.opt_str("current_password")?.ok_or_else(|| {
            ApiError::invalid("Current password is required when changing your own password.")
        })?;
        let (a2, name) = (authn.clone(), username.clone());
        let ok = blocking(move || a2.auth.check_password(&name, &current)).await?;
        if ok.is_none() {
            return Err(forbidden("The current password is wrong"));
        }
    }
    let a2 = authn.clone();
    blocking(move || a2.auth.set_password(&username, &password)).await?;
    authn.forget();
    reply(json!({}))
}

async fn update_admin(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    require_admin(&user)?;
    let username = f.str("username")?;
    let is_admin = match f.map_get("is_admin") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        _ => return Err(ApiError::invalid("is_admin must be true or false")),
    };
    blocking(move || {
        let target = authn.auth.user(&username)?;
        authn.auth.store().set_admin(target.id, is_admin)
    })
    .await?;
    keep.forget();
    reply(json!({}))
}

async fn delete_user(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    require_admin(&user)?;
    let username = f.str("username")?;
    let a2 = authn.clone();
    blocking(move || {
        let target = a2.auth.user(&username)?;
        a2.auth.store().delete_user(target.id)
    })
    .await?;
    authn.forget();
    reply(json!({}))
}

/// Whether `user` may grant on a resource: admins, and MANAGE holders.
fn may_manage(auth: &Auth, user: &User, kind: ResourceType, id: &str) -> cairn_core::Result<bool> {
    Ok(auth.permission(user, kind, id)? == Permission::Manage)
}

async fn grant_permission(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    let (username, kind, id, level) = (
        f.str("username")?,
        ResourceType::parse(&f.str("resource_type")?)?,
        f.str("resource_id")?,
        Permission::parse(&f.str("permission")?)?,
    );
    blocking(move || {
        if !may_manage(&authn.auth, &user, kind, &id)? {
            return Ok(Checked::Refused);
        }
        let target = authn.auth.user(&username)?;
        authn.auth.grant(&target, kind, &id, level)?;
        Ok(Checked::Done(()))
    })
    .await?
    .or_forbidden(NEEDS_MANAGE)?;
    keep.forget();
    reply(json!({}))
}

async fn revoke_permission(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    let (username, kind, id) = (
        f.str("username")?,
        ResourceType::parse(&f.str("resource_type")?)?,
        f.str("resource_id")?,
    );
    blocking(move || {
        if !may_manage(&authn.auth, &user, kind, &id)? {
            return Ok(Checked::Refused);
        }
        let target = authn.auth.user(&username)?;
        authn.auth.revoke(&target, kind, &id)?;
        Ok(Checked::Done(()))
    })
    .await?
    .or_forbidden(NEEDS_MANAGE)?;
    keep.forget();
    reply(json!({}))
}

/// What a store-side check decided: the work's result, or a refusal the handler turns into
/// a 403 (the check and the work run together on the blocking pool).
enum Checked<T> {
    Done(T),
    Refused,
}

impl<T> Checked<T> {
    fn or_forbidden(self, why: &str) -> Result<T, ApiError> {
        match self {
            Checked::Done(t) => Ok(t),
            Checked::Refused => Err(forbidden(why)),
        }
    }
}

const NEEDS_MANAGE: &str = "Permission denied: granting needs MANAGE on the resource";

async fn get_permission(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let (username, kind, id) = (
        f.str("username")?,
        ResourceType::parse(&f.str("resource_type")?)?,
        f.str("resource_id")?,
    );
    let level = blocking(move || {
        if user.username != username && !may_manage(&authn.auth, &user, kind, &id)? {
            return Ok(Checked::Refused);
        }
        let target = authn.auth.user(&username)?;
        Ok(Checked::Done(authn.auth.permission(&target, kind, &id)?))
    })
    .await?
    .or_forbidden(
        "Permission denied: reading another user's permission needs MANAGE on the resource",
    )?;
    reply(json!({"allowed": level.can_use(), "permission": level.as_str()}))
}

fn permission_rows(auth: &Auth, target: &User) -> cairn_core::Result<Vec<Value>> {
    let mut rows = Vec::new();
    for role in auth.store().user_roles(target.id)? {
        for p in &role.permissions {
            rows.push(json!({
                "role_id": role.id,
                "role_name": role.name,
                "workspace": role.workspace,
                "resource_type": p.resource_type.as_str(),
                "resource_pattern": p.resource_pattern,
                "permission": p.permission.as_str(),
            }));
        }
    }
    Ok(rows)
}

async fn list_permissions(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let username = f.str("username")?;
    if !user.is_admin && user.username != username {
        return Err(forbidden(
            "Permission denied: you may list only your own permissions",
        ));
    }
    let (is_admin, rows) = blocking(move || {
        let target = authn.auth.user(&username)?;
        Ok((target.is_admin, permission_rows(&authn.auth, &target)?))
    })
    .await?;
    reply(json!({"is_admin": is_admin, "permissions": rows}))
}

async fn current_permissions(c: CallerExt, a: AuthnExt) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let is_admin = user.is_admin;
    let rows = blocking(move || permission_rows(&authn.auth, &user)).await?;
    reply(json!({"is_admin": is_admin, "permissions": rows}))
}

async fn create_role(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    require_admin(&user)?;
    let (name, description) = (f.str("name")?, f.opt_str("description")?);
    let workspace = f
        .opt_str("workspace")?
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| cairn_core::auth::DEFAULT_WORKSPACE.to_string());
    let role = blocking(move || {
        authn
            .auth
            .create_role(&workspace, &name, description.as_deref())
    })
    .await?;
    reply(json!({"role": role_json(&role)}))
}

async fn get_role(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let id = int_field(&f, "role_id")?;
    let role = blocking(move || {
        let role = authn.auth.role(id)?;
        let holds = authn
            .auth
            .store()
            .user_roles(user.id)?
            .iter()
            .any(|r| r.id == id);
        if !user.is_admin && !holds {
            return Ok(Checked::Refused);
        }
        Ok(Checked::Done(role))
    })
    .await?
    .or_forbidden("Permission denied: you may read only roles you hold")?;
    reply(json!({"role": role_json(&role)}))
}

async fn list_roles(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    require_admin(&user)?;
    let workspace = f.opt_str("workspace")?;
    let roles = blocking(move || authn.auth.store().list_roles(workspace.as_deref())).await?;
    let visible: Vec<Value> = roles
        .iter()
        .filter(|r| !cairn_core::auth::is_personal_role_name(&r.name))
        .map(role_json)
        .collect();
    reply(json!({"roles": visible}))
}

async fn update_role(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    require_admin(&user)?;
    let id = int_field(&f, "role_id")?;
    let (name, description) = (f.opt_str("name")?, f.opt_str("description")?);
    if name
        .as_deref()
        .is_some_and(cairn_core::auth::is_personal_role_name)
    {
        return Err(ApiError::invalid("That role name is reserved"));
    }
    let role = blocking(move || {
        authn.auth.role(id)?;
        authn
            .auth
            .store()
            .update_role(id, name.as_deref(), description.as_deref())?;
        authn.auth.role(id)
    })
    .await?;
    reply(json!({"role": role_json(&role)}))
}

async fn delete_role(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    require_admin(&user)?;
    let id = int_field(&f, "role_id")?;
    blocking(move || {
        authn.auth.role(id)?;
        authn.auth.store().delete_role(id)
    })
    .await?;
    keep.forget();
    reply(json!({}))
}

async fn add_role_permission(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    require_admin(&user)?;
    let id = int_field(&f, "role_id")?;
    let kind = ResourceType::parse(&f.str("resource_type")?)?;
    let pattern = f.non_empty("resource_pattern")?;
    let level = Permission::parse(&f.str("permission")?)?;
    let grant = blocking(move || {
        authn.auth.role(id)?;
        authn
            .auth
            .store()
            .upsert_role_permission(id, kind, &pattern, level)
    })
    .await?;
    keep.forget();
    reply(json!({"role_permission": grant_json(&grant)}))
}

async fn remove_role_permission(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    require_admin(&user)?;
    let id = int_field(&f, "role_permission_id")?;
    blocking(move || {
        authn
            .auth
            .store()
            .get_role_permission(id)?
            .ok_or_else(|| Error::not_found(format!("Role permission with id={id} not found")))?;
        authn.auth.store().delete_role_permission(id)
    })
    .await?;
    keep.forget();
    reply(json!({}))
}

async fn list_role_permissions(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    require_admin(&user)?;
    let id = int_field(&f, "role_id")?;
    let role = blocking(move || authn.auth.role(id)).await?;
    reply(json!({"role_permissions": role.permissions.iter().map(grant_json).collect::<Vec<_>>()}))
}

async fn update_role_permission(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    require_admin(&user)?;
    let id = int_field(&f, "role_permission_id")?;
    let level = Permission::parse(&f.str("permission")?)?;
    let grant = blocking(move || {
        let store = authn.auth.store();
        store
            .get_role_permission(id)?
            .ok_or_else(|| Error::not_found(format!("Role permission with id={id} not found")))?;
        store.set_role_permission(id, level)?;
        store
            .get_role_permission(id)?
            .ok_or_else(|| Error::not_found(format!("Role permission with id={id} not found")))
    })
    .await?;
    keep.forget();
    reply(json!({"role_permission": grant_json(&grant)}))
}

async fn assign_role(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    require_admin(&user)?;
    let (username, id) = (f.str("username")?, int_field(&f, "role_id")?);
    let assigned = blocking(move || {
        let target = authn.auth.user(&username)?;
        authn.auth.role(id)?;
        authn.auth.store().assign_role(target.id, id)
    })
    .await?;
    keep.forget();
    reply(json!({"assignment": assignment_json(&assigned)}))
}

async fn unassign_role(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let keep = authn.clone();
    require_admin(&user)?;
    let (username, id) = (f.str("username")?, int_field(&f, "role_id")?);
    blocking(move || {
        let target = authn.auth.user(&username)?;
        authn.auth.store().unassign_role(target.id, id)
    })
    .await?;
    keep.forget();
    reply(json!({}))
}

async fn list_user_roles(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let username = f.str("username")?;
    if !user.is_admin && user.username != username {
        return Err(forbidden(
            "Permission denied: you may list only your own roles",
        ));
    }
    let roles = blocking(move || {
        let target = authn.auth.user(&username)?;
        authn.auth.store().user_roles(target.id)
    })
    .await?;
    let visible: Vec<Value> = roles
        .iter()
        .filter(|r| !cairn_core::auth::is_personal_role_name(&r.name))
        .map(role_json)
        .collect();
    reply(json!({"roles": visible}))
}

async fn list_role_users(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    require_admin(&user)?;
    let id = int_field(&f, "role_id")?;
    let assignments = blocking(move || {
        authn.auth.role(id)?;
        authn.auth.store().role_assignments(id)
    })
    .await?;
    reply(json!({"assignments": assignments.iter().map(assignment_json).collect::<Vec<_>>()}))
}

// ---- Cairn's access tokens ----

async fn create_token(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let name = f.opt_str("name")?.unwrap_or_default();
    // `expires_in_days`, or `expires_in_seconds` for short-lived tokens (CI jobs, tests).
    let seconds = match (
        f.opt_i64("expires_in_days")?,
        f.opt_i64("expires_in_seconds")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give expires_in_days or expires_in_seconds, not both",
            ))
        }
        (Some(d), None) => Some(d.checked_mul(86_400).unwrap_or(i64::MAX)),
        (None, s) => s,
    };
    const TEN_YEARS: i64 = 3650 * 86_400;
    if seconds.is_some_and(|s| !(1..=TEN_YEARS).contains(&s)) {
        return Err(ApiError::invalid(
            "a token's lifetime must be between 1 second and 3650 days",
        ));
    }
    let now = now_ms();
    let expires = seconds.map(|s| now + s * 1000);
    let token = new_token();
    let hash = token_hash(&token);
    let stored = blocking(move || {
        authn
            .auth
            .store()
            .create_token(user.id, &name, &hash, now, expires)
    })
    .await?;
    // The token itself is shown once, here; the server keeps only its hash.
    reply(json!({"token": token, "token_info": token_json(&stored)}))
}

async fn list_tokens(c: CallerExt, a: AuthnExt) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let tokens = blocking(move || authn.auth.store().list_tokens(user.id)).await?;
    reply(json!({"tokens": tokens.iter().map(token_json).collect::<Vec<_>>()}))
}

async fn revoke_token(c: CallerExt, a: AuthnExt, f: Fields) -> ApiResult {
    let (user, authn) = who(c, a)?;
    let id = int_field(&f, "id")?;
    let a2 = authn.clone();
    blocking(move || a2.auth.store().revoke_token(user.id, id)).await?;
    authn.forget();
    reply(json!({}))
}

/// MLflow's auth API (users, permissions, roles) and Cairn's tokens, under `/api` and
/// `/ajax-api`, with the paths and verbs of the pinned MLflow client.
pub fn routes() -> Router {
    let api = Router::new()
        .route("/2.0/mlflow/users/create", post(create_user))
        .route("/2.0/mlflow/users/get", get(get_user))
        .route("/2.0/mlflow/users/current", get(current_user))
        .route("/2.0/mlflow/users/list", get(list_users))
        .route("/2.0/mlflow/users/update-password", patch(update_password))
        .route("/2.0/mlflow/users/update-admin", patch(update_admin))
        .route("/2.0/mlflow/users/delete", delete(delete_user))
        .route(
            "/3.0/mlflow/users/permissions/grant",
            post(grant_permission),
        )
        .route(
            "/3.0/mlflow/users/permissions/revoke",
            post(revoke_permission),
        )
        .route("/3.0/mlflow/users/permissions/get", get(get_permission))
        .route("/3.0/mlflow/users/permissions/list", get(list_permissions))
        .route(
            "/3.0/mlflow/users/current/permissions",
            get(current_permissions),
        )
        .route("/3.0/mlflow/roles/create", post(create_role))
        .route("/3.0/mlflow/roles/get", get(get_role))
        .route("/3.0/mlflow/roles/list", get(list_roles))
        .route("/3.0/mlflow/roles/update", patch(update_role))
        .route("/3.0/mlflow/roles/delete", delete(delete_role))
        .route(
            "/3.0/mlflow/roles/permissions/add",
            post(add_role_permission),
        )
        .route(
            "/3.0/mlflow/roles/permissions/remove",
            delete(remove_role_permission),
        )
        .route(
            "/3.0/mlflow/roles/permissions/list",
            get(list_role_permissions),
        )
        .route(
            "/3.0/mlflow/roles/permissions/update",
            patch(update_role_permission),
        )
        .route("/3.0/mlflow/roles/assign", post(assign_role))
        .route("/3.0/mlflow/roles/unassign", delete(unassign_role))
        .route("/3.0/mlflow/users/roles/list", get(list_user_roles))
        .route("/3.0/mlflow/roles/users/list", get(list_role_users))
        .route("/2.0/cairn/tokens/create", post(create_token))
        .route("/2.0/cairn/tokens/list", get(list_tokens))
        .route("/2.0/cairn/tokens/revoke", post(revoke_token));
    Router::new()
        .nest("/api", api.clone())
        .nest("/ajax-api", api)
}

/// The first start with authentication: when no user exists, creates `admin` with
/// `password` (or a generated one) and returns the password when it was generated.
pub fn bootstrap_admin(auth: &Auth, password: Option<&str>) -> cairn_core::Result<Option<String>> {
    if !auth.store().list_users()?.is_empty() {
        return Ok(None);
    }
    let generated = password.is_none().then(|| {
        let bytes: [u8; 18] = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    });
    let chosen = password.or(generated.as_deref()).unwrap_or_default();
    auth.create_user("admin", chosen, true)?;
    Ok(generated)
}

/// Adds authentication and authorization to `router`.
pub fn protect(router: Router, state: AppState, authn: Arc<Authn>) -> Router {
    router.layer(axum::middleware::from_fn_with_state((state, authn), guard))
}
