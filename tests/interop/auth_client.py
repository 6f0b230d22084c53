"""MLflow's own auth client (`get_app_client("basic-auth")`, the pinned release) against
`cairn server --auth`, signed in as the admin through MLFLOW_TRACKING_USERNAME/PASSWORD.
Every refusal must reach the client as `RestException` with status 403 (or 401/429).
Prints {"ok": true} when every check held."""
import json
import os

import mlflow
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException
from mlflow.server import get_app_client

URL = os.environ["MLFLOW_TRACKING_URI"]
ADMIN = (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"])
PASSWORD = "reader-password-123"

auth = get_app_client("basic-auth", tracking_uri=URL)


def as_user(name, password=PASSWORD):
    os.environ["MLFLOW_TRACKING_USERNAME"] = name
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    return MlflowClient(tracking_uri=URL)


def refused(call, status=403):
    try:
        call()
    except RestException as e:
        got = e.get_http_status_code()
        assert got == status, f"expected {status}, got {got}: {e}"
        return
    except MlflowException as e:
        assert str(status) in str(e), f"expected {status}: {e}"
        return
    raise AssertionError(f"{call} was allowed")


# Users, as the admin.
for name in ["reader", "user", "editor", "manager"]:
    created = auth.create_user(name, PASSWORD)
    assert created.username == name and not created.is_admin
assert auth.get_user("reader").username == "reader"
try:
    auth.create_user("short", "tiny")
    raise AssertionError("a short password was taken")
except MlflowException as e:
    assert "12 characters" in str(e), e

admin = MlflowClient(tracking_uri=URL)
exp = admin.create_experiment("guarded")
run = admin.create_run(exp)
admin.log_metric(run.info.run_id, "m", 1.0)
admin.create_registered_model("guarded-model")

# Grants with the client's own calls.
auth.grant_user_permission("reader", "experiment", exp, "READ")
auth.grant_user_permission("editor", "experiment", exp, "EDIT")
auth.grant_user_permission("manager", "experiment", exp, "MANAGE")
auth.grant_user_permission("user", "registered_model", "guarded-model", "USE")
got = auth.get_user_permission("editor", "experiment", exp)
assert got.permission == "EDIT" and got.allowed, got.permission

# READ searches and gets, but does not log or delete.
reader = as_user("reader")
assert reader.get_experiment(exp).name == "guarded"
assert any(r.info.run_id == run.info.run_id for r in reader.search_runs([exp]))
refused(lambda: reader.log_metric(run.info.run_id, "m", 2.0))
refused(lambda: reader.create_run(exp))
refused(lambda: reader.delete_experiment(exp))

# EDIT logs but does not delete or grant.
editor = as_user("editor")
editor.log_metric(run.info.run_id, "m", 3.0)
refused(lambda: editor.delete_run(run.info.run_id))
os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "editor", PASSWORD
refused(lambda: get_app_client("basic-auth", tracking_uri=URL).grant_user_permission(
    "reader", "experiment", exp, "EDIT"))

# MANAGE grants.
os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "manager", PASSWORD
get_app_client("basic-auth", tracking_uri=URL).grant_user_permission(
    "reader", "experiment", exp, "EDIT")
as_user("reader").log_metric(run.info.run_id, "m", 4.0)

# DENY through a role beats the direct grant.
os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
role = auth.create_role("default", "deny-guarded", description="no access")
auth.add_role_permission(role.id, "experiment", exp, "DENY")
auth.assign_role("reader", role.id)
assert [r.name for r in auth.list_user_roles("reader")] == ["deny-guarded"]
reader = as_user("reader")
refused(lambda: reader.get_experiment(exp))
refused(lambda: reader.log_metric(run.info.run_id, "m", 5.0))
os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
auth.unassign_role("reader", role.id)
assert as_user("reader").get_experiment(exp).name == "guarded"

# USE: the model is readable and servable, not changeable.
user = as_user("user")
assert user.get_registered_model("guarded-model").name == "guarded-model"
refused(lambda: user.create_model_version("guarded-model", "s3://bucket/model"))
refused(lambda: user.delete_registered_model("guarded-model"))

# No credentials, wrong ones: 401; the client raises.
os.environ.pop("MLFLOW_TRACKING_USERNAME")
os.environ.pop("MLFLOW_TRACKING_PASSWORD")
refused(lambda: MlflowClient(tracking_uri=URL).get_experiment(exp), status=401)
refused(lambda: as_user("reader", "not-the-password").get_experiment(exp), status=401)

# Tokens: MLFLOW_TRACKING_TOKEN, as the client sends it.
os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
made = requests.post(f"{URL}/api/2.0/cairn/tokens/create", json={"name": "ci"},
                     auth=("editor", PASSWORD), timeout=30).json()
os.environ["MLFLOW_TRACKING_TOKEN"] = made["token"]
MlflowClient(tracking_uri=URL).log_metric(run.info.run_id, "by_token", 1.0)
requests.post(f"{URL}/api/2.0/cairn/tokens/revoke", json={"id": made["token_info"]["id"]},
              auth=("editor", PASSWORD), timeout=30).raise_for_status()
refused(lambda: MlflowClient(tracking_uri=URL).log_metric(run.info.run_id, "by_token", 2.0),
        status=401)
os.environ.pop("MLFLOW_TRACKING_TOKEN")

# The admin's listing and deletion.
os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
auth.update_user_admin("manager", True)
assert auth.get_user("manager").is_admin
auth.delete_user("user")
try:
    auth.get_user("user")
    raise AssertionError("a deleted user was found")
except RestException as e:
    assert e.get_http_status_code() == 404
print(json.dumps({"ok": True}))
