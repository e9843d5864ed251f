"""The GPU benchmark's harness (benchmarks/gpu_bench.py), without a GPU:
process isolation and result parsing, the time bound, and the summary."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_runner_reads_the_last_result_line_and_marks_failures_and_skips(bench, tmp_path):
    r = bench.Runner(tmp_path, budget_s=60, env={}, cwd=tmp_path)
    ok = r.run("ok", [sys.executable, "-c", "print('@@RESULT {\"x\": 1}'); print('@@RESULT {\"x\": 2}')"], cap_s=30)
    assert ok["status"] == "ok" and ok["result"] == {"x": 2}
    bad = r.run("bad", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], cap_s=30)
    assert bad["status"] == "failed" and bad["rc"] == 3 and "boom" in bad["tail"]
    slow = r.run("slow", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(30)"], cap_s=1)
    assert slow["status"] == "failed" and slow["rc"] == "timeout"
    skipped = r.run("late", [sys.executable, "-c", "pass"], cap_s=30, need_s=3600)
    assert skipped["status"] == "skipped" and "time bound" in skipped["reason"]
    log = (tmp_path / "gpu_run.log").read_text()
    assert "===== ok" in log and "boom" in log and "rc=timeout" in log


def fake_tasks():
    def st(rates):
        return {"ready_s": 10.0, "workloads": {w: {"texts_per_s": r, "best_batch_size": 256,
                                                   "by_batch_size": {"32": {"texts_per_s": r / 3}}} for w, r in rates.items()}}
    vp = {"ready_s": 8.0, "workloads": {w: {"variants": {"16384/512": {"texts_per_s": r},
                                                         "65536/2048": {"texts_per_s": r * 1.1}}} for w, r in
                                        {"short": 15000, "medium": 9000, "long": 1100}.items()}}
    knn_files = {f: {"np_load_s": 1.0, "compute": {"float16": {"index_to_device_s": 0.5, "seconds": 0.2, "queries_per_s": 100000},
                                                   "float32": {"index_to_device_s": 0.5, "seconds": 0.8, "queries_per_s": 25000}}}
                 for f in ("index_f16", "index_f32")}
    mine = {f: {"query_block": 1024, "load_and_first_block_s": 2.0, "search_only_block1024": {"queries_per_s": 95000},
                "pipeline": {"seconds": 1.0, "queries_per_s": 20000}} for f in ("index_f16", "index_f32")}
    return {
        "st_fp32": {"status": "ok", "result": st({"short": 9000, "medium": 7800, "long": 1077})},
        "st_fp16": {"status": "ok", "result": st({"short": 11000, "medium": 7000, "long": 1000})},
        "vecpipe_float16": {"status": "ok", "result": vp},
        "cli_encode_short": {"status": "ok", "wall_s": 10.0},
        "knn_torch": {"status": "ok", "result": {"imports_s": 3.0, "files": knn_files}},
        "knn_vecpipe": {"status": "ok", "result": {"imports_s": 3.0, "files": mine}},
        "cli_knn_index_f16": {"status": "ok", "wall_s": 8.0},
    }


def test_summary_ratios_bars_and_best_variant(bench):
    meta = {"workloads": {w: {"texts": 20000, "tokens_per_text": 12.0} for w in ("short", "medium", "long")},
            "knn": {"queries": 20000}}
    s = bench.summarize(fake_tasks(), meta, "16384/512")
    short = s["encode"]["short"]
    assert short["st_fp32_bs32"]["texts_per_s"] == 3000
    assert short["vecpipe_default"]["vs_st_fp32_bs32"] == 5.0 and short["vecpipe_default"]["vs_st_fp16_best"] == 1.364
    assert short["vecpipe_default"]["tokens_per_s"] == 180000
    assert short["bars_met"] == {"vs_st_fp32_bs32>=2.5": True, "vs_st_fp16_best>=1.2": True}
    assert s["encode"]["medium"]["bars_met"]["vs_st_fp16_best>=1.2"] is True  # 9000 / 7000 = 1.29
    assert s["encode"]["long"]["bars_met"]["vs_st_fp16_best>=1.2"] is False  # 1100 / 1000
    assert short["vecpipe_best"]["variant"] == "float16:65536/2048"
    assert short["whole_process"]["vecpipe_encode_cli_texts_per_s"] == 2000.0
    assert short["whole_process"]["st_fp16_best_est_texts_per_s"] == round(20000 / (10 + 20000 / 11000), 1)
    assert next(iter(s["encode_variant_scores_geomean_of_fraction_of_best"])) == "float16:65536/2048"
    k = s["knn"]["index_f16"]
    assert k["search_only_vs_torch_fp16"] == 0.95 and k["bar_met_search_only>=0.9"] is True
    assert k["run_knn_json_vs_torch_fp16"] == 0.2 and k["bar_met_run_knn_json>=0.9"] is False
    assert k["whole_process"] == {"vecpipe_knn_cli_wall_s": 8.0, "torch_fp16_est_wall_s": 4.7, "vecpipe_est_wall_s": 6.0,
                                  "cli_queries_per_s": 2500.0}
    text = bench.table(s, {"gpu": "NVIDIA H100 80GB HBM3", "torch": "2.11"})
    assert "NVIDIA H100 80GB HBM3" in text and "index_f32" in text
    json.dumps(s)  # serialisable


def test_summary_of_a_run_that_lost_everything_still_renders(bench):
    s = bench.summarize({"build": {"status": "failed"}}, {}, "16384/512")
    assert s["encode"]["short"]["vecpipe_default"]["texts_per_s"] is None
    assert s["knn"]["index_f16"]["bar_met_search_only>=0.9"] is False
    assert "short" in bench.table(s, {})
