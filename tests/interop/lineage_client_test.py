"""The real mlflow client links a run to a Cairn dataset version by logging its digest as a
dataset input; Cairn's lineage API then follows model version -> run -> dataset version and
back. The Rust test added the dataset with `cairn data add` on the server's home."""
import json
import os
import urllib.request

import mlflow
from mlflow.data.http_dataset_source import HTTPDatasetSource
from mlflow.data.meta_dataset import MetaDataset

URI = os.environ["MLFLOW_TRACKING_URI"]


def get(path):
    with urllib.request.urlopen(URI + path) as r:
        return json.load(r)


version = get("/api/2.0/cairn/datasets/list")["dataset_versions"][0]
name, number, digest = version["name"], version["version"], version["digest"]
dataset = MetaDataset(HTTPDatasetSource(f"cairn://{name}@{number}"), name=name, digest=digest[:32])

mlflow.set_experiment("lineage-interop")
with mlflow.start_run() as run:
    mlflow.set_tag("mlflow.source.git.commit", "0123abcd")
    mlflow.log_input(dataset, context="training")
    mlflow.log_text("weights", "model/weights.txt")
client = mlflow.MlflowClient()
client.create_registered_model("lineage-model")
mv = client.create_model_version(
    "lineage-model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
)

# The client sees its input as it logged it.
inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
assert inputs[0].dataset.digest == digest[:32], inputs

forward = get(f"/api/2.0/cairn/lineage/model-version?name=lineage-model&version={mv.version}")
assert forward["run"]["run_id"] == run.info.run_id, forward
assert forward["run"]["git_commit"] == "0123abcd", forward
linked = forward["run"]["inputs"][0]
assert linked["context"] == "training", linked
assert linked["dataset_versions"][0]["digest"] == digest, linked
assert linked["dataset_versions"][0]["version"] == number, linked

back = get(f"/api/2.0/cairn/lineage/dataset?name={name}&version={number}")
assert [r["run_id"] for r in back["runs"]] == [run.info.run_id], back
assert [(m["name"], m["version"]) for m in back["model_versions"]] == [("lineage-model", mv.version)], back
print(json.dumps({"ok": True}))
