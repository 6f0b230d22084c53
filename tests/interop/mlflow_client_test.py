"""The real MLflow Python client against a running Cairn server.

Run by crates/cairn/tests/mlflow_interop.rs with MLFLOW_TRACKING_URI pointing at Cairn.
Every call's result is asserted. Exits non-zero on the first failure.
"""
import json
import urllib.request
import os
import sys
import tempfile
import time

import mlflow
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


def main():
    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(uri)
    name = f"interop-{time.time_ns()}"

    # Experiments.
    exp = mlflow.set_experiment(name)
    check(exp.name == name and exp.experiment_id != "0", f"set_experiment: {exp}")
    check(client.get_experiment_by_name(name).experiment_id == exp.experiment_id, "get_experiment_by_name")
    default = client.get_experiment("0")
    check(default.name == "Default", f"default experiment: {default}")
    client.set_experiment_tag(exp.experiment_id, "team", "vision")
    check(client.get_experiment(exp.experiment_id).tags.get("team") == "vision", "experiment tag")
    found = client.search_experiments(filter_string=f"name = '{name}'")
    check([e.experiment_id for e in found] == [exp.experiment_id], f"search_experiments: {found}")

    # A parent run with nested children.
    with mlflow.start_run(run_name="parent") as parent:
        mlflow.log_param("model", "forest")
        mlflow.log_params({"depth": 5, "trees": 100})
        for step in range(10):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"accuracy": 0.91, "f1": 0.88})
        mlflow.set_tag("stage", "dev")
        mlflow.set_tags({"owner": "ana", "temp": "x"})
        client.delete_tag(parent.info.run_id, "temp")
        try:
            mlflow.log_param("model", "boosting")
            raise AssertionError("changing a param must fail")
        except MlflowException as e:
            check(e.error_code == "INVALID_PARAMETER_VALUE", f"param change error code: {e.error_code}")
        ts = int(time.time() * 1000)
        client.log_batch(
            parent.info.run_id,
            metrics=[Metric("batch_metric", float(i), ts, i) for i in range(50)],
            params=[Param("batch_param", "yes")],
            tags=[RunTag("batch_tag", "ok")],
        )
        children = []
        for lr in (0.01, 0.1, 0.3):
            with mlflow.start_run(run_name=f"child-{lr}", nested=True) as child:
                mlflow.log_param("lr", lr)
                mlflow.log_metric("val_acc", 0.5 + lr)
                children.append(child.info.run_id)

        # Dataset input.
        dataset = mlflow.data.from_dict({"x": [1, 2, 3], "y": [0, 1, 0]}, name="tiny") if hasattr(mlflow.data, "from_dict") else None
        if dataset is None:
            import pandas as pd
            dataset = mlflow.data.from_pandas(pd.DataFrame({"x": [1, 2, 3], "y": [0, 1, 0]}), name="tiny")
        mlflow.log_input(dataset, context="training")

        # Artifacts: a file, a directory, a dict.
        with tempfile.TemporaryDirectory() as tmp:
            f = os.path.join(tmp, "notes.txt")
            with open(f, "w") as fh:
                fh.write("hello cairn")
            mlflow.log_artifact(f)
            d = os.path.join(tmp, "plots")
            os.makedirs(os.path.join(d, "sub"))
            for rel in ("a.txt", "sub/b.txt"):
                with open(os.path.join(d, rel), "w") as fh:
                    fh.write(rel)
            mlflow.log_artifacts(d, artifact_path="plots")
        mlflow.log_dict({"threshold": 0.5}, "config/params.json")

        # An MLflow 3 logged model.
        info = mlflow.pyfunc.log_model(name="echo", python_model=Echo())
        check(info.model_id.startswith("m-"), f"model id: {info.model_id}")

    run_id = parent.info.run_id
    run = client.get_run(run_id)
    check(run.info.status == "FINISHED" and run.info.end_time, f"status: {run.info}")
    check(run.info.run_name == "parent", "run name")
    check(run.data.params == {"model": "forest", "depth": "5", "trees": "100", "batch_param": "yes"}, f"params: {run.data.params}")
    check(run.data.metrics["loss"] == 0.1, f"latest loss: {run.data.metrics}")
    check(run.data.metrics["accuracy"] == 0.91 and run.data.metrics["batch_metric"] == 49.0, "metrics")
    check(run.data.tags["stage"] == "dev" and run.data.tags["owner"] == "ana" and run.data.tags["batch_tag"] == "ok", "tags")
    check("temp" not in run.data.tags, "deleted tag is gone")
    inputs = run.inputs.dataset_inputs
    check(len(inputs) == 1 and inputs[0].dataset.name == "tiny", f"dataset inputs: {inputs}")
    check(any(t.key == "mlflow.data.context" and t.value == "training" for t in inputs[0].tags), "input context")

    history = client.get_metric_history(run_id, "loss")
    check([m.step for m in history] == list(range(10)), f"history steps: {[m.step for m in history]}")
    check(abs(history[3].value - 0.25) < 1e-12, "history value")

    # Nested runs and search.
    for cid in children:
        check(client.get_run(cid).data.tags.get("mlflow.parentRunId") == run_id, "parent tag")
    found = mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string="metrics.val_acc > 0.55 and params.lr != '0.3'",
        order_by=["metrics.val_acc DESC"],
        output_format="list",
    )
    check([r.data.params["lr"] for r in found] == ["0.1"], f"filtered search: {[r.data.params for r in found]}")
    ordered = client.search_runs([exp.experiment_id], "tags.mlflow.parentRunId = '%s'" % run_id, order_by=["metrics.val_acc ASC"])
    check([r.data.params["lr"] for r in ordered] == ["0.01", "0.1", "0.3"], "ordered search")
    try:
        client.search_runs([exp.experiment_id], "metrics.val_acc > 1 OR params.lr = '1'")
        raise AssertionError("OR must be refused")
    except MlflowException as e:
        check(e.error_code == "INVALID_PARAMETER_VALUE", f"bad filter code {e.error_code}")

    # Paging.
    page1 = client.search_runs([exp.experiment_id], max_results=2, order_by=["attributes.start_time ASC"])
    check(len(page1) == 2 and page1.token, "first page")
    page2 = client.search_runs([exp.experiment_id], max_results=2, order_by=["attributes.start_time ASC"], page_token=page1.token)
    check(len(page2) == 2 and not page2.token, f"second page: {len(page2)} {page2.token}")
    all_ids = {r.info.run_id for r in page1} | {r.info.run_id for r in page2}
    check(all_ids == set(children) | {run_id}, "pages cover every run once")

    # Artifacts: list and download.
    top = {f.path: f.is_dir for f in client.list_artifacts(run_id)}
    check(top.get("notes.txt") is False and top.get("plots") is True and top.get("config") is True, f"artifacts: {top}")
    nested = sorted(f.path for f in client.list_artifacts(run_id, "plots"))
    check(nested == ["plots/a.txt", "plots/sub"], f"nested list: {nested}")
    with tempfile.TemporaryDirectory() as out:
        local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="plots", dst_path=out)
        with open(os.path.join(local, "sub", "b.txt")) as fh:
            check(fh.read() == "sub/b.txt", "downloaded nested file")
        cfg = mlflow.artifacts.load_dict(f"runs:/{run_id}/config/params.json")
        check(cfg == {"threshold": 0.5}, f"log_dict round trip: {cfg}")
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/notes.txt")
        check(text == "hello cairn", "log_artifact round trip")

    # The logged model loads back and predicts.
    model = client.get_logged_model(info.model_id)
    check(model.status.to_proto() == 2 or str(model.status).endswith("READY"), f"logged model status: {model.status}")
    check(model.source_run_id == run_id, "logged model source run")
    loaded = mlflow.pyfunc.load_model(f"models:/{info.model_id}")
    import pandas as pd
    frame = pd.DataFrame({"a": [1, 2]})
    check(loaded.predict(frame).equals(frame), "pyfunc model predicts")
    loaded_by_run = mlflow.pyfunc.load_model(f"runs:/{run_id}/echo") if False else None  # MLflow 3 stores models outside run artifacts
    searched = client.search_logged_models(experiment_ids=[exp.experiment_id], filter_string="name = 'echo'")
    check([m.model_id for m in searched] == [info.model_id], "search_logged_models")

    # Delete and restore.
    client.delete_run(children[0])
    check(client.get_run(children[0]).info.lifecycle_stage == "deleted", "deleted")
    active = client.search_runs([exp.experiment_id])
    check(children[0] not in {r.info.run_id for r in active}, "deleted run hidden")
    client.restore_run(children[0])
    check(client.get_run(children[0]).info.lifecycle_stage == "active", "restored")
    try:
        client.get_run("0" * 32)
        raise AssertionError("missing run must fail")
    except MlflowException as e:
        check(e.error_code == "RESOURCE_DOES_NOT_EXIST", "missing run code")

    registry_flow(client, run_id, info)
    print(json.dumps({"ok": True, "experiment_id": exp.experiment_id, "run_id": run_id}))


