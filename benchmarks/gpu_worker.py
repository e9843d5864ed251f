"""One measurement of the GPU benchmark, in its own process (gpu_bench.py runs
each task in a fresh interpreter and reads the last line, `@@RESULT {json}`).

    python benchmarks/gpu_worker.py TASK --work DIR [--device cuda] [task options]

Tasks: build (model, workloads, token counts), knn-data (index + queries),
st (SentenceTransformer.encode at a dtype over batch sizes), vecpipe (the
TransformerEncoder over variants, and the encode stream from file to npy),
knn-torch (bare torch matmul + topk), knn-vecpipe (vecpipe's knn code path).
Encode-only and search-only figures are timed after a warm-up, with the device
synchronised; `ready_s` is the time from the parent's launch of this process
until the model or index was ready (imports, load, copy to the device).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
WORKLOADS = ("short", "medium", "long")


def emit(result: dict) -> None:
    print("@@RESULT " + json.dumps(result), flush=True)


def read_texts(work: Path, name: str) -> list[str]:
    return [json.loads(line)["text"] for line in (work / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def syncer(device: str):
    import torch

    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def timed(fn, sync) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def peak_gib(device: str) -> float | None:
    import torch

    if not device.startswith("cuda"):
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


# ---------------------------------------------------------------- build


def task_build(a) -> dict:
    import numpy as np

    from bench_encode_gpu import build_model, workloads

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    shape = dict(layers=2, hidden=128, heads=2) if a.smoke else {}
    path = build_model(work, **shape)
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(path, device="cpu")
    meta = {"model": path, "shape": shape or dict(layers=12, hidden=768, heads=12), "workloads": {}}
    for name, texts in workloads(a.n).items():
        if name == "long":
            texts = texts[: a.n_long]
        with open(work / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for i, t in enumerate(texts):
                fh.write(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n")
        ids = st.tokenizer(texts, truncation=True, max_length=512)["input_ids"]
        lens = np.array([len(x) for x in ids])
        meta["workloads"][name] = {"texts": len(texts), "tokens": int(lens.sum()), "tokens_per_text": round(float(lens.mean()), 1),
                                   "max_tokens": int(lens.max()), "chars_per_text": round(float(np.mean([len(t) for t in texts])), 1)}
    (work / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def task_knn_data(a) -> dict:
    """Unit rows (cosine = dot), written fp32 and fp16; queries fp32, plus a
    small warm-up query file. Drawn on the GPU when there is one."""
    import numpy as np
    import torch

    work = Path(a.work)
    g = torch.Generator(device=a.device).manual_seed(0)
    t = time.perf_counter()
    index = torch.nn.functional.normalize(torch.randn(a.rows, a.dim, device=a.device, generator=g), dim=1)
    queries = torch.randn(a.queries, a.dim, device=a.device, generator=g)
    x = index.cpu().numpy()
    np.save(work / "index_f32.npy", x)
    np.save(work / "index_f16.npy", x.astype(np.float16))
    q = queries.cpu().numpy()
    np.save(work / "queries.npy", q)
    np.save(work / "queries_warm.npy", q[:1024])
    return {"rows": a.rows, "dim": a.dim, "queries": a.queries, "seconds": round(time.perf_counter() - t, 1)}


# ---------------------------------------------------------------- encode


def info(device: str) -> dict:
    import sentence_transformers
    import torch
    import transformers

    import vecpipe

    out = {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
           "transformers": transformers.__version__, "device": device, "vecpipe_from": vecpipe.__file__}
    if device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name()
        out["cuda"] = torch.version.cuda
    return out


def attn_impl(model) -> str | None:
    try:
        return model[0].auto_model.config._attn_implementation
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def task_st(a) -> dict:
    """SentenceTransformer.encode, model loaded fp32 then cast (model.half()),
    as a user would; best batch size per workload."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    work = Path(a.work)
    model = SentenceTransformer(json.loads((work / "meta.json").read_text())["model"], device=a.device)
    if a.dtype != "float32":
        model = model.to(getattr(torch, a.dtype))
    model.eval()
    sync = syncer(a.device)
    ready = time.time() - a.t0
    res = {"info": info(a.device), "dtype": a.dtype, "attn": attn_impl(model), "ready_s": round(ready, 2), "workloads": {}}
    for name in a.workloads.split(","):
        texts = read_texts(work, name)
        rows = {}
        sizes = [int(b) for b in a.batch_sizes.split(",")]
        model.encode(texts, batch_size=max(sizes), show_progress_bar=False)  # warm-up: one whole untimed pass
        for bs in sizes:
            def enc(t=texts, bs=bs):
                return model.encode(t, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)
            model.encode(texts[: 2 * bs], batch_size=bs, show_progress_bar=False)  # warm-up
            reset_peak(a.device)
            secs = timed(enc, sync)
            rows[str(bs)] = {"seconds": round(secs, 3), "texts_per_s": round(len(texts) / secs, 1), "peak_gib": peak_gib(a.device)}
            print(f"st {a.dtype} {name} bs{bs}: {len(texts) / secs:,.0f} texts/s", flush=True)
        best = max(rows, key=lambda b: rows[b]["texts_per_s"])
        res["workloads"][name] = {"by_batch_size": rows, "best_batch_size": int(best), **rows[best]}
        if a.save_ref:  # the reference vectors for the equality check
            np.save(work / f"ref_{name}.npy", model.encode(texts[: a.ref_n], batch_size=32, convert_to_numpy=True,
                                                            show_progress_bar=False).astype(np.float32))
    return res


