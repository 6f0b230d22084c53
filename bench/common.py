"""Helpers the benchmark scripts share: a free loopback port, and waiting for a server."""
import socket
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, proc, timeout=120):
    """Waits until `url` answers 200 (give the health URL, or a base URL to get `/health`)."""
    target = url if "/health" in url or "/ready" in url else url + "/health"
    started = time.time()
    while time.time() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(target, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not become healthy")


def cairn_binary(given, root):
    """The cairn binary to benchmark: `given` if set, else a release build made now in `root`."""
    import os
    import subprocess
    if given:
        return os.path.abspath(given)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "cairn"], cwd=root, check=True)
    return os.path.join(root, "target", "release", "cairn")
