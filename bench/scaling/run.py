#!/usr/bin/env python3
"""Per-replica figures for docs/scaling.md, on the team deployment: `cairn server` replicas on
one PostgreSQL database and one S3-compatible bucket (moto's, on loopback, started here).

Measures, each with one and with two replicas behind the same load generator (cairn-bench, its
clients split evenly between the replicas' URLs):
  (a) log-batch: 8 clients posting 1000-metric batches, metrics/s;
  (b) run search: 10,000 runs loaded once, then `runs/search` (filter + order, 100 results),
      median latency from one client;
  (c) OIP inference of a 20-feature logistic regression registered in the server (artifacts in
      the bucket, versions resolved through the registry on every request), 32 clients,
      req/s, with the prediction log on (into the bucket) and the bytes it wrote per second;
  (d) the lease: `INSERT ... ON CONFLICT DO UPDATE ... WHERE` as the evaluation takes it,
      latency over 2,000 calls with pgbench.

Usage (PostgreSQL reachable at --postgres, `tests/interop/requirements.txt` in .venv):
  .venv/bin/python bench/scaling/run.py [--postgres postgresql://postgres@127.0.0.1:5432/test]
      [--seconds 10]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from common import free_port, wait_healthy  # noqa: E402
VENV_BIN = os.path.dirname(sys.executable)

parser = argparse.ArgumentParser()
parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
parser.add_argument("--seconds", type=int, default=10)
parser.add_argument("--runs", type=int, default=10000)
args = parser.parse_args()


def psql(url, sql):
    subprocess.run(["psql", url, "-q", "-c", sql], check=True, stdout=subprocess.DEVNULL)


def fresh_database(admin_url, name):
    psql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    psql(admin_url, f"CREATE DATABASE {name}")
    return admin_url.rsplit("/", 1)[0] + "/" + name


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def split_bench(urls, argv_of):
    """Runs one cairn-bench per URL at once; returns their outputs."""
    procs = [subprocess.Popen(argv_of(u, len(urls)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for u in urls]
    return [p.communicate()[0] for p in procs]


def last_json(text):
    """The JSON object a cairn-bench run printed last."""
    try:
        return json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit(f"cairn-bench printed no result:\n{text}")


def number(pattern, text):
    m = re.search(pattern, text)
    if not m:
        raise SystemExit(f"no {pattern!r} in:\n{text}")
    return float(m.group(1).replace(",", ""))


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn", "-p", "cairn-bench"], cwd=ROOT, check=True)
    cairn = os.path.join(ROOT, "target", "release", "cairn")
    bench = os.path.join(ROOT, "target", "release", "cairn-bench")
    work = tempfile.mkdtemp(prefix="cairn-bench-scaling-")
    moto_port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}", CAIRN_LOG="warn")
    procs = []
    moto = subprocess.Popen([os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    procs.append(moto)
    import boto3
    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    for _ in range(100):
        try:
            s3.create_bucket(Bucket="bench")
            break
        except Exception:
            time.sleep(0.2)

    def start_replicas(n, tag, extra=()):
        db = fresh_database(args.postgres, f"cairn_scaling_{tag}")
        urls = []
        for i in range(n):
            port = free_port()
            p = subprocess.Popen([cairn, "server", "--port", str(port), "--backend-store-uri", db,
                                  "--artifacts-destination", f"s3://bench/{tag}/artifacts",
                                  "--prediction-log-destination", f"s3://bench/{tag}/monitoring", *extra],
                                 env=dict(env, CAIRN_HOME=os.path.join(work, f"{tag}-{i}")),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, p)
            urls.append(url)
        return urls, db

    def stop(urls):
        for p in list(procs[1:]):
            p.terminate()
            p.wait(timeout=30)
            procs.remove(p)

    results = {}
    try:
        for n in (1, 2):
            urls, db = start_replicas(n, f"r{n}")
            out = split_bench(urls, lambda u, k: [bench, "tracking", "--url", u, "--part", "a", "--seconds", str(args.seconds),
                                                    "--clients", str(8 // k)])
            metrics = sum(last_json(o)["log_batch"]["metrics_per_second"] for o in out)
            # ANALYZE after the load, as autovacuum would do in time: this machine's PostgreSQL
            # runs with autovacuum off, and without statistics its planner joins every run.
            out = subprocess.run([bench, "tracking", "--url", urls[0], "--part", "b", "--runs", str(args.runs),
                                  "--analyze-postgres", db],
                                 capture_output=True, text=True, check=True).stdout
            search_ms = last_json(out)["search"]["median_ms"]

            # A registered model served from the bucket.
            model = os.path.join(work, "model.onnx")
            subprocess.run([sys.executable, "-c", f"""
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from skl2onnx import to_onnx
X, y = make_classification(n_samples=500, n_features=20, random_state=0)
X = X.astype(np.float32)
open({model!r}, "wb").write(to_onnx(LogisticRegression(max_iter=500).fit(X, y), X[:1]).SerializeToString())
"""], check=True)
            run = post(urls[0], "/api/2.0/mlflow/runs/create", {"experiment_id": "0"})["run"]["info"]
            with open(model, "rb") as f:
                req = urllib.request.Request(f"{urls[0]}/api/2.0/mlflow-artifacts/artifacts/0/{run['run_id']}/artifacts/model/model.onnx",
                                             data=f.read(), method="PUT")
                urllib.request.urlopen(req).read()
            post(urls[0], "/api/2.0/mlflow/registered-models/create", {"name": "scaling"})
            post(urls[0], "/api/2.0/mlflow/model-versions/create",
                 {"name": "scaling", "source": f"runs:/{run['run_id']}/model", "run_id": run["run_id"]})
            body = os.path.join(work, "infer.json")
            with open(body, "w") as f:
                json.dump({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 20], "data": [0.1] * 20}]}, f)
            before = sum(o.get("Size", 0) for o in s3.list_objects_v2(Bucket="bench", Prefix=f"r{n}/monitoring/").get("Contents", []))
            out = split_bench(urls, lambda u, k: [bench, "post", "--url", u, "--path", "/v2/models/scaling/versions/1/infer",
                                                    "--body", body, "--clients", str(32 // k), "--seconds", str(args.seconds)])
            infer = sum(last_json(o)["requests_per_second"] for o in out)
            time.sleep(7)  # the log flushes every 5 s
            listed = s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=f"r{n}/monitoring/")
            after = sum(o["Size"] for page in listed for o in page.get("Contents", []))
            results[n] = (metrics, search_ms, infer, (after - before) / args.seconds)
            stop(urls)

        # (d) the lease statement, as the store sends it.
        db = fresh_database(args.postgres, "cairn_scaling_lease")
        psql(db, "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms BIGINT NOT NULL)")
        script = os.path.join(work, "lease.sql")
        with open(script, "w") as f:
            f.write("INSERT INTO leases (name, holder, expires_ms) VALUES ('monitoring-evaluation', 'a', "
                    "(extract(epoch from now()) * 1000)::bigint + 180000) ON CONFLICT (name) DO UPDATE SET "
                    "holder = excluded.holder, expires_ms = excluded.expires_ms WHERE leases.expires_ms <= "
                    "(extract(epoch from now()) * 1000)::bigint OR leases.holder = excluded.holder;\n")
        out = subprocess.run(["pgbench", "-n", "-f", script, "-t", "2000", db], capture_output=True, text=True, check=True).stdout
        lease_ms = number(r"latency average = ([\d.]+) ms", out)
    finally:
        for p in procs:
            p.terminate()
        subprocess.run(["rm", "-rf", work])

    print("PostgreSQL metadata, moto's S3 on loopback, everything on this machine's cores")
    print(f"{'replicas':>8} {'log-batch metrics/s':>20} {'search median ms':>17} {'infer req/s':>12} {'log bytes/s':>12}")
    for n, (m, s, i, b) in results.items():
        print(f"{n:>8} {m:>20,.0f} {s:>17.1f} {i:>12,.0f} {b:>12,.0f}")
    print(f"lease statement on PostgreSQL: {lease_ms:.3f} ms average over 2,000 calls (one per replica per evaluation)")


main()