def compare(work: Path, name: str, x) -> dict | None:
    """Agreement with sentence-transformers fp32 on the first rows."""
    import numpy as np

    ref_path = work / f"ref_{name}.npy"
    if not ref_path.exists():
        return None
    ref = np.load(ref_path)
    x = np.asarray(x[: len(ref)], dtype=np.float32)
    cos = (x * ref).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12)
    return {"rows": len(ref), "min_cosine": round(float(cos.min()), 6),
            "max_abs_diff": round(float(np.abs(x - ref).max()), 5),
            "max_rel_diff": round(float(np.abs(x - ref).max() / (np.abs(ref).max() + 1e-12)), 5)}


def parse_variant(spec: str) -> dict:
    """'16384/512' or '16384/512/sync' -> budget tokens, batch cap, pipeline."""
    parts = spec.split("/")
    return {"name": spec, "max_tokens": int(parts[0]), "max_batch": int(parts[1]),
            "pipeline": not (len(parts) > 2 and parts[2] == "sync")}


def task_vecpipe(a) -> dict:
    """vecpipe's TransformerEncoder: encode-only over variants (token budget,
    batch cap, pipeline on/off), then the whole encode stream (JSONL file ->
    .npy, in this process, model already loaded) with the default budget."""
    from vecpipe.core.models.batching import Budget
    from vecpipe.core.encode.pipeline import EncodeOptions, run_encode
    from vecpipe.core.models.transformer import TransformerEncoder

    work = Path(a.work)
    enc = TransformerEncoder(json.loads((work / "meta.json").read_text())["model"], device=a.device, dtype=a.dtype)
    sync = syncer(a.device)
    ready = time.time() - a.t0
    default = enc.default_budget()
    res = {"info": info(a.device), "dtype": a.dtype, "model_dtype": str(next(enc.model.parameters()).dtype),
           "attn": attn_impl(enc.model), "ready_s": round(ready, 2),
           "default_budget": {"max_tokens": default.max_tokens, "max_batch": default.max_batch}, "workloads": {}}
    variants = [parse_variant(v) for v in a.variants.split(",")]
    for name in a.workloads.split(","):
        texts = read_texts(work, name)
        out = {"variants": {}}
        enc.encode(texts)  # warm-up: one whole untimed pass (every batch shape seen once), as for the anchors
        for v in variants:
            enc.pipeline = None if v["pipeline"] else False
            vec = {}

            def run(v=v, vec=vec, texts=texts):
                vec["x"] = enc.encode(texts, budget=Budget(max_tokens=v["max_tokens"], max_batch=v["max_batch"]))
            try:
                reset_peak(a.device)
                secs = timed(run, sync)
            except Exception as exc:  # noqa: BLE001 - one variant failing must not lose the others
                out["variants"][v["name"]] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                continue
            out["variants"][v["name"]] = {"seconds": round(secs, 3), "texts_per_s": round(len(texts) / secs, 1),
                                          "peak_gib": peak_gib(a.device), "vs_st_fp32": compare(work, name, vec["x"])}
            print(f"vecpipe {a.dtype} {name} {v['name']}: {len(texts) / secs:,.0f} texts/s", flush=True)
        enc.pipeline = None
        if a.diagnose:
            out["diagnostics"] = diagnose(enc, texts, a.device, sync)
        if a.stream:
            opts = EncodeOptions(to="npy")
            dst = work / f"stream_{name}_{a.dtype}.npy"
            if dst.exists():
                dst.unlink()
            secs = timed(lambda src=str(work / f"{name}.jsonl"), dst=str(dst), opts=opts: run_encode(src, dst, enc, opts), sync)
            out["stream"] = {"seconds": round(secs, 3), "texts_per_s": round(len(texts) / secs, 1)}
            print(f"vecpipe {a.dtype} {name} stream file->npy: {len(texts) / secs:,.0f} texts/s", flush=True)
        res["workloads"][name] = out
    return res


