#!/usr/bin/env python3
"""`cairn data` versus `dvc` on the same machine, the same data, in one run.

Cases (issue 4):
  (a) one 2 GiB file           -- add, re-add after it changed, status; and `cat FILE > /dev/null`
  (b) 100,000 small files, ~1 GiB in all -- add, re-add after one file changed, status

Both tools start from an empty cache/store, run in the same project folder on the same files,
with the page cache warm (every file is read once before timing). DVC runs as installed from
PyPI with its defaults (cache type reflink,copy: a copy on ext4, as Cairn makes), `--no-scm`.
Prints wall-clock seconds and the DVC/Cairn ratio for each step.

Usage:
  cargo build --release
  python3 -m venv /tmp/venv-dvc && /tmp/venv-dvc/bin/pip install dvc==3.67.1
  python3 bench/data/run.py --dvc /tmp/venv-dvc/bin/dvc [--dir /tmp/cairn-bench-data]
         [--big-gib 2] [--small-files 100000] [--small-size 10240]
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(cmd, cwd, env=None, quiet=True):
    started = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    took = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout.decode(errors='replace')}")
    if not quiet:
        print(out.stdout.decode(errors="replace"))
    return took


def warm(path):
    for dirpath, _, files in os.walk(path):
        for f in files:
            with open(os.path.join(dirpath, f), "rb") as fh:
                while fh.read(1 << 22):
                    pass


def make_big(path, gib):
    chunk = os.urandom(1 << 24)
    with open(path, "wb") as f:
        for i in range(gib * 64):
            # Distinct 16 MiB blocks: no block-level luck for either tool.
            f.write(i.to_bytes(8, "little") + chunk[8:])


def make_small(path, count, size):
    base = os.urandom(size)
    for i in range(count):
        d = os.path.join(path, f"shard-{i % 100:02d}")
        if i < 100:
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"row-{i:06d}.bin"), "wb") as f:
            f.write(i.to_bytes(8, "little") + base[8:])


def project(workdir, name, dvc, env):
    proj = os.path.join(workdir, name)
    shutil.rmtree(proj, ignore_errors=True)
    os.makedirs(os.path.join(proj, ".cairn"))
    timed([dvc, "init", "--no-scm", "-q"], proj, env)
    return proj


def run_case(label, proj, target, change, cairn, dvc, env, cairn_env, extra=None):
    print(f"\n== {label}", flush=True)
    warm(os.path.join(proj, target))
    rows = []
    if extra:
        rows.append(extra())
    c = timed([cairn, "data", "add", target], proj, cairn_env)
    d = timed([dvc, "add", "-q", target], proj, env)
    rows.append(("add", c, d))
    change()
    warm(os.path.join(proj, target))
    c = timed([cairn, "data", "add", target], proj, cairn_env)
    d = timed([dvc, "add", "-q", target], proj, env)
    rows.append(("re-add after a change", c, d))
    c = timed([cairn, "data", "status"], proj, cairn_env)
    d = timed([dvc, "status"], proj, env)
    rows.append(("status (nothing changed)", c, d))
    for step, c, d in rows:
        if d is None:
            print(f"  {step:<28} cairn {c:8.3f} s")
        else:
            print(f"  {step:<28} cairn {c:8.3f} s   dvc {d:8.3f} s   dvc/cairn {d / c:6.1f}x", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dvc", default=shutil.which("dvc") or "dvc")
    ap.add_argument("--cairn", default=os.path.join(ROOT, "target", "release", "cairn"))
    ap.add_argument("--dir", default="/tmp/cairn-bench-data")
    ap.add_argument("--big-gib", type=int, default=2)
    ap.add_argument("--small-files", type=int, default=100_000)
    ap.add_argument("--small-size", type=int, default=10_240)
    ap.add_argument("--only", choices=["big", "small"])
    args = ap.parse_args()
    if not os.path.exists(args.cairn):
        sys.exit(f"{args.cairn} not found: run `cargo build --release` first")
    os.makedirs(args.dir, exist_ok=True)
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    version = subprocess.run([args.dvc, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"cairn: {args.cairn}\ndvc: {version}\nCPUs: {os.cpu_count()}")

    if args.only in (None, "big"):
        home = os.path.join(args.dir, "home-big")
        shutil.rmtree(home, ignore_errors=True)
        cairn_env = dict(env, CAIRN_HOME=home)
        proj = project(args.dir, "big", args.dvc, env)
        big = os.path.join(proj, "big.bin")
        print(f"writing {args.big_gib} GiB ...", flush=True)
        make_big(big, args.big_gib)
        warm(proj)

        def cat():
            # The floor: reading the file once, as `cat FILE > /dev/null` does.
            best = min(timed(["sh", "-c", "cat big.bin > /dev/null"], proj) for _ in range(3))
            return ("cat big.bin > /dev/null", best, None)

        def change_big():
            with open(big, "r+b") as f:
                f.seek(12345)
                f.write(b"changed!")

        rows = run_case(f"(a) one {args.big_gib} GiB file", proj, "big.bin", change_big,
                        args.cairn, args.dvc, env, cairn_env, extra=cat)
        cat_s = rows[0][1]
        add_s = rows[1][1]
        print(f"  cairn add / cat = {add_s / cat_s:.2f}x")
        shutil.rmtree(proj, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)

    if args.only in (None, "small"):
        home = os.path.join(args.dir, "home-small")
        shutil.rmtree(home, ignore_errors=True)
        cairn_env = dict(env, CAIRN_HOME=home)
        proj = project(args.dir, "small", args.dvc, env)
        data = os.path.join(proj, "data")
        total = args.small_files * args.small_size
        print(f"writing {args.small_files} files, {total / 2**30:.2f} GiB ...", flush=True)
        make_small(data, args.small_files, args.small_size)
        # Files just written are younger than the stat caches' racy window; let them age.
        time.sleep(1)

        def change_one():
            with open(os.path.join(data, "shard-07", "row-000007.bin"), "r+b") as f:
                f.write(b"changed!")
            time.sleep(1)

        run_case(f"(b) {args.small_files} files", proj, "data", change_one,
                 args.cairn, args.dvc, env, cairn_env)
        shutil.rmtree(proj, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
