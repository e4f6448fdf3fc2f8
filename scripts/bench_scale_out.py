#!/usr/bin/env python3
"""Measures fovea scaled out on PostgreSQL + S3: how long a correction made on one replica takes to change another
replica's answers, classify throughput through one and two replicas, and bulk-identify throughput with one and two
workers. Run it through scripts/bench_scale_out.sh, which builds the release binary and starts the services.

Every figure is printed with the machine it was measured on (CPU model, cores, instruction sets)."""

import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from PIL import Image

FOVEA = os.environ["FOVEA_BIN"]
PG = os.environ["FOVEA_TEST_POSTGRES"]
S3 = os.environ["FOVEA_TEST_S3"]


def cpu():
    model, flags = "?", set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and model == "?":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"]
    return f"{model}, {os.cpu_count()} cores, {'/'.join(f for f in wanted if f in flags)}"


def http(method, url, body=None, json_body=None):
    data, headers = body, {}
    if json_body is not None:
        data, headers = json.dumps(json_body).encode(), {"content-type": "application/json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read() or b"null")


def variants(photos, n, seed):
    rng = random.Random(seed)
    out = []
    for k in range(n):
        img = Image.open(os.path.join(photos, rng.choice(["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"])))
        img = img.convert("RGB")
        w, h = img.size
        cw, ch = int(w * rng.uniform(0.6, 0.9)), int(h * rng.uniform(0.6, 0.9))
        x, y = rng.randrange(w - cw), rng.randrange(h - ch)
        buf = io.BytesIO()
        img.crop((x, y, x + cw, y + ch)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


class Deployment:
    def __init__(self, root):
        self.root = root
        name = f"bench_{os.getpid()}"
        for sql in [f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"]:
            subprocess.run(["psql", PG, "-q", "-c", sql], check=True)
        self.catalog = PG.rsplit("/", 1)[0] + "/" + name
        bucket = name.replace("_", "-")
        urllib.request.urlopen(urllib.request.Request(f"{S3}/{bucket}", method="PUT"))
        self.blobs = f"s3://{bucket}/bench"
        self.env = dict(os.environ, AWS_ENDPOINT_URL=S3, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                        AWS_REGION="us-east-1", FOVEA_IDENTIFY_CHUNK="32", FOVEA_LOG="warn")
        self.children = []
        self.n = 0

    def _start(self, args):
        self.n += 1
        data = os.path.join(self.root, f"p{self.n}")
        cmd = [FOVEA, *args, "--data", data, "--catalog", self.catalog, "--blobs", self.blobs]
        return subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def replica(self):
        p = self._start(["serve", "--open", "--listen", "127.0.0.1:0", "--no-jobs"])
        for line in p.stdout:
            if line.startswith("fovea is serving "):
                threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
                self.children.append(p)
                return line.split()[3]
        raise SystemExit(f"replica did not start: {p.stderr.read()}")

    def worker(self):
        p = self._start(["worker"])
        for line in p.stderr:
            if "is waiting for jobs" in line:
                threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
                self.children.append(p)
                return p
        raise SystemExit("worker did not start")

    def stop(self):
        for p in self.children:
            p.kill()
            p.wait()


def propagation(a, b, images, rounds):
    """Label a fresh image with a new class on A; time until B's answer for the same image names it."""
    times = []
    for i in range(rounds):
        body = images[i]
        image_id = http("POST", f"{a}/api/v1/classify", body=body)["image_id"]
        cls = f"class{i:02d}"
        t0 = time.perf_counter()
        http("POST", f"{a}/api/v1/images/{image_id}/label", json_body={"class": cls})
        while [t["class"] for t in http("POST", f"{b}/api/v1/classify", body=body)["top"][:1]] != [cls]:
            if time.perf_counter() - t0 > 30:
                raise SystemExit(f"round {i}: B never answered {cls}")
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def classify_throughput(bases, bodies, clients, seconds):
    done, lock, stop = [0], threading.Lock(), time.perf_counter() + seconds

    def run(k):
        n = 0
        while time.perf_counter() < stop:
            http("POST", f"{bases[(k + n) % len(bases)]}/api/v1/classify", body=bodies[(k + n) % len(bodies)])
            n += 1
        with lock:
            done[0] += n

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0] / (time.perf_counter() - t0)


def identify_throughput(dep, base, folder, workers):
    procs = [dep.worker() for _ in range(workers)]
    t0 = time.perf_counter()
    c = http("POST", f"{base}/api/v1/collections", json_body={"folder": folder})["collection"]["id"]
    while True:
        info = http("GET", f"{base}/api/v1/collections/{c}")
        if info["total"] is not None:
            break
        time.sleep(0.05)
    took = time.perf_counter() - t0
    for p in procs:
        p.kill()
        p.wait()
        dep.children.remove(p)
    return info["processed"] / took, info


def main():
    photos = sys.argv[1]
    n_identify = int(os.environ.get("BENCH_IDENTIFY", "192"))
    print(f"machine: {cpu()}")
    with tempfile.TemporaryDirectory() as root:
        dep = Deployment(root)
        try:
            a, b = dep.replica(), dep.replica()
            ms = propagation(a, b, variants(photos, 20, 1), 20)
            print(f"correction on replica A -> B's answer: median {statistics.median(ms):.0f} ms, "
                  f"max {max(ms):.0f} ms over {len(ms)} corrections (B polls the label log every 200 ms)")
            bodies = variants(photos, 16, 2)
            one = classify_throughput([a], bodies, 8, 10)
            two = classify_throughput([a, b], bodies, 8, 10)
            print(f"classify, 8 clients: one replica {one:.1f} img/s, two replicas {two:.1f} img/s ({two / one:.2f}x)")
            for label, workers, seed in [("one worker", 1, 3), ("two workers", 2, 4)]:
                folder = os.path.join(root, f"identify{workers}")
                os.makedirs(folder)
                for k, body in enumerate(variants(photos, n_identify, seed)):
                    open(os.path.join(folder, f"{k:04d}.png"), "wb").write(body)
                rate, info = identify_throughput(dep, a, folder, workers)
                print(f"identify {n_identify} files, {label}: {rate:.1f} img/s "
                      f"(processed {info['processed']}, failed {info['failed']})")
        finally:
            dep.stop()


if __name__ == "__main__":
    main()
