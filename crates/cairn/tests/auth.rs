//! `cairn server --auth`: users, tokens, permissions and their refusals over HTTP, on SQLite
//! and (when `CAIRN_TEST_POSTGRES_URL` is set) PostgreSQL. The real MLflow client's
//! `AuthServiceClient` drives the same server in `tests/interop/auth_client.py`.
#![allow(clippy::unwrap_used)]

use cairn_test::onnx::tiny_mlp_onnx;
use cairn_test::{Http, PgDatabase, TestServer};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "admin-password-for-tests";
const PASSWORD: &str = "a-long-enough-password";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cairn"))
}

/// `cairn server --auth` with a known admin password.
fn start(home: &Path, backend: Option<&str>, extra: &[&str]) -> TestServer {
    let mut cmd = Command::new(bin());
    cmd.arg("server")
        .args(["--port", "0", "--auth"])
        .args(extra)
        .env("CAIRN_HOME", home)
        .env("CAIRN_LOG", "warn")
        .env("CAIRN_ADMIN_PASSWORD", ADMIN_PASSWORD);
    if let Some(b) = backend {
        cmd.arg("--backend-store-uri").arg(b);
    } else {
        cairn_test::tally("sqlite");
    }
    TestServer::spawn(cmd, home)
}

fn create_user(admin: &Http, name: &str) -> Http {
    let (status, body) = admin.post_json(
        "/api/2.0/mlflow/users/create",
        &json!({"username": name, "password": PASSWORD}),
    );
    assert_eq!(status, 200, "{body}");
    admin.basic(name, PASSWORD)
}

fn grant(by: &Http, user: &str, kind: &str, id: &str, level: &str) -> (u16, Value) {
    by.post_json(
        "/api/3.0/mlflow/users/permissions/grant",
        &json!({"username": user, "resource_type": kind, "resource_id": id, "permission": level}),
    )
}