def registry_flow(client, run_id, info):
    """Register twice, aliases, stages, search, load by alias, concurrent registrations."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    warnings.filterwarnings("ignore")
    name = f"echo-model-{time.time_ns()}"
    mv1 = mlflow.register_model(info.model_uri, name)
    check(str(mv1.version) == "1" and mv1.status == "READY", f"first registration: {mv1}")
    # The server notes the version on the logged model, as mlflow server does.
    noted = json.loads(client.get_logged_model(info.model_id).tags["mlflow.modelVersions"])
    check({"name": name, "version": 1} in noted, f"mlflow.modelVersions: {noted}")
    # The logged model's files, listed and read through the server.
    listed = {a.path for a in client.list_logged_model_artifacts(info.model_id)}
    check("MLmodel" in listed and "python_model.pkl" in listed, f"logged model files: {listed}")
    with urllib.request.urlopen(
        f"{mlflow.get_tracking_uri()}/ajax-api/2.0/mlflow/logged-models/{info.model_id}"
        "/artifacts/files?artifact_file_path=MLmodel"
    ) as r:
        check(b"python_function" in r.read(), "MLmodel read through the server")
    mv2 = mlflow.register_model(f"runs:/{run_id}/echo", name)
    check(str(mv2.version) == "2", f"second registration: {mv2}")
    check(client.get_model_version(name, "2").run_id == run_id, "version run id")

    client.set_registered_model_alias(name, "champion", "1")
    check(str(client.get_model_version_by_alias(name, "champion").version) == "1", "alias set")
    client.set_registered_model_alias(name, "champion", "2")
    check(str(client.get_model_version_by_alias(name, "champion").version) == "2", "alias moved")
    check(client.get_registered_model(name).aliases == {"champion": "2"}, "aliases on the model")
    try:
        client.set_registered_model_alias(name, "latest", "1")
        raise AssertionError("reserved alias must be refused")
    except MlflowException as e:
        check(e.error_code == "INVALID_PARAMETER_VALUE", f"alias code {e.error_code}")

    client.transition_model_version_stage(name, "1", "Production")
    latest = client.get_latest_versions(name, stages=["Production"])
    check([str(v.version) for v in latest] == ["1"], f"latest production: {latest}")
    client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
    check(client.get_model_version(name, "1").current_stage == "Archived", "archived by transition")
    check(client.get_model_version(name, "2").current_stage == "Production", "promoted")

    client.set_registered_model_tag(name, "team", "vision")
    client.set_model_version_tag(name, "2", "validated", "yes")
    found = client.search_registered_models(filter_string=f"name = '{name}' AND tags.team = 'vision'")
    check([m.name for m in found] == [name], f"search models: {found}")
    versions = client.search_model_versions(f"name = '{name}'")
    check(sorted(str(v.version) for v in versions) == ["1", "2"], f"search versions: {versions}")
    check(client.get_model_version(name, "2").tags == {"validated": "yes"}, "version tag")

    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    frame = pd.DataFrame({"b": [3.5]})
    check(loaded.predict(frame).equals(frame), "load by alias predicts")
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    check(loaded.predict(frame).equals(frame), "load by version predicts")

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(lambda _: MlflowClient().create_model_version(name, info.model_uri, run_id=run_id).version, range(8)))
    check(sorted(int(v) for v in made) == list(range(3, 11)), f"concurrent registrations: {made}")

    client.delete_registered_model_alias(name, "champion")
    check(client.get_registered_model(name).aliases == {}, "alias deleted")
    client.delete_model_version(name, "3")
    renamed = f"{name}-renamed"
    client.rename_registered_model(name, renamed)
    check(str(client.get_model_version(renamed, "2").version) == "2", "versions follow a rename")
    client.delete_registered_model(renamed)
    try:
        client.get_registered_model(renamed)
        raise AssertionError("deleted model must be gone")
    except MlflowException as e:
        check(e.error_code == "RESOURCE_DOES_NOT_EXIST", "deleted model code")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report and fail loudly
        import traceback
        traceback.print_exc()
        sys.exit(1)
