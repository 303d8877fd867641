#!/usr/bin/env python3
"""12 short runs queued at once under `gantry serve`, on one engine of scripts/lab and on
three (the same machine: the figure is about placement and overhead, not CPU). Each engine
takes RUNS runs at once (default 4), so one engine runs them in three waves and three
engines in one. Prints runs per minute of each and the ratio, three rounds each,
alternating, medians last. No assertions: machines differ.

Usage: benches/engine_pool.py   (root: scripts/lab needs network namespaces)
Env: RUNS (4), ROUNDS (3), SLEEP (3, seconds each run's one stage sleeps), GANTRY
(default target/release/gantry, built if missing).
"""
import hashlib, json, os, socket, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(os.environ.get("RUNS", "4"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SLEEP = os.environ.get("SLEEP", "3")
GANTRY = os.environ.get("GANTRY", os.path.join(ROOT, "target/release/gantry"))
TOKEN = "bench-token"
N = 12


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def lab():
    sh(os.path.join(ROOT, "scripts/lab"), "up", "3")
    env = dict(l.split("=", 1) for l in sh(os.path.join(ROOT, "scripts/lab"), "env").split())
    return env["LAB_TLS"], [env[f"LAB_N{i}"] for i in (1, 2, 3)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(port, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def one_round(engines, tls, hosts):
    with tempfile.TemporaryDirectory() as d:
        repo = os.path.join(d, "app")
        os.makedirs(repo)
        sh("git", "init", "-q", "-b", "main", repo)
        with open(os.path.join(repo, "gantry.yml"), "w") as f:
            f.write(f"name: bench\nstages:\n  work:\n    image: gantry/busybox\n    commands: [\"sleep {SLEEP}\"]\n")
        sh("git", "-C", repo, "add", "-A")
        sh("git", "-C", repo, "-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "bench")
        port = free_port()
        lines = [f"users:\n  dev: {{role: developer, token_sha256: {hashlib.sha256(TOKEN.encode()).hexdigest()}}}",
                 f"server:\n  listen: \"127.0.0.1:{port}\"\n  concurrency: {{global: {N}, per_project: {N}}}",
                 f"projects:\n  app: {{repo: {repo}, pipeline: gantry.yml, branches: [main]}}", "engines:"]
        for i, host in enumerate(hosts[:engines]):
            lines.append(f"  n{i + 1}: {{host: \"{host}\", runs: {RUNS}, tls: {{ca: {tls}/ca.pem, cert: {tls}/cert.pem, key: {tls}/key.pem}}}}")
        cfg = os.path.join(d, "gantry.yml")
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        serve = subprocess.Popen([GANTRY, "--config", cfg, "--data-dir", os.path.join(d, "data"), "serve"],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "serve.log"), "w"))
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            start = time.monotonic()
            ids = [call(port, "POST", "/api/projects/app/trigger", {"force": True})["run"] for _ in range(N)]
            pending = set(ids)
            while pending:
                for run in list(pending):
                    state = call(port, "GET", f"/api/runs/{run}")["state"]
                    if state in ("succeeded", "failed", "interrupted", "cancelled"):
                        if state != "succeeded":
                            sys.exit(f"run {run} ended {state}")
                        pending.discard(run)
                time.sleep(0.2)
            return N / ((time.monotonic() - start) / 60)
        finally:
            serve.terminate()
            serve.wait()


def main():
    if not os.path.exists(GANTRY):
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
    tls, hosts = lab()
    one, three = [], []
    for r in range(ROUNDS):
        one.append(one_round(1, tls, hosts))
        three.append(one_round(3, tls, hosts))
        print(f"round {r + 1}: 1 engine {one[-1]:.1f} runs/min, 3 engines {three[-1]:.1f} runs/min, ratio {three[-1] / one[-1]:.2f}x", flush=True)
    a, b = statistics.median(one), statistics.median(three)
    print(f"median ({N} runs of `sleep {SLEEP}`, {RUNS} slots per engine): 1 engine {a:.1f} runs/min, 3 engines {b:.1f} runs/min: {b / a:.2f}x")


if __name__ == "__main__":
    main()