fn permissions_hold(backend: Option<&str>) {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path(), backend, &[]);
    let anonymous = server.http();
    // No credentials, wrong ones: 401 with the challenge MLflow's client answers.
    let (status, body) = anonymous.get("/api/2.0/mlflow/experiments/search?max_results=1");
    assert_eq!(status, 401, "{body}");
    assert_eq!(anonymous.get("/health").0, 200);
    assert_eq!(
        anonymous
            .basic("admin", "wrong-password-1")
            .get("/api/2.0/mlflow/experiments/search")
            .0,
        401
    );
    let admin = anonymous.basic("admin", ADMIN_PASSWORD);
    assert_eq!(
        admin.get("/api/2.0/mlflow/users/current").1["user"]["is_admin"],
        true
    );
    // Passwords shorter than 12 characters are refused.
    let (status, body) = admin.post_json(
        "/api/2.0/mlflow/users/create",
        &json!({"username": "shorty", "password": "short"}),
    );
    assert_eq!(status, 400, "{body}");
    let alice = create_user(&admin, "alice");
    let bob = create_user(&admin, "bob");
    // Users cannot make users.
    let (status, _) = alice.post_json(
        "/api/2.0/mlflow/users/create",
        &json!({"username": "mallory", "password": PASSWORD}),
    );
    assert_eq!(status, 403);

    // The creator gets MANAGE; others get the default, READ: they read but do not write.
    let (status, created) = alice.post("experiments/create", &json!({"name": "alices"}));
    assert_eq!(status, 200, "{created}");
    let exp = created["experiment_id"].as_str().unwrap().to_string();
    let (status, run) = alice.post("runs/create", &json!({"experiment_id": exp}));
    assert_eq!(status, 200, "{run}");
    let run_id = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        bob.get(&format!(
            "/api/2.0/mlflow/experiments/get?experiment_id={exp}"
        ))
        .0,
        200
    );
    assert_eq!(
        bob.get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"))
            .0,
        200
    );
    let log = json!({"run_id": run_id, "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}]});
    let (status, body) = bob.post("runs/log-batch", &log);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error_code"], "PERMISSION_DENIED");
    assert_eq!(
        bob.post("experiments/delete", &json!({"experiment_id": exp}))
            .0,
        403
    );
    assert_eq!(
        bob.post("runs/create", &json!({"experiment_id": exp})).0,
        403
    );
    // The guard checks what the handler acts on: no smuggling a second id past it, in the
    // query beside the body or behind an empty `run_id`.
    let (_, bobs) = bob.post("experiments/create", &json!({"name": "bobs"}));
    let bobs = bobs["experiment_id"].as_str().unwrap().to_string();
    let (_, bobs_run) = bob.post("runs/create", &json!({"experiment_id": bobs}));
    let bobs_run = bobs_run["run"]["info"]["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let smuggled_delete = bob.post_json(
        &format!("/api/2.0/mlflow/experiments/delete?experiment_id={bobs}"),
        &json!({"experiment_id": exp}),
    );
    assert_eq!(smuggled_delete.0, 403, "{}", smuggled_delete.1);
    let metric = |id: &str| json!({"run_id": id, "key": "k", "value": 1.0, "timestamp": 1});
    let mut behind_empty = metric("");
    behind_empty["run_uuid"] = json!(run_id);
    assert_eq!(bob.post("runs/log-metric", &behind_empty).0, 403);
    let smuggled_log = bob.post_json(
        &format!("/api/2.0/mlflow/runs/log-metric?run_id={bobs_run}"),
        &metric(&run_id),
    );
    assert_eq!(smuggled_log.0, 403, "{}", smuggled_log.1);
    // Artifacts inherit the experiment's permission.
    let root = run["run"]["info"]["artifact_uri"]
        .as_str()
        .unwrap()
        .trim_start_matches("mlflow-artifacts:/")
        .to_string();
    assert_eq!(
        alice
            .put(
                &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/a.txt"),
                b"x"
            )
            .0,
        200
    );
    assert_eq!(
        bob.put(
            &format!("/api/2.0/mlflow-artifacts/artifacts/{root}/b.txt"),
            b"x"
        )
        .0,
        403
    );
    assert_eq!(
        bob.get(&format!("/api/2.0/mlflow-artifacts/artifacts/{root}/a.txt"))
            .0,
        200
    );
    // Listings that span experiments are not for users: the artifact root, runs of no
    // experiment in particular.
    assert_eq!(bob.get("/api/2.0/mlflow-artifacts/artifacts").0, 403);
    assert_eq!(bob.post("runs/search", &json!({})).0, 403);

    // Only MANAGE grants: bob cannot, alice can; with EDIT bob logs.
    assert_eq!(grant(&bob, "bob", "experiment", &exp, "EDIT").0, 403);
    assert_eq!(grant(&alice, "bob", "experiment", &exp, "EDIT").0, 200);
    assert_eq!(bob.post("runs/log-batch", &log).0, 200);
    let (_, got) = bob.get(&format!(
        "/api/3.0/mlflow/users/permissions/get?username=bob&resource_type=experiment&resource_id={exp}"
    ));
    assert_eq!(got["permission"], "EDIT", "{got}");

    // DENY through a role beats the direct grant.
    let (status, role) =
        admin.post_json("/api/3.0/mlflow/roles/create", &json!({"name": "blocked"}));
    assert_eq!(status, 200, "{role}");
    let role_id = role["role"]["id"].as_i64().unwrap();
    let (status, body) = admin.post_json(
        "/api/3.0/mlflow/roles/permissions/add",
        &json!({"role_id": role_id, "resource_type": "experiment", "resource_pattern": exp, "permission": "DENY"}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        admin
            .post_json(
                "/api/3.0/mlflow/roles/assign",
                &json!({"username": "bob", "role_id": role_id})
            )
            .0,
        200
    );
    assert_eq!(bob.post("runs/log-batch", &log).0, 403);
    assert_eq!(
        bob.get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"))
            .0,
        403
    );
    let (_, searched) = bob.post("experiments/search", &json!({"max_results": 100}));
    let names: Vec<&str> = searched["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"alices"),
        "a denied experiment was listed: {names:?}"
    );
    // Nor through an artifact path written otherwise than the handler reads it.
    let first = root.as_bytes()[0];
    for disguised in [
        format!("%{first:02X}{}/a.txt", &root[1..]),
        format!("./{root}/a.txt"),
        format!("/{root}/a.txt"),
    ] {
        let status = bob
            .get(&format!("/api/2.0/mlflow-artifacts/artifacts/{disguised}"))
            .0;
        assert!(status == 403 || status == 400, "{disguised}: {status}");
    }

    // Models: USE may infer, not register; the creator manages.
    assert_eq!(
        alice
            .post("registered-models/create", &json!({"name": "m"}))
            .0,
        200
    );
    let source = alice.run_in_with_model_file(&exp, "model.onnx", &tiny_mlp_onnx());
    let (status, body) = alice.post(
        "model-versions/create",
        &json!({"name": "m", "source": source}),
    );
    assert_eq!(status, 200, "{body}");
    let infer = json!({"inputs": [
        {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1.0, 2.0, 3.0]},
        {"name": "offset", "shape": [1, 2], "datatype": "FP32", "data": [0.0, 0.0]},
    ]});
    assert_eq!(
        bob.post_json("/v2/models/m/versions/1/infer", &infer).0,
        403
    );
    // A model of bob's whose name decodes to alice's model's name does not open it.
    assert_eq!(
        bob.post("registered-models/create", &json!({"name": "%6D"}))
            .0,
        200
    );
    assert_eq!(
        bob.post_json("/v2/models/%6D/versions/1/infer", &infer).0,
        403
    );
    assert_eq!(grant(&alice, "bob", "registered_model", "m", "USE").0, 200);
    assert_eq!(
        bob.post_json("/v2/models/m/versions/1/infer", &infer).0,
        200
    );
    assert_eq!(
        bob.post(
            "model-versions/create",
            &json!({"name": "m", "source": "s3://b/x"})
        )
        .0,
        403
    );
    assert_eq!(
        bob.delete("/api/2.0/mlflow/registered-models/delete?name=m")
            .0,
        403
    );
    // Admin-only surfaces.
    assert_eq!(bob.get("/api/2.0/mlflow/users/list").0, 403);
    assert_eq!(bob.get("/metrics").0, 403);
    assert_eq!(admin.get("/api/2.0/mlflow/users/list").0, 200);
    // The UI's start page is any user's (it lists what they may read).
    assert_eq!(bob.get("/").0, 200);
}

#[test]
fn permissions_follow_mlflows_rules_on_sqlite() {
    permissions_hold(None);
}

#[test]
fn permissions_follow_mlflows_rules_on_postgresql() {
    let Some(db) = PgDatabase::create("permissions_follow_mlflows_rules_on_postgresql") else {
        return;
    };
    permissions_hold(Some(&db.url));
}

/// A server where nobody may do anything by default, its admin, and two users.
fn alice_and_bob(home: &Path) -> (TestServer, Http, Http, Http) {
    let server = start(home, None, &["--default-permission", "NO_PERMISSIONS"]);
    let admin = server.http().basic("admin", ADMIN_PASSWORD);
    let alice = create_user(&admin, "alice");
    let bob = create_user(&admin, "bob");
    (server, admin, alice, bob)
}

#[test]
fn search_shows_only_what_the_caller_may_read() {
    let home = tempfile::tempdir().unwrap();
    let (_server, _admin, alice, bob) = alice_and_bob(home.path());
    assert_eq!(
        alice
            .post("experiments/create", &json!({"name": "private"}))
            .0,
        200
    );
    assert_eq!(
        alice
            .post("registered-models/create", &json!({"name": "secret-model"}))
            .0,
        200
    );
    let (_, mine) = alice.post("experiments/search", &json!({"max_results": 100}));
    assert!(mine.to_string().contains("private"));
    let (_, theirs) = bob.post("experiments/search", &json!({"max_results": 100}));
    assert!(!theirs.to_string().contains("private"), "{theirs}");
    let (_, models) = bob.get("/api/2.0/mlflow/registered-models/search");
    assert!(!models.to_string().contains("secret-model"), "{models}");
    assert_eq!(
        bob.get("/api/2.0/mlflow/registered-models/get?name=secret-model")
            .0,
        403
    );
}

#[test]
fn tokens_work_expire_and_revoke_and_brute_force_is_limited() {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path(), None, &[]);
    let admin = server.http().basic("admin", ADMIN_PASSWORD);
    let alice = create_user(&admin, "alice");
    let (status, made) = alice.post_json("/api/2.0/cairn/tokens/create", &json!({"name": "ci"}));
    assert_eq!(status, 200, "{made}");
    let token = made["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("cairn_"));
    let by_token = server.http().bearer(&token);
    assert_eq!(
        by_token.get("/api/2.0/mlflow/users/current").1["user"]["username"],
        "alice"
    );
    // The server keeps only a hash: the token's text is nowhere in its database.
    let db = std::fs::read(home.path().join("cairn.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
    let id = made["token_info"]["id"].as_i64().unwrap();
    assert_eq!(
        alice
            .post_json("/api/2.0/cairn/tokens/revoke", &json!({"id": id}))
            .0,
        200
    );
    assert_eq!(by_token.get("/api/2.0/mlflow/users/current").0, 401);
    // A token that expires stops working, within the short lookup cache.
    let (_, short) = alice.post_json(
        "/api/2.0/cairn/tokens/create",
        &json!({"name": "short", "expires_in_seconds": 1}),
    );
    let short = server.http().bearer(short["token"].as_str().unwrap());
    let started = Instant::now();
    loop {
        let status = short.get("/api/2.0/mlflow/users/current").0;
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the token never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Brute force: after ten failures for one user, more guesses get 429 without a check.
    let guesser = server.http();
    let mut limited = false;
    for i in 0..15 {
        let status = guesser
            .basic("alice", &format!("guess-number-{i}"))
            .get("/api/2.0/mlflow/users/current")
            .0;
        if status == 429 {
            limited = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(limited, "fifteen wrong passwords were all answered 401");
    assert_eq!(
        guesser
            .basic("alice", "yet-another-guess")
            .get("/api/2.0/mlflow/users/current")
            .0,
        429
    );
    // Other users are not locked out, nor is a credential already verified: an attacker
    // cannot use the limit to shut the real user out.
    let bob = create_user(&admin, "bob");
    assert_eq!(bob.get("/api/2.0/mlflow/users/current").0, 200);
    assert_eq!(alice.get("/api/2.0/mlflow/users/current").0, 200);
}

#[test]
fn the_first_start_makes_an_admin_with_a_private_generated_password() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin());
    cmd.arg("server")
        .args(["--port", "0", "--auth"])
        .env("CAIRN_HOME", home.path())
        .env("CAIRN_LOG", "warn")
        .env_remove("CAIRN_ADMIN_PASSWORD");
    cairn_test::tally("sqlite");
    let server = TestServer::spawn(cmd, home.path());
    let file = home.path().join("admin-password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.len() >= 12);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let admin = server.http().basic("admin", &password);
    assert_eq!(
        admin.get("/api/2.0/mlflow/users/current").1["user"]["is_admin"],
        true
    );
    // A short admin password is refused at start, naming the rule.
    let out = Command::new(bin())
        .arg("server")
        .args(["--port", "0", "--auth"])
        .env("CAIRN_HOME", tempfile::tempdir().unwrap().path())
        .env("CAIRN_ADMIN_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 characters"));
}

#[test]
fn mlflows_auth_client_works_unchanged() {
    let home = tempfile::tempdir().unwrap();
    let server = start(home.path(), None, &[]);
    cairn_test::run_interop_script_with(
        "mlflows_auth_client_works_unchanged",
        "auth_client.py",
        &server.url,
        &[
            ("MLFLOW_TRACKING_USERNAME", "admin"),
            ("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD),
        ],
    );
}

/// A browser as the UI sees one: cookies kept, redirects not followed.
struct Browser {
    base: String,
    agent: ureq::Agent,
    cookies: std::collections::BTreeMap<String, String>,
}

struct Page {
    status: u16,
    location: String,
    set_cookie: Vec<String>,
    body: String,
}

impl Browser {
    fn new(server: &TestServer) -> Self {
        Browser {
            base: server.url.clone(),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .new_agent(),
            cookies: Default::default(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, mut resp: ureq::http::Response<ureq::Body>) -> Page {
        let set_cookie: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        for c in &set_cookie {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            set_cookie,
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&mut self, path: &str) -> Page {
        let resp = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("cookie", &self.cookie_header())
            .call()
            .unwrap();
        self.keep(resp)
    }

    fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let resp = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &self.cookie_header())
            .send(body.as_bytes())
            .unwrap();
        self.keep(resp)
    }

    fn csrf(&self) -> String {
        self.cookies
            .get("cairn_csrf")
            .cloned()
            .expect("a CSRF cookie")
    }

    /// Signs in through the form; the response to the form's POST.
    fn sign_in(&mut self, user: &str, password: &str, next: &str) -> Page {
        self.get(&format!("/login?next={}", next.replace('/', "%2F")));
        let csrf = self.csrf();
        self.post_form(
            "/login",
            &[
                ("csrf", &csrf),
                ("username", user),
                ("password", password),
                ("next", next),
            ],
        )
    }
}

#[test]
fn the_ui_signs_in_with_a_session_and_shows_only_what_the_user_may_read() {
    let home = tempfile::tempdir().unwrap();
    let (server, _admin, alice, bob) = alice_and_bob(home.path());
    let made = |who: &Http, name: &str| {
        let (status, body) = who.post("experiments/create", &json!({"name": name}));
        assert_eq!(status, 200, "{body}");
        body["experiment_id"].as_str().unwrap().to_string()
    };
    let alice_exp = made(&alice, "alice-exp");
    let bob_exp = made(&bob, "bob-exp");
    let (_, run) = bob.post("runs/create", &json!({"experiment_id": bob_exp}));
    let bob_run = run["run"]["info"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(
        bob.post("registered-models/create", &json!({"name": "bob-model"}))
            .0,
        200
    );

    // Without a session a page sends the browser to sign in; the API still answers 401.
    let mut browser = Browser::new(&server);
    let first = browser.get("/experiments?view=all");
    assert_eq!(first.status, 303);
    assert_eq!(first.location, "/login?next=%2Fexperiments%3Fview%3Dall");
    let api = browser.get("/api/2.0/mlflow/experiments/search?max_results=5");
    assert_eq!(api.status, 401);
    assert!(api.body.contains("UNAUTHENTICATED"), "{}", api.body);

    // The form: a CSRF token is required, a wrong password is refused and says so.
    let form = browser.get("/login?next=%2Fexperiments");
    assert_eq!(form.status, 200);
    assert!(form.body.contains("name=\"password\""), "{}", form.body);
    let no_token = browser.post_form("/login", &[("username", "alice"), ("password", PASSWORD)]);
    assert_eq!(no_token.status, 403);
    assert!(!browser.cookies.contains_key("cairn_session"));
    let wrong = browser.sign_in("alice", "not-her-password-at-all", "/experiments");
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("Wrong username or password"),
        "{}",
        wrong.body
    );
    assert!(!browser.cookies.contains_key("cairn_session"));

    // Signed in: the session cookie is HttpOnly and SameSite=Strict, and the browser goes
    // back where it was; a `next` on another site is not followed.
    let signed = browser.sign_in("alice", PASSWORD, "//evil.example/x");
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.location, "/");
    let cookie = signed
        .set_cookie
        .iter()
        .find(|c| c.starts_with("cairn_session="))
        .expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // Lists hold only what alice may read; the header names her.
    let list = browser.get("/experiments");
    assert_eq!(list.status, 200);
    assert!(list.body.contains("alice-exp"), "{}", list.body);
    assert!(!list.body.contains("bob-exp"), "{}", list.body);
    assert!(list.body.contains("Sign out") && list.body.contains(">alice<"));
    let models = browser.get("/models");
    assert_eq!(models.status, 200);
    assert!(!models.body.contains("bob-model"), "{}", models.body);

    // Pages about one thing need what the API call needs.
    assert_eq!(
        browser.get(&format!("/experiments/{alice_exp}")).status,
        200
    );
    let refused = browser.get(&format!("/experiments/{bob_exp}"));
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("READ"), "{}", refused.body);
    assert_eq!(browser.get(&format!("/runs/{bob_run}")).status, 403);
    assert_eq!(
        browser
            .get(&format!("/runs?experiments={alice_exp},{bob_exp}"))
            .status,
        403
    );
    assert_eq!(browser.get(&format!("/compare?run={bob_run}")).status, 403);
    assert_eq!(
        browser
            .get(&format!("/chart.svg?run={bob_run}&metric=m"))
            .status,
        403
    );
    assert_eq!(browser.get("/models/bob-model").status, 403);
    assert_eq!(browser.get("/monitoring/bob-model/1").status, 403);
    // Bob's run under alice's experiment in the path is not found there, and its artifacts
    // are not read through it.
    assert_eq!(
        browser
            .get(&format!("/experiments/{alice_exp}/runs/{bob_run}"))
            .status,
        404
    );
    assert_eq!(
        browser
            .get(&format!(
                "/experiments/{alice_exp}/runs/{bob_run}/artifact-raw?path=x.txt"
            ))
            .status,
        404
    );
    let csrf = browser.csrf();
    let moved = browser.post_form(
        &format!("/experiments/{alice_exp}/runs/{bob_run}/edit"),
        &[("csrf", &csrf), ("action", "delete")],
    );
    assert_eq!(moved.status, 404);
    assert_eq!(
        bob.get(&format!("/api/2.0/mlflow/runs/get?run_id={bob_run}"))
            .1["run"]["info"]["lifecycle_stage"],
        "active"
    );

    // The session works for the API too, as alice.
    assert_eq!(
        browser
            .get(&format!(
                "/api/2.0/mlflow/experiments/get?experiment_id={alice_exp}"
            ))
            .status,
        200
    );
    // An experiment made in the UI is alice's to manage.
    let created = browser.post_form("/experiments", &[("csrf", &csrf), ("name", "made-in-ui")]);
    assert_eq!(created.status, 303);
    let ui_exp = created.location.rsplit('/').next().unwrap().to_string();
    let (status, level) = alice.get(&format!(
        "/api/3.0/mlflow/users/permissions/get?username=alice&resource_type=experiment&resource_id={ui_exp}"
    ));
    assert_eq!(status, 200, "{level}");
    assert_eq!(level["permission"], "MANAGE");

    // EDIT lets bob tag alice's experiment through the UI, not delete it (MANAGE).
    assert_eq!(
        grant(&alice, "bob", "experiment", &alice_exp, "EDIT").0,
        200
    );
    let mut bobs = Browser::new(&server);
    assert_eq!(bobs.sign_in("bob", PASSWORD, "/").status, 303);
    let bob_csrf = bobs.csrf();
    let edit = format!("/experiments/{alice_exp}/edit");
    let tagged = bobs.post_form(
        &edit,
        &[
            ("csrf", &bob_csrf),
            ("action", "set_tag"),
            ("key", "team"),
            ("value", "ml"),
        ],
    );
    assert_eq!(tagged.status, 303);
    let deleted = bobs.post_form(&edit, &[("csrf", &bob_csrf), ("action", "delete")]);
    assert_eq!(deleted.status, 403);
    assert!(deleted.body.contains("MANAGE"), "{}", deleted.body);
    let (_, exp) = alice.get(&format!(
        "/api/2.0/mlflow/experiments/get?experiment_id={alice_exp}"
    ));
    assert_eq!(exp["experiment"]["lifecycle_stage"], "active");
    assert!(exp.to_string().contains("\"team\""), "{exp}");

    // A cross-site form post carries no session (SameSite) and no token: refused.
    let foreign = bobs.post_form(&edit, &[("action", "delete")]);
    assert_eq!(foreign.status, 403);

    // The session is a token alice can see and revoke; signing out revokes it.
    let (_, tokens) = alice.get("/api/2.0/cairn/tokens/list");
    assert!(tokens.to_string().contains("web session"), "{tokens}");
    let session = browser.cookies.get("cairn_session").cloned().unwrap();
    let out = browser.post_form("/logout", &[("csrf", &csrf)]);
    assert_eq!(out.status, 303);
    assert_eq!(out.location, "/login");
    assert!(!browser.cookies.contains_key("cairn_session"));
    browser
        .cookies
        .insert("cairn_session".into(), session.clone());
    assert_eq!(browser.get("/experiments").status, 303);
    assert_eq!(
        server
            .http()
            .bearer(&session)
            .get("/api/2.0/mlflow/experiments/search")
            .0,
        401
    );
}