def diagnose(enc, texts, device, sync) -> dict:
    """What bounds a workload: tokenizing alone (one thread, batches of 512, as
    the prepare thread does) and the model alone on one batch already on the
    device (the first batch of the default plan), with its FLOP rate."""
    import numpy as np
    import torch

    model = enc.model
    t = time.perf_counter()
    for s in range(0, len(texts), 512):
        enc._features(model, texts[s : s + 512], None)
    tok = time.perf_counter() - t
    budget = enc.default_budget()
    lengths = enc.token_lengths(texts)
    order = np.argsort(-lengths, kind="stable")
    size = max(1, min(budget.max_batch, budget.max_tokens // int(lengths[order[0]])))
    feats = enc._features(model, [texts[i] for i in order[:size]], None)
    feats = {k: v.to(model.device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}
    with torch.inference_mode():
        for _ in range(2):
            model(dict(feats))
        reps = 10
        secs = timed(lambda: [model(dict(feats)) for _ in range(reps)], sync) / reps
    seq = int(feats["input_ids"].shape[1])
    real = int(feats["attention_mask"].sum())
    out = {"tokenize_texts_per_s": round(len(texts) / tok, 1), "batch": size, "padded_len": seq,
           "forward_ms": round(secs * 1000, 2), "forward_texts_per_s": round(size / secs, 1)}
    try:
        cfg = model[0].auto_model.config
        per_tok = 2 * cfg.num_hidden_layers * (4 * cfg.hidden_size**2 + 2 * cfg.hidden_size * cfg.intermediate_size
                                               + 2 * seq * cfg.hidden_size)
        out["forward_tflops_on_real_tokens"] = round(per_tok * real / secs / 1e12, 1)
    except (AttributeError, IndexError, TypeError):
        pass
    print(f"diagnose: {out}", flush=True)
    return out


# ---------------------------------------------------------------- knn


def task_knn_torch(a) -> dict:
    """The bare anchor, per index file: np.load, the index on the GPU at the
    compute dtype, query blocks of 4096: matmul + topk, results kept on the
    GPU, one copy back. TF32 off (fp32 is fp32)."""
    import numpy as np
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    sync = syncer(a.device)
    q_all = np.load(Path(a.work) / "queries.npy")
    res = {"info": info(a.device), "imports_s": round(time.time() - a.t0, 2), "files": {}}
    for f in a.index.split(","):
        t = time.perf_counter()
        x = np.load(Path(a.work) / f)
        got = res["files"][Path(f).stem] = {"np_load_s": round(time.perf_counter() - t, 2), "compute": {}}
        for dtype in a.dtypes.split(","):
            dt = getattr(torch, dtype)
            t = time.perf_counter()
            index = torch.from_numpy(x).to(a.device).to(dt)
            sync()
            load = time.perf_counter() - t

            def search(qs, index=index, dt=dt):
                q = torch.nn.functional.normalize(torch.from_numpy(qs).to(a.device), dim=1).to(dt)
                vals, rows = [], []
                for s in range(0, len(q), a.block):
                    v, r = torch.topk(q[s : s + a.block] @ index.T, a.k, dim=1)
                    vals.append(v)
                    rows.append(r)
                return torch.cat(vals).float().cpu().numpy(), torch.cat(rows).cpu().numpy()
            search(q_all[:1024])  # warm-up
            reset_peak(a.device)
            out = {}
            secs = timed(lambda out=out: out.setdefault("r", search(q_all)), sync)
            got["compute"][dtype] = {"index_to_device_s": round(load, 2), "seconds": round(secs, 3),
                                     "queries_per_s": round(len(q_all) / secs, 1), "peak_gib": peak_gib(a.device)}
            np.save(Path(a.work) / f"knn_ref_{Path(f).stem}_{dtype}.npy", out["r"][1][:1000])
            print(f"torch {f} {dtype}: {len(q_all) / secs:,.0f} queries/s", flush=True)
            del index, out
            if a.device.startswith("cuda"):
                torch.cuda.empty_cache()
    return res


def task_knn_vecpipe(a) -> dict:
    """vecpipe's knn code path without click, per index file: load_index, the
    index copied to the device once (Index.on_device, during the first block),
    then (1) search-only: topk_torch over query blocks (the CLI's 1024, and
    4096); (2) run_knn over the query .npy with every record serialised as the
    CLI does (orjson), written to /dev/null."""
    import numpy as np
    import orjson

    from vecpipe.core.search.gpu import topk_torch
    from vecpipe.core.search.index import load_index
    from vecpipe.core.search.knn import KnnOptions, run_knn

    work = Path(a.work)
    sync = syncer(a.device)
    res = {"info": info(a.device), "imports_s": round(time.time() - a.t0, 2), "files": {}}
    q_all = np.load(work / "queries.npy")
    for f in a.index.split(","):
        stem = Path(f).stem
        t = time.perf_counter()
        index = load_index(str(work / f))
        opts = KnnOptions(k=a.k, device=a.device)
        list(run_knn([], str(work / "queries_warm.npy"), index, None, opts))  # copies the index, warms up
        sync()
        got = res["files"][stem] = {"query_block": opts.query_block, "load_and_first_block_s": round(time.perf_counter() - t, 2)}
        dev = index.on_device(a.device, opts.metric) if a.device.startswith(("cuda", "mps")) else index.vectors
        for block in sorted({opts.query_block, 4096}):
            out = {}

            def search(block=block, out=out, dev=dev):
                rows = []
                for s in range(0, len(q_all), block):
                    rows.append(topk_torch(q_all[s : s + block], dev, a.k, device=a.device, index_normalized=True)[1])
                out["rows"] = np.concatenate(rows)
            reset_peak(a.device)
            secs = timed(search, sync)
            row = got[f"search_only_block{block}"] = {"seconds": round(secs, 3), "queries_per_s": round(len(q_all) / secs, 1),
                                                      "peak_gib": peak_gib(a.device)}
            print(f"vecpipe {f} search-only block {block}: {len(q_all) / secs:,.0f} queries/s", flush=True)
            ref = work / f"knn_ref_{stem}_float16.npy"
            if ref.exists():
                r = np.load(ref)
                row["top1_agree_vs_torch_fp16"] = round(float((out["rows"][: len(r), 0] == r[:, 0]).mean()), 4)

        def pipeline(index=index, opts=opts):
            with open(os.devnull, "wb") as sink:
                for rec in run_knn([], str(work / "queries.npy"), index, None, opts):
                    sink.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY))
        secs = timed(pipeline, sync)
        got["pipeline"] = {"seconds": round(secs, 3), "queries_per_s": round(len(q_all) / secs, 1)}
        print(f"vecpipe {f} run_knn + JSON: {len(q_all) / secs:,.0f} queries/s", flush=True)
        del index, dev
        if a.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=["build", "knn-data", "st", "vecpipe", "knn-torch", "knn-vecpipe"])
    ap.add_argument("--work", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--t0", type=float, default=None, help="the parent's time.time() at launch")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--n-long", type=int, default=2000)
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--dtypes", default="float16,float32")
    ap.add_argument("--batch-sizes", default="32")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--variants", default="16384/512")
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--diagnose", action="store_true")
    ap.add_argument("--save-ref", action="store_true")
    ap.add_argument("--ref-n", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=20000)
    ap.add_argument("--index", default="index_f16.npy,index_f32.npy", help="comma-separated .npy files in --work")
    ap.add_argument("--block", type=int, default=4096)
    ap.add_argument("-k", type=int, default=10)
    a = ap.parse_args()
    a.t0 = a.t0 or time.time()
    task = {"build": task_build, "knn-data": task_knn_data, "st": task_st, "vecpipe": task_vecpipe,
            "knn-torch": task_knn_torch, "knn-vecpipe": task_knn_vecpipe}[a.task]
    emit(task(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
