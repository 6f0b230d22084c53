#!/usr/bin/env python3
"""`cairn data` versus `dvc` on the same machine, the same data, in one run.

Cases (issue 4):
  (a) one 2 GiB file           -- add, re-add after it changed, status; and `cat FILE > /dev/null`
  (b) 100,000 small files, ~1 GiB in all -- add, re-add after one file changed, status

Both tools start from an empty cache/store, each in its own project folder holding an identical
copy of the data (DVC's `add` replaces the workspace file with a copy from its cache, which
would spoil the other tool's stat cache if they shared files), with the page cache warm (every
file is read once before timing) and `sync` run before every timed step, so neither tool pays
for the other's dirty pages. DVC runs as installed from
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


WARM = []  # the files every timed step finds in the page cache
REPEAT = 3


PREFAULT = {"gib": 0, "dir": "/tmp"}


def settle():
    """The same machine state before every timed step: dirty pages written back and the step's
    inputs read (so they are in the page cache). With --prefault-gib N, first N GiB are written
    to a scratch file and deleted: on a VM, writing into guest memory the host has not backed
    recently costs several times more (host page faults), which otherwise falls on whichever
    tool writes first after a quiet spell; the same for both tools."""
    if PREFAULT["gib"]:
        scratch = os.path.join(PREFAULT["dir"], "prefault.bin")
        subprocess.run(["dd", "if=/dev/zero", f"of={scratch}", "bs=16M",
                        f"count={PREFAULT['gib'] * 64}", "status=none"], check=True)
        os.remove(scratch)
    subprocess.run(["sync"], check=True)
    for path in WARM:
        warm(path)


def timed(cmd, cwd, env=None, quiet=True):
    settle()
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


def projects(workdir, name, dvc, env):
    """Two empty project folders: one for Cairn, one for DVC."""
    cairn_proj = os.path.join(workdir, f"{name}-cairn")
    dvc_proj = os.path.join(workdir, f"{name}-dvc")
    for p in (cairn_proj, dvc_proj):
        shutil.rmtree(p, ignore_errors=True)
        os.makedirs(p)
    os.makedirs(os.path.join(cairn_proj, ".cairn"))
    timed([dvc, "init", "--no-scm", "-q"], dvc_proj, env)
    return cairn_proj, dvc_proj


def copy_into(src_proj, dst_proj, target):
    subprocess.run(["cp", "-a", os.path.join(src_proj, target), dst_proj], check=True)


def run_case(label, projects, target, change, cairn, dvc, env, cairn_env, extra=None):
    """`projects`: (cairn's folder, dvc's folder), each with its own copy of `target`."""
    cp, dp = projects
    print(f"\n== {label}", flush=True)
    WARM[:] = [os.path.join(p, target) for p in projects]
    rows = []
    if extra:
        rows.append(extra())
    # First adds vary with the VM (writing into memory the guest has not used lately is slow),
    # so each tool adds into an empty store REPEAT times, alternating, and the best counts.
    cs, ds = [], []
    for _ in range(REPEAT):
        shutil.rmtree(cairn_env["CAIRN_HOME"], ignore_errors=True)
        cs.append(timed([cairn, "data", "add", target], cp, cairn_env))
        shutil.rmtree(os.path.join(dp, ".dvc", "cache"), ignore_errors=True)
        shutil.rmtree(os.path.join(dp, ".dvc", "tmp"), ignore_errors=True)
        for leftover in (f"{target}.dvc", ".gitignore"):
            if os.path.exists(os.path.join(dp, leftover)):
                os.remove(os.path.join(dp, leftover))
        ds.append(timed([dvc, "add", "-q", target], dp, env))
    print(f"  add runs: cairn {['%.3f' % c for c in cs]}  dvc {['%.3f' % d for d in ds]}")
    rows.append(("add (best of %d)" % REPEAT, min(cs), min(ds)))
    for p in projects:
        change(p)
    time.sleep(1)
    c = timed([cairn, "data", "add", target], cp, cairn_env)
    d = timed([dvc, "add", "-q", target], dp, env)
    rows.append(("re-add after a change", c, d))
    c = timed([cairn, "data", "status"], cp, cairn_env)
    d = timed([dvc, "status"], dp, env)
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
    ap.add_argument("--repeat", type=int, default=3, help="first adds per tool (best counts)")
    ap.add_argument("--prefault-gib", type=int, default=0,
                    help="write and delete this many GiB before each step (VM memory; see settle)")
    args = ap.parse_args()
    global REPEAT
    REPEAT = args.repeat
    PREFAULT.update(gib=args.prefault_gib, dir=args.dir)
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
        pair = projects(args.dir, "big", args.dvc, env)
        print(f"writing {args.big_gib} GiB (twice) ...", flush=True)
        make_big(os.path.join(pair[0], "big.bin"), args.big_gib)
        copy_into(pair[0], pair[1], "big.bin")

        def cat():
            # The floor: reading the file once, as `cat FILE > /dev/null` does.
            runs = [timed(["sh", "-c", "cat big.bin > /dev/null"], pair[0]) for _ in range(5)]
            print(f"  cat runs: {['%.3f' % r for r in runs]}")
            cp = min(timed(["sh", "-c", "cp big.bin copy.bin && rm copy.bin"], pair[0]) for _ in range(3))
            print(f"  cp big.bin copy.bin (the copy any store makes): {cp:.3f} s")
            return ("cat big.bin > /dev/null", min(runs), None)

        def change_big(proj):
            with open(os.path.join(proj, "big.bin"), "r+b") as f:
                f.seek(12345)
                f.write(b"changed!")

        rows = run_case(f"(a) one {args.big_gib} GiB file", pair, "big.bin", change_big,
                        args.cairn, args.dvc, env, cairn_env, extra=cat)
        cat_s = rows[0][1]
        add_s = rows[1][1]
        print(f"  cairn add / cat = {add_s / cat_s:.2f}x")
        os.remove(os.path.join(home, "data", "statcache"))
        hashed = timed([args.cairn, "data", "status"], pair[0], cairn_env)
        print(f"  cairn status with no stat cache (hashes 2 GiB): {hashed:.3f} s = {hashed / cat_s:.2f}x cat")
        for p in pair:
            shutil.rmtree(p, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)

    if args.only in (None, "small"):
        home = os.path.join(args.dir, "home-small")
        shutil.rmtree(home, ignore_errors=True)
        cairn_env = dict(env, CAIRN_HOME=home)
        pair = projects(args.dir, "small", args.dvc, env)
        total = args.small_files * args.small_size
        print(f"writing {args.small_files} files, {total / 2**30:.2f} GiB (twice) ...", flush=True)
        make_small(os.path.join(pair[0], "data"), args.small_files, args.small_size)
        copy_into(pair[0], pair[1], "data")
        # Files just written are younger than the stat caches' racy window; let them age.
        time.sleep(1)

        def change_one(proj):
            with open(os.path.join(proj, "data", "shard-07", "row-000007.bin"), "r+b") as f:
                f.write(b"changed!")

        run_case(f"(b) {args.small_files} files", pair, "data", change_one,
                 args.cairn, args.dvc, env, cairn_env)
        for p in pair:
            shutil.rmtree(p, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
