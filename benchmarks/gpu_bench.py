"""The whole GPU benchmark in one go: every anchor and every vecpipe
measurement in its own fresh process, under one time bound, results in one JSON.

    VECPIPE_DATA=DIR python benchmarks/gpu_bench.py --out DIR [--device cuda] [--budget-s 320] [--smoke]

Encode (BERT-base shape, random weights, bert-base-chinese vocabulary; short =
LCQMC, medium = STS-B, long = CMRC2018 paragraphs): SentenceTransformer.encode
fp32 batch 32 and fp16 over batch sizes (best kept), against vecpipe's
TransformerEncoder over token-budget variants (fp16 and bf16), the encode
stream (JSONL file -> .npy) and the real `vecpipe encode` command as a whole
process. knn (1M x 768 unit rows, fp16 and fp32 .npy, 20k queries): a bare
torch matmul + topk script against vecpipe's knn code path (search-only and
with JSON output) and the real `vecpipe knn --device cuda` as a whole process.
Tasks run most important first; one that would pass the time bound is skipped
and marked so. --smoke: a tiny model and tiny sizes (for a CPU check).
Writes OUT/gpu_results.json and OUT/gpu_run.log; prints a summary table last.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "gpu_worker.py"
WORKLOADS = ("short", "medium", "long")
BARS = {"vs_st_fp32_bs32": 2.5, "vs_st_fp16_best": 1.2, "knn_vs_torch": 0.9}
PUBLISHED_H100_ST_601 = {  # texts/s, from the issue
    "short": {"fp32_bs32": 3020, "fp16_best": 11017, "fp16_best_bs": 256},
    "medium": {"fp32_bs32": 2628, "fp16_best": 7171},
    "long": {"fp32_bs32": 359, "fp16_best": 1004},
}


class Runner:
    def __init__(self, out: Path, budget_s: float, env: dict, cwd: Path):
        # cwd: not the repo root, whose vecpipe/ folder would shadow the installed package for `python -m vecpipe`
        self.out, self.env, self.cwd = out, env, cwd
        self.cap_scale = 1.0  # --smoke on a slow CPU: longer caps per task
        self.deadline = time.time() + budget_s
        self.started = time.time()
        self.log = open(out / "gpu_run.log", "a", encoding="utf-8")
        self.tasks = []

    def left(self) -> float:
        return self.deadline - time.time()

    def run(self, label: str, argv: list[str], cap_s: float, need_s: float = 0.0) -> dict:
        """Run argv in a fresh process; its last `@@RESULT` line is the result.
        Skipped when less than need_s is left; killed at min(cap_s, time left)."""
        left = self.left()
        cap_s *= self.cap_scale
        entry = {"label": label, "argv": [str(x) for x in argv]}
        if left < max(need_s, 5):
            entry.update(status="skipped", reason=f"time bound: {left:.0f} s left, needs about {need_s:.0f} s")
            self._note(entry)
            return entry
        self.log.write(f"\n===== {label} ({time.strftime('%H:%M:%S')}, {left:.0f} s left)\n$ {' '.join(entry['argv'])}\n")
        self.log.flush()
        t0 = time.time()
        try:
            proc = subprocess.run(entry["argv"], cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=min(cap_s, left), text=True, errors="replace")
            text, rc = proc.stdout, proc.returncode
        except subprocess.TimeoutExpired as exc:
            text = exc.stdout.decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            rc = "timeout"
        wall = time.time() - t0
        self.log.write(text)
        self.log.write(f"----- {label}: rc={rc} wall={wall:.1f}s\n")
        self.log.flush()
        entry.update(status="ok" if rc == 0 else "failed", rc=rc, wall_s=round(wall, 2))
        result = [line[len("@@RESULT "):] for line in text.splitlines() if line.startswith("@@RESULT ")]
        if result:
            entry["result"] = json.loads(result[-1])
        elif rc != 0:
            entry["tail"] = text[-1500:]
        self._note(entry)
        return entry

    def _note(self, entry):
        self.tasks.append(entry)
        msg = entry.get("reason") or f"rc={entry.get('rc')} wall={entry.get('wall_s')}s"
        print(f"[{time.time() - self.started:6.1f}s] {entry['label']}: {entry['status']} ({msg})", flush=True)


def worker(py, task, work, device, *extra):
    return [py, str(WORKER), task, "--work", str(work), "--device", device, "--t0", f"{time.time():.3f}", *extra]


def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def ratio(a, b):
    return round(a / b, 3) if a and b else None


def summarize(tasks: dict, meta: dict, default_variant: str) -> dict:
    enc = {}
    st32, st16 = get(tasks, "st_fp32", "result"), get(tasks, "st_fp16", "result")
    vp = {dt: get(tasks, f"vecpipe_{dt}", "result") for dt in ("float16", "bfloat16")}
    for w in WORKLOADS:
        per_tok = get(meta, "workloads", w, "tokens_per_text")
        a32 = get(st32, "workloads", w, "by_batch_size", "32", "texts_per_s")
        a16 = get(st16, "workloads", w, "texts_per_s")
        mine = get(vp["float16"], "workloads", w, "variants", default_variant, "texts_per_s")
        variants = {f"{dt}:{name}": v.get("texts_per_s") for dt, r in vp.items()
                    for name, v in (get(r, "workloads", w, "variants") or {}).items() if v.get("texts_per_s")}
        best = max(variants, key=variants.get) if variants else None
        cli = get(tasks, f"cli_encode_{w}")
        n = get(meta, "workloads", w, "texts")
        cli_rate = round(n / cli["wall_s"], 1) if cli and cli.get("status") == "ok" and n else None
        st16_whole = None
        if a16 and st16 and n:  # launch-to-ready + the best fp16 encode: what a script around ST would take
            st16_whole = round(n / (st16["ready_s"] + n / a16), 1)
        e = {
            "texts": n, "tokens_per_text": per_tok,
            "st_fp32_bs32": {"texts_per_s": a32, "tokens_per_s": round(a32 * per_tok) if a32 and per_tok else None},
            "st_fp16_best": {"texts_per_s": a16, "batch_size": get(st16, "workloads", w, "best_batch_size"),
                             "tokens_per_s": round(a16 * per_tok) if a16 and per_tok else None},
            "vecpipe_default": {"variant": f"float16:{default_variant}", "texts_per_s": mine,
                                "tokens_per_s": round(mine * per_tok) if mine and per_tok else None,
                                "vs_st_fp32_bs32": ratio(mine, a32), "vs_st_fp16_best": ratio(mine, a16),
                                "agreement_vs_st_fp32": get(vp["float16"], "workloads", w, "variants", default_variant, "vs_st_fp32")},
            "vecpipe_best": {"variant": best, "texts_per_s": variants.get(best) if best else None,
                             "vs_st_fp32_bs32": ratio(variants.get(best) if best else None, a32),
                             "vs_st_fp16_best": ratio(variants.get(best) if best else None, a16)},
            "vecpipe_stream_file_to_npy": get(vp["float16"], "workloads", w, "stream", "texts_per_s"),
            "whole_process": {"vecpipe_encode_cli_texts_per_s": cli_rate, "vecpipe_encode_cli_wall_s": get(cli, "wall_s"),
                              "st_fp16_best_est_texts_per_s": st16_whole},
            "all_variants_texts_per_s": variants,
            "diagnostics": get(vp["float16"], "workloads", w, "diagnostics"),
        }
        e["bars_met"] = {
            "vs_st_fp32_bs32>=2.5": bool(e["vecpipe_default"]["vs_st_fp32_bs32"] and e["vecpipe_default"]["vs_st_fp32_bs32"] >= 2.5),
            "vs_st_fp16_best>=1.2": bool(e["vecpipe_default"]["vs_st_fp16_best"] and e["vecpipe_default"]["vs_st_fp16_best"] >= 1.2),
        }
        enc[w] = e
    # the variant with the best geometric mean over the workloads (a default for all of them)
    names = set.intersection(*[set(enc[w]["all_variants_texts_per_s"]) for w in WORKLOADS]) if enc else set()
    scores = {}
    for name in names:
        rel = [enc[w]["all_variants_texts_per_s"][name] / max(enc[w]["all_variants_texts_per_s"].values()) for w in WORKLOADS]
        scores[name] = round(float(rel[0] * rel[1] * rel[2]) ** (1 / 3), 4)
    knn = {}
    anchor_all, mine_all = get(tasks, "knn_torch", "result"), get(tasks, "knn_vecpipe", "result")
    for f in ("index_f16", "index_f32"):
        anchor, mine = get(anchor_all, "files", f), get(mine_all, "files", f)
        cli = get(tasks, f"cli_knn_{f}")
        q = get(meta, "knn", "queries")
        t16 = get(anchor, "compute", "float16", "queries_per_s")
        block = get(mine, "query_block")
        search = get(mine, f"search_only_block{block}", "queries_per_s")
        pipe = get(mine, "pipeline", "queries_per_s")
        anchor_whole = None
        if anchor and t16:
            c = anchor["compute"]["float16"]
            anchor_whole = round(anchor_all["imports_s"] + anchor["np_load_s"] + c["index_to_device_s"] + c["seconds"], 2)
        cli_wall = get(cli, "wall_s") if get(cli, "status") == "ok" else None
        knn[f] = {
            "torch_fp16_queries_per_s": t16, "torch_fp32_queries_per_s": get(anchor, "compute", "float32", "queries_per_s"),
            "vecpipe_search_only_queries_per_s": search,
            "vecpipe_search_only_block4096_queries_per_s": get(mine, "search_only_block4096", "queries_per_s"),
            "vecpipe_run_knn_json_queries_per_s": pipe,
            "vecpipe_top1_agree_vs_torch_fp16": get(mine, f"search_only_block{block}", "top1_agree_vs_torch_fp16"),
            "search_only_vs_torch_fp16": ratio(search, t16), "run_knn_json_vs_torch_fp16": ratio(pipe, t16),
            "whole_process": {"vecpipe_knn_cli_wall_s": cli_wall, "torch_fp16_est_wall_s": anchor_whole,
                              "vecpipe_est_wall_s": round(mine_all["imports_s"] + mine["load_and_first_block_s"]
                                                          + mine["pipeline"]["seconds"], 2)
                              if mine and mine.get("pipeline") else None,
                              "cli_queries_per_s": round(q / cli_wall, 1) if q and cli_wall else None},
            "bar_met_search_only>=0.9": bool(ratio(search, t16) and ratio(search, t16) >= 0.9),
            "bar_met_run_knn_json>=0.9": bool(ratio(pipe, t16) and ratio(pipe, t16) >= 0.9),
        }
    return {"encode": enc, "encode_variant_scores_geomean_of_fraction_of_best": dict(sorted(scores.items(), key=lambda kv: -kv[1])),
            "knn": knn}


def table(summary: dict, info: dict) -> str:
    lines = [f"GPU: {info.get('gpu', info.get('device'))}; torch {info.get('torch')}, sentence-transformers "
             f"{info.get('sentence_transformers')}, transformers {info.get('transformers')}",
             f"{'encode':7s} {'ST32/bs32':>10s} {'ST16 best':>14s} {'vecpipe':>9s} {'x32':>6s} {'x16':>6s} "
             f"{'best variant':>24s} {'best':>9s} {'cli whole':>9s}"]
    for w, e in summary["encode"].items():
        v, b = e["vecpipe_default"], e["vecpipe_best"]
        lines.append(f"{w:7s} {e['st_fp32_bs32']['texts_per_s'] or 0:10.0f} {e['st_fp16_best']['texts_per_s'] or 0:9.0f}"
                     f" bs{e['st_fp16_best']['batch_size'] or 0:<4} {v['texts_per_s'] or 0:9.0f} {v['vs_st_fp32_bs32'] or 0:6.2f}"
                     f" {v['vs_st_fp16_best'] or 0:6.2f} {str(b['variant']):>24s} {b['texts_per_s'] or 0:9.0f}"
                     f" {e['whole_process']['vecpipe_encode_cli_texts_per_s'] or 0:9.0f}")
    lines.append(f"{'knn':10s} {'torch16':>9s} {'torch32':>9s} {'vp search':>10s} {'vp+json':>9s} {'x search':>8s} "
                 f"{'x json':>7s} {'cli wall':>8s}")
    for f, k in summary["knn"].items():
        lines.append(f"{f:10s} {k['torch_fp16_queries_per_s'] or 0:9.0f} {k['torch_fp32_queries_per_s'] or 0:9.0f}"
                     f" {k['vecpipe_search_only_queries_per_s'] or 0:10.0f} {k['vecpipe_run_knn_json_queries_per_s'] or 0:9.0f}"
                     f" {k['search_only_vs_torch_fp16'] or 0:8.2f} {k['run_knn_json_vs_torch_fp16'] or 0:7.2f}"
                     f" {k['whole_process']['vecpipe_knn_cli_wall_s'] or 0:8.1f}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="results folder ($OUT on the device machine)")
    ap.add_argument("--work", default=None, help="scratch folder for the model, inputs and outputs (default: a temp folder)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-s", type=float, default=320, help="time bound for the whole run")
    ap.add_argument("--smoke", action="store_true", help="tiny model and sizes (a CPU check of the plumbing)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(a.work or os.environ.get("TMPDIR", "/tmp")) / f"vecpipe-gpu-bench-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1",
               PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="true")
    if not env.get("VECPIPE_DATA"):
        sys.exit("set VECPIPE_DATA to the folder holding LCQMC, STS-B-zh, CMRC2018-retrieval and bert-base-chinese")
    py, dev = sys.executable, a.device
    if a.smoke:
        n, n_long, rows, dim, queries = 300, 40, 20000, 64, 600
        st32_bs, st16_bs = "32", "32,64"
        v16 = "16384/512,16384/512/sync,2048/64"
        v_bf16 = "16384/512"
    else:
        n, n_long, rows, dim, queries = 20000, 2000, 1_000_000, 768, 20000
        st32_bs, st16_bs = "32", "256,512,1024"
        v16 = "65536/1024,65536/1024/sync,65536/512,65536/2048,16384/512"
        v_bf16 = "16384/512,65536/2048"
    default_variant = "65536/1024"  # TransformerEncoder.default_budget on CUDA
    r = Runner(out, a.budget_s, env, work)
    r.cap_scale = 5.0 if a.smoke else 1.0
    results = {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "smoke": a.smoke, "device_arg": dev,
               "budget_s": a.budget_s, "bars": BARS, "published_st_h100": PUBLISHED_H100_ST_601,
               "sizes": {"short": n, "medium": n, "long": n_long, "knn_rows": rows, "knn_dim": dim, "knn_queries": queries},
               "variants_note": "TOKENS/BATCH[/sync]: token budget per batch / most texts per batch; sync = the "
                                "batch-by-batch path (no prepare thread, per-batch copy back)",
               "default_variant": default_variant}
    if dev.startswith("cuda"):
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            smi = f"nvidia-smi failed: {exc}"
        results["nvidia_smi"] = smi
        print(smi, flush=True)
    tasks = {}

    def save():
        results["tasks"] = tasks
        results["elapsed_s"] = round(time.time() - r.started, 1)
        meta = get(tasks, "build", "result") or {}
        if get(tasks, "knn_data", "result"):
            meta = dict(meta, knn=tasks["knn_data"]["result"])
        results["meta"] = meta
        info = next((t["result"]["info"] for t in tasks.values() if get(t, "result", "info")), {})
        results["info"] = info
        results["summary"] = summarize(tasks, meta, default_variant)
        tmp = out / "gpu_results.json.tmp"
        tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False))
        tmp.replace(out / "gpu_results.json")
        return info

    def task(key, *args, **kw):
        tasks[key] = r.run(key, *args, **kw)
        save()
        return tasks[key]

    build = task("build", worker(py, "build", work, dev, "--n", str(n), "--n-long", str(n_long), *(["--smoke"] if a.smoke else [])),
                 cap_s=120)
    if build["status"] == "ok":
        model = build["result"]["model"]
        task("st_fp32", worker(py, "st", work, dev, "--dtype", "float32", "--batch-sizes", st32_bs, "--save-ref"), cap_s=150, need_s=30)
        task("vecpipe_float16", worker(py, "vecpipe", work, dev, "--dtype", "float16", "--variants", v16, "--stream", "--diagnose"),
             cap_s=150, need_s=30)
        task("st_fp16", worker(py, "st", work, dev, "--dtype", "float16", "--batch-sizes", st16_bs), cap_s=150, need_s=30)
        for w in WORKLOADS[1:2] if os.environ.get("CLI_ONE") else WORKLOADS:
            dst = work / f"cli_{w}.npy"
            task(f"cli_encode_{w}", [py, "-m", "vecpipe", "encode", "-m", model, "--device", dev, "-o", str(dst),
                                     str(work / f"{w}.jsonl")], cap_s=90, need_s=15)
    task("knn_data", worker(py, "knn-data", work, dev, "--rows", str(rows), "--dim", str(dim), "--queries", str(queries)),
         cap_s=90, need_s=20)
    if get(tasks, "knn_data", "status") == "ok":
        files = "index_f16.npy,index_f32.npy"
        task("knn_torch", worker(py, "knn-torch", work, dev, "--index", files), cap_s=100, need_s=25)
        task("knn_vecpipe", worker(py, "knn-vecpipe", work, dev, "--index", files), cap_s=100, need_s=25)
        for f in ("index_f16", "index_f32"):
            task(f"cli_knn_{f}", [py, "-m", "vecpipe", "knn", "--index", str(work / f"{f}.npy"), "--queries",
                                  str(work / "queries.npy"), "--device", dev, "-o", str(work / f"knn_{f}.jsonl")],
                 cap_s=90, need_s=15)
    if build["status"] == "ok" and not os.environ.get("NO_BF16"):
        task("vecpipe_bfloat16", worker(py, "vecpipe", work, dev, "--dtype", "bfloat16", "--variants", v_bf16),
             cap_s=120, need_s=30)
    # the whole-process outputs agree with sentence-transformers too
    try:
        import numpy as np

        for w in WORKLOADS:
            dst, ref = work / f"cli_{w}.npy", work / f"ref_{w}.npy"
            if dst.exists() and ref.exists():
                x, y = np.load(dst)[: len(np.load(ref))], np.load(ref)
                cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12)
                results.setdefault("cli_agreement_vs_st_fp32", {})[w] = {"rows": len(y), "min_cosine": round(float(cos.min()), 6)}
    except Exception as exc:  # noqa: BLE001 - a check, never the reason to lose the results
        results["cli_agreement_error"] = repr(exc)
    info = save()
    text = table(results["summary"], info)
    (out / "gpu_summary.txt").write_text(text + "\n")
    print(text)
    failed = [k for k, t in tasks.items() if t["status"] != "ok"]
    print(f"elapsed {results['elapsed_s']} s; not ok: {', '.join(failed) or 'none'}; results in {out / 'gpu_results.json'}")
    if not a.work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
