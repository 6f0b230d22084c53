#!/usr/bin/env python3
"""Proxied artifacts on an S3-compatible bucket: `cairn server` vs `mlflow server`, one run.

Both servers proxy artifacts (`mlflow-artifacts:`) to the same S3-compatible server (moto's, on
loopback, started here) under their own prefixes of one bucket, each with its own default
settings otherwise (SQLite metadata in a temporary folder). The same client (Python's
http.client, streaming the file from disk in 1 MiB blocks, reading answers in 1 MiB blocks)
uploads a file with `PUT /api/2.0/mlflow-artifacts/artifacts/...` and downloads it with `GET`,
--repeat times each; the median wall time gives MB/s and the Cairn/MLflow ratio.

Then memory: a --big-gib file (2 GiB by default) goes up and comes back down through Cairn
while its resident memory is sampled every 50 ms; the largest rise above the resting value is
reported (target: at most 64 MiB, flat in the file's size).

Usage (after `python3 -m venv .venv && .venv/bin/pip install -r tests/interop/requirements.txt`):
  .venv/bin/python bench/artifacts/run.py [--mib 256] [--repeat 3] [--big-gib 2]
"""
import argparse
import hashlib
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from common import free_port, wait_healthy  # noqa: E402
VENV_BIN = os.path.dirname(sys.executable)

parser = argparse.ArgumentParser()
parser.add_argument("--mib", type=int, default=256, help="size of the timed file")
parser.add_argument("--repeat", type=int, default=3)
parser.add_argument("--big-gib", type=float, default=2.0, help="size of the memory-test file")
parser.add_argument("--cairn", help="a built cairn binary (default: build target/release/cairn)")
parser.add_argument("--s3s-fs", help="use this s3s-fs binary (`cargo install s3s-fs@0.14.1 --features binary`, "
                    "an S3 server in Rust on a local folder) as the bucket instead of moto's")
args = parser.parse_args()

BLOCK = 1 << 20


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def make_file(path, size):
    block = os.urandom(BLOCK)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, BLOCK)
            f.write(block[:n])
            left -= n


def upload(port, key, path):
    size = os.path.getsize(path)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=BLOCK)
    with open(path, "rb") as f:
        conn.request("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{key}", body=f,
                     headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        r.read()
    conn.close()
    assert r.status == 200, (port, r.status)


def download(port, key):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", f"/api/2.0/mlflow-artifacts/artifacts/{key}")
    r = conn.getresponse()
    assert r.status == 200, (port, r.status)
    digest, total = hashlib.blake2b(digest_size=16), 0
    while True:
        chunk = r.read(BLOCK)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
    conn.close()
    return total, digest.hexdigest()


def file_digest(path):
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main():
    cairn = args.cairn
    if not cairn:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn"], cwd=ROOT, check=True)
        cairn = os.path.join(ROOT, "target", "release", "cairn")
    work = tempfile.mkdtemp(prefix="cairn-bench-artifacts-")
    moto_port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}",
               MLFLOW_S3_ENDPOINT_URL=f"http://127.0.0.1:{moto_port}")
    procs = []
    try:
        if args.s3s_fs:
            os.makedirs(os.path.join(work, "s3s"))
            moto = subprocess.Popen([args.s3s_fs, "--host", "127.0.0.1", "--port", str(moto_port),
                                     "--access-key", "bench", "--secret-key", "bench", os.path.join(work, "s3s")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        else:
            moto = subprocess.Popen([os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        procs.append(moto)
        import boto3
        for _ in range(100):
            try:
                boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                             aws_access_key_id="bench", aws_secret_access_key="bench").create_bucket(Bucket="bench")
                break
            except Exception:
                time.sleep(0.2)
        cairn_port, mlflow_port = free_port(), free_port()
        c = subprocess.Popen([cairn, "server", "--port", str(cairn_port), "--artifacts-destination", "s3://bench/cairn"],
                             env=dict(env, CAIRN_HOME=os.path.join(work, "cairn"), CAIRN_LOG="warn"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(c)
        m = subprocess.Popen([os.path.join(VENV_BIN, "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                              "--backend-store-uri", f"sqlite:///{work}/mlflow.db",
                              "--artifacts-destination", "s3://bench/mlflow"],
                             env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(m)
        wait_healthy(f"http://127.0.0.1:{cairn_port}", c)
        wait_healthy(f"http://127.0.0.1:{mlflow_port}", m)

        size = args.mib << 20
        path = os.path.join(work, "file.bin")
        make_file(path, size)
        want = file_digest(path)
        results = {}
        for name, port in (("cairn", cairn_port), ("mlflow", mlflow_port)):
            ups, downs = [], []
            for i in range(args.repeat):
                # s3s-fs keeps keys as files and answers 500 to a HEAD of a key that is a folder
                # on its disk (S3 answers 404), which Cairn's check that no ancestor of a new
                # key is a file runs into: with it, keys sit at the top of the destination.
                key = f"{name}-{i}.bin" if args.s3s_fs else f"bench/{name}-{i}.bin"
                ups.append(timed(lambda: upload(port, key, path)))
                got = {}
                downs.append(timed(lambda: got.update(r=download(port, key))))
                assert got["r"] == (size, want), f"{name}: the download differs"
            results[name] = (statistics.median(ups), statistics.median(downs))
        # The ceiling: the same file straight into moto with boto3 (multipart, 10 threads), no proxy.
        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        direct = statistics.median(timed(lambda: s3.upload_file(path, "bench", f"direct/{i}.bin")) for i in range(args.repeat))
        mb = size / 1e6
        bucket = "s3s-fs" if args.s3s_fs else "moto"
        print(f"{args.mib} MiB file, median of {args.repeat}, through each server's proxy to {bucket}'s S3 on loopback")
        print(f"({bucket}'s own ingest, boto3 straight to the bucket: {mb / direct:.1f} MB/s upload)")
        print(f"{'':10} {'upload MB/s':>12} {'download MB/s':>14}")
        for name in ("cairn", "mlflow"):
            up, down = results[name]
            print(f"{name:10} {mb / up:12.1f} {mb / down:14.1f}")
        (cu, cd), (mu, md) = results["cairn"], results["mlflow"]
        print(f"{'ratio':10} {mu / cu:11.2f}x {md / cd:13.2f}x")

        big = int(args.big_gib * (1 << 30))
        big_path = os.path.join(work, "big.bin")
        big_key = "big.bin" if args.s3s_fs else "bench/big.bin"
        make_file(big_path, big)
        os.remove(path)
        time.sleep(1)
        rest = rss_kib(c.pid)
        peak = [rest]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(c.pid))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        up = timed(lambda: upload(cairn_port, big_key, big_path))
        got = {}
        down = timed(lambda: got.update(r=download(cairn_port, big_key)))
        stop.set()
        sampler.join()
        assert got["r"] == (big, file_digest(big_path)), "the big download differs"
        print(f"{args.big_gib:g} GiB through Cairn: upload {big / 1e6 / up:.1f} MB/s, download {big / 1e6 / down:.1f} MB/s; "
              f"RSS at rest {rest / 1024:.1f} MiB, peak {peak[0] / 1024:.1f} MiB, rise {(peak[0] - rest) / 1024:.1f} MiB (target <= 64 MiB)")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run(["rm", "-rf", work])


main()
