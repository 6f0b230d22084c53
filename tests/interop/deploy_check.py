"""Checks the deployment files under deploy/ offline, with the schemas of Kubernetes itself.

Run by crates/cairn/tests/deploy.rs. The Deployment and Service are validated strictly
(unknown fields refused) by kubernetes-validate against Kubernetes 1.33 and 1.37. KServe's
ServingRuntime is a custom resource without a bundled schema: its fields are checked against
KServe's v1alpha1 API (the ones Cairn uses), and its containers strictly as a Pod's containers.
Prints the server's and the runtime's container args as JSON, for the Rust side to run them.
"""

import json
import sys

import kubernetes_validate
import yaml

root = sys.argv[1]
server_docs = list(yaml.safe_load_all(open(f"{root}/deploy/kubernetes/cairn-server.yaml")))
runtime = yaml.safe_load(open(f"{root}/deploy/kserve/cairn-servingruntime.yaml"))

for version in ("1.33.0", "1.37.0"):
    for doc in server_docs:
        kubernetes_validate.validate(doc, version, strict=True)

kinds = {d["kind"]: d for d in server_docs}
assert set(kinds) == {"Deployment", "Service"}, kinds.keys()
deployment = kinds["Deployment"]
assert deployment["spec"]["replicas"] >= 2
pod = deployment["spec"]["template"]
assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
(server,) = pod["spec"]["containers"]
assert server["readinessProbe"]["httpGet"]["path"] == "/health"
assert server["livenessProbe"]["httpGet"]["path"] == "/health"
secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in server["env"] if "valueFrom" in e}
assert secrets["CAIRN_BACKEND_STORE_URI"] == "cairn-postgres", secrets
assert secrets["AWS_ACCESS_KEY_ID"] == secrets["AWS_SECRET_ACCESS_KEY"] == "cairn-s3", secrets
assert kinds["Service"]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]

# KServe's ServingRuntime (serving.kserve.io/v1alpha1).
assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1" and runtime["kind"] == "ServingRuntime"
spec = runtime["spec"]
allowed = {"supportedModelFormats", "protocolVersions", "multiModel", "containers", "annotations",
           "disabled", "grpcEndpoint", "grpcDataEndpoint", "httpDataEndpoint", "replicas",
           "storageHelper", "builtInAdapter", "nodeSelector", "affinity", "tolerations", "volumes",
           "imagePullSecrets", "labels", "workerSpec", "hostIPC"}
assert set(spec) <= allowed, set(spec) - allowed
formats = spec["supportedModelFormats"]
assert any(f["name"] == "onnx" and f.get("autoSelect") for f in formats), formats
assert set(spec["protocolVersions"]) <= {"v1", "v2", "grpc-v1", "grpc-v2"} and "v2" in spec["protocolVersions"]
(container,) = spec["containers"]
assert container["name"] == "kserve-container"
assert "/mnt/models" in container["args"]
as_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runtime"}, "spec": {"containers": spec["containers"]}}
for version in ("1.33.0", "1.37.0"):
    kubernetes_validate.validate(as_pod, version, strict=True)

print(json.dumps({"ok": True, "server_args": server["args"], "runtime_args": container["args"],
                  "runtime_ready": container["readinessProbe"]["httpGet"]["path"]}))
