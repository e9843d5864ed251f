"""Sharded encode (local engine) and knn over a sharded index: a folder or glob of
JSONL / .jsonl.gz / Parquet shards -> one output shard each plus manifest.json;
resume at shard granularity; the sharded search equals the single-matrix one."""
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import fake_vector

from vecpipe.core.encode.pipeline import int8_ranges, quantize


def write_shards(folder, n_shards=3, per_shard=7, *, parquet_last=False, gz_first=False, seed=0):
    """Shards of records {"id", "text", "n"}; returns every (shard name, line, record)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for s in range(n_shards):
        recs = [{"id": f"s{s}-{i}", "text": f"文本 {seed} {s} {i} " + "北京" * (i % 3), "n": i} for i in range(per_shard)]
        if parquet_last and s == n_shards - 1:
            name = f"part-{s}.parquet"
            pq.write_table(pa.Table.from_pylist(recs), folder / name)
        else:
            name = f"part-{s}.jsonl" + (".gz" if gz_first and s == 0 else "")
            data = b"".join(orjson.dumps(r) + b"\n" for r in recs)
            (folder / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        out += [(name, i + 1, r) for i, r in enumerate(recs)]
    return out


def read_vectors(path, field="vector"):
    t = pq.read_table(path)
    col = t.column(field).combine_chunks()
    return t, col.flatten().to_numpy().reshape(len(col), col.type.list_size)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_folder_of_jsonl_gz_and_parquet_shards_to_parquet(tmp_path, invoke):
    recs = write_shards(tmp_path / "in", parquet_last=True, gz_first=True)
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "part-0.parquet", "part-1.parquet", "part-2.parquet"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "vecpipe.shards" and manifest["vecpipe"] and manifest["libraries"]["pyarrow"]
    assert manifest["fingerprint"]["model"]["model"] == "fake:8"
    entries = list(manifest["shards"].values())
    assert [os.path.basename(e["input"]) for e in entries] == ["part-0.jsonl.gz", "part-1.jsonl", "part-2.parquet"]
    for s, entry in enumerate(entries):
        name = f"part-{s}.parquet"
        assert entry["outputs"] == {name: sha(out / name)}
        assert entry["rows"] == 7 and entry["skipped"] == 0 and entry["counters"]["fake_batches"] == 1
        assert entry["input_bytes"] == os.path.getsize(entry["input"])
        table, x = read_vectors(out / name)
        assert table.schema.field("vector").type == pa.list_(pa.float32(), 8)
        mine = [rec for shard, _, rec in recs if shard.startswith(f"part-{s}.")]
        assert table.column("id").to_pylist() == [rec["id"] for rec in mine]  # input order, input fields kept
        assert table.column("n").to_pylist() == [rec["n"] for rec in mine]
        assert table.column("_row").to_pylist() == list(range(1, 8))
        np.testing.assert_array_equal(x, np.stack([fake_vector(rec["text"], 8) for rec in mine]))
    assert manifest["totals"]["rows"] == 21 and manifest["totals"]["counters"]["fake_batches"] == 3


def test_glob_to_npy_and_ids(tmp_path, invoke):
    write_shards(tmp_path / "in", n_shards=2)
    (tmp_path / "in" / "notes.txt").write_text("not a shard\n")
    r = invoke("encode", "-m", "fake:8", str(tmp_path / "in" / "part-*.jsonl"), "-o", tmp_path / "out", "--to", "npy",
               "--window", "3", "--precision", "float16")
    assert r.exit_code == 0, r.stderr
    x = np.load(tmp_path / "out" / "part-1.npy")
    assert x.dtype == np.float16 and x.shape == (7, 8)
    np.testing.assert_array_equal(x, np.stack([fake_vector(f"文本 0 1 {i} " + "北京" * (i % 3), 8) for i in range(7)]).astype(np.float16))
    ids = [orjson.loads(line) for line in (tmp_path / "out" / "part-1.ids.jsonl").read_bytes().splitlines()]
    assert ids[2] == {"id": "s1-2", "_row": 3}
    entry = list(json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"].values())[1]
    assert set(entry["outputs"]) == {"part-1.npy", "part-1.ids.jsonl"}
    assert entry["counters"]["fake_batches"] == 3  # windows of 3: 3 + 3 + 1


def test_bad_record_names_its_shard_and_line_and_skip_counts_it(tmp_path, invoke):
    write_shards(tmp_path / "in")
    bad = tmp_path / "in" / "part-1.jsonl"
    lines = bad.read_bytes().splitlines(keepends=True)
    lines[2] = b'{"id": "broken", "text": \n'
    lines[4] = b'{"id": "no-text"}\n'
    bad.write_bytes(b"".join(lines))
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "out")
    assert r.exit_code == 65
    assert f"{bad}:3: invalid JSON" in r.stderr
    assert not (tmp_path / "out" / "part-1.parquet").exists()
    assert not list((tmp_path / "out").glob(".*tmp"))
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "out2", "--on-error", "skip")
    assert r.exit_code == 0, r.stderr
    manifest = json.loads((tmp_path / "out2" / "manifest.json").read_text())
    entry = manifest["shards"][str(bad)]
    assert entry["skipped"] == 2 and entry["rows"] == 5 and manifest["totals"]["skipped"] == 2
    table, _ = read_vectors(tmp_path / "out2" / "part-1.parquet")
    assert table.column("_row").to_pylist() == [1, 2, 4, 6, 7]  # the gaps name the skipped input lines


def test_int8_ranges_are_fixed_before_and_shared_by_every_shard(tmp_path, invoke):
    write_shards(tmp_path / "in")
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "out", "--precision", "int8", "--window", "4")
    assert r.exit_code == 0, r.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    first = np.stack([fake_vector(f"文本 0 0 {i} " + "北京" * (i % 3), 8) for i in range(4)])
    ranges = int8_ranges(first)  # the first window of the first shard
    np.testing.assert_array_equal(np.asarray(manifest["ranges"], np.float32), ranges)
    for s in range(3):
        _, q = read_vectors(tmp_path / "out" / f"part-{s}.parquet")
        ref = quantize(np.stack([fake_vector(f"文本 0 {s} {i} " + "北京" * (i % 3), 8) for i in range(7)]), "int8", ranges)
        np.testing.assert_array_equal(q, ref)


def test_resume_skips_done_shards_and_redoes_a_changed_or_missing_one(tmp_path, invoke):
    write_shards(tmp_path / "in", n_shards=4)
    out = tmp_path / "out"
    assert invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    stamp = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    (out / "part-1.parquet").write_bytes(b"damaged")
    (out / "part-3.parquet").unlink()
    r = invoke("-v", "encode", "-m", "fake:8", tmp_path / "in", "-o", out, "--resume")
    assert r.exit_code == 0, r.stderr
    assert "part-1.parquet does not match its sha256" in r.stderr
    assert "2 of 4 shards done before" in r.stderr
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before
    assert (out / "part-0.parquet").stat().st_mtime_ns == stamp["part-0.parquet"]  # not rewritten
    r = invoke("encode", "-m", "fake:16", tmp_path / "in", "-o", out, "--resume")
    assert r.exit_code == 64 and "another model or other options" in r.stderr


def test_output_folder_rules(tmp_path, invoke):
    write_shards(tmp_path / "in", n_shards=3)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("mine")
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", theirs)
    assert r.exit_code == 73 and "not a sharded output made by vecpipe" in r.stderr
    assert (theirs / "keep.txt").read_text() == "mine"
    (tmp_path / "afile").write_text("x")
    assert invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "afile").exit_code == 73
    out = tmp_path / "out"
    assert invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", out).exit_code == 0
    (tmp_path / "in" / "part-2.jsonl").unlink()
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", out)  # ours: replaced, old shards gone
    assert r.exit_code == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "part-0.parquet", "part-1.parquet"]
    (out / "user.csv").write_text("a,b\n")
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", out)
    assert r.exit_code == 73 and "user.csv, which vecpipe did not write" in r.stderr
    assert invoke("encode", "-m", "fake:8", tmp_path / "nothing-here", "-o", tmp_path / "o3").exit_code == 66
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "o4", "--to", "jsonl")
    assert r.exit_code == 64


def test_missing_extras_say_how_to_install(tmp_path, invoke, monkeypatch):
    write_shards(tmp_path / "in", n_shards=1)
    monkeypatch.setitem(sys.modules, "ray", None)
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "out", "--engine", "ray")
    assert r.exit_code == 69 and "pip install 'vecpipe[ray]'" in r.stderr
    assert not (tmp_path / "out").exists()
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    r = invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "out")
    assert r.exit_code == 69 and "pip install 'vecpipe[parquet]'" in r.stderr


def test_killed_run_resumed_gives_the_same_shards_and_manifest(tmp_path):
    """kill -9 mid-way (a real process), then --resume: the same files as one clean run."""
    n = 10
    write_shards(tmp_path / "in", n_shards=n, per_shard=3000)
    clean, out = tmp_path / "clean", tmp_path / "out"
    cmd = [sys.executable, "-m", "vecpipe", "-v", "encode", "-m", "builtin:zh-classic", str(tmp_path / "in"), "--window", "1000"]
    subprocess.run(cmd + ["-o", str(clean)], check=True, capture_output=True, timeout=300)
    proc = subprocess.Popen(cmd + ["-o", str(out)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline:
        try:
            done = len(json.loads((out / "manifest.json").read_text())["shards"])
        except (OSError, ValueError):
            done = 0
        if done >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(json.loads((out / "manifest.json").read_text())["shards"])
    assert 2 <= done < n  # killed mid-way
    r = subprocess.run(cmd + ["-o", str(out), "--resume"], capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"{done} of {n} shards done before" in r.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in clean.iterdir())
    for p in clean.glob("*.parquet"):
        assert (out / p.name).read_bytes() == p.read_bytes()

    def comparable(path):
        m = json.loads(path.read_text())
        for e in m["shards"].values():
            e.pop("seconds")
        m["totals"].pop("seconds")
        return m

    assert comparable(out / "manifest.json") == comparable(clean / "manifest.json")


# ---------------------------------------------------------------- knn over a sharded index


def same_answer(got: str, want: str):
    """The same neighbours in the same order; scores equal to float32 rounding
    (a shard's matrix product is blocked differently from the whole's)."""
    got, want = [orjson.loads(x) for x in got.splitlines()], [orjson.loads(x) for x in want.splitlines()]
    assert [[h["id"] for h in r["neighbors"]] for r in got] == [[h["id"] for h in r["neighbors"]] for r in want]
    np.testing.assert_allclose([[h["score"] for h in r["neighbors"]] for r in got],
                               [[h["score"] for h in r["neighbors"]] for r in want], rtol=1e-6, atol=1e-6)


def _tied_index(tmp_path, rng):
    """4 npy shards with ids, duplicate rows across shards (exact ties), and
    the same rows as one matrix + ids file."""
    base = rng.standard_normal((60, 12)).astype(np.float32)
    x = np.concatenate([base, base[:20], rng.standard_normal((40, 12)).astype(np.float32), base[5:25]])
    ids = [f"r{i}" for i in range(len(x))]
    folder = tmp_path / "shards"
    folder.mkdir()
    cuts = [0, 37, 70, 71, len(x)]  # uneven, one shard of a single row
    for j in range(4):
        np.save(folder / f"s{j}.npy", x[cuts[j] : cuts[j + 1]])
        (folder / f"s{j}.ids.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids[cuts[j] : cuts[j + 1]]))
    np.save(tmp_path / "all.npy", x)
    (tmp_path / "all.ids").write_text("\n".join(ids) + "\n")
    return x, folder


def brute_force(x, q, k, metric, exclude_self=False):
    """Ids of the best k by float64 scores, equal scores by the lower row: the reference."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        x64 = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
    if metric == "euclidean":
        s = -np.sqrt(((q64[:, None, :] - x64[None, :, :]) ** 2).sum(-1))
    else:
        s = q64 @ x64.T
    if exclude_self:
        s[np.arange(len(q)), np.arange(len(q))] = -np.inf
    rows = np.arange(x.shape[0])
    return [[f"r{r}" for r in np.lexsort((rows, -srow))[:k]] for srow in s]


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_sharded_knn_equals_single_matrix_ties_included(tmp_path, invoke, metric):
    rng = np.random.default_rng(3)
    x, folder = _tied_index(tmp_path, rng)
    queries = np.concatenate([x[:10], rng.standard_normal((5, 12)).astype(np.float32)])
    np.save(tmp_path / "q.npy", queries)
    single = invoke("knn", "--index", tmp_path / "all.npy", "--ids", tmp_path / "all.ids", "--queries", tmp_path / "q.npy",
                    "-k", "7", "--metric", metric)
    assert single.exit_code == 0, single.stderr
    for index in (folder, str(folder / "s*.npy")):
        sharded = invoke("knn", "--index", index, "--queries", tmp_path / "q.npy", "-k", "7", "--metric", metric)
        assert sharded.exit_code == 0, sharded.stderr
        got = [orjson.loads(line)["neighbors"] for line in sharded.stdout.splitlines()]
        # the exact answer, ties by the lower row (duplicates sit in other shards)
        assert [[h["id"] for h in hits] for hits in got] == brute_force(x, queries, 7, metric)
        # the single-matrix scores, rank by rank, to float32 rounding (where the single-matrix product
        # rounds two duplicates apart, it may swap them: the sharded search recomputes scores exactly;
        # its euclidean |q|^2 - 2qx + |x|^2 leaves ~1e-3 at distance 0, the sharded one 0)
        want = [orjson.loads(line)["neighbors"] for line in single.stdout.splitlines()]
        np.testing.assert_allclose([[h["score"] for h in hits] for hits in got], [[h["score"] for h in hits] for hits in want],
                                   rtol=1e-5, atol=3e-3 if metric == "euclidean" else 1e-5)
    hits = orjson.loads(sharded.stdout.splitlines()[8])["neighbors"]
    if metric != "dot":  # row 8 is duplicated at rows 68 and 123, in two other shards
        assert [h["id"] for h in hits[:3]] == ["r8", "r68", "r123"]
        assert hits[0]["score"] == hits[1]["score"] == hits[2]["score"]
    np.save(tmp_path / "own.npy", x[:75])  # the index's own rows, across the first three shards
    ex = invoke("knn", "--index", folder, "--queries", tmp_path / "own.npy", "-k", "3", "--metric", metric, "--exclude-self")
    assert ex.exit_code == 0, ex.stderr
    assert [[h["id"] for h in orjson.loads(line)["neighbors"]] for line in ex.stdout.splitlines()] == \
        brute_force(x, x[:75], 3, metric, exclude_self=True)


def test_knn_over_encode_output_and_faiss(tmp_path, invoke):
    write_shards(tmp_path / "in", n_shards=3, per_shard=40)
    assert invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "out").exit_code == 0
    assert invoke("encode", "-m", "fake:8", tmp_path / "in", "-o", tmp_path / "outn", "--to", "npy").exit_code == 0
    x = np.concatenate([read_vectors(tmp_path / "out" / f"part-{s}.parquet")[1] for s in range(3)])
    np.save(tmp_path / "all.npy", x)
    ids = [f"s{s}-{i}" for s in range(3) for i in range(40)]
    (tmp_path / "all.ids").write_text("\n".join(ids) + "\n")
    np.save(tmp_path / "q.npy", x[::7])
    args = ["--queries", tmp_path / "q.npy", "-k", "5"]
    single = invoke("knn", "--index", tmp_path / "all.npy", "--ids", tmp_path / "all.ids", *args)
    assert single.exit_code == 0, single.stderr
    same_answer(invoke("knn", "--index", tmp_path / "out", *args).stdout, single.stdout)
    same_answer(invoke("knn", "--index", tmp_path / "outn", *args).stdout, single.stdout)
    flat = invoke("knn", "--index", tmp_path / "out", "--faiss", "Flat", *args)
    assert flat.exit_code == 0, flat.stderr
    got = [[h["id"] for h in orjson.loads(line)["neighbors"]] for line in flat.stdout.splitlines()]
    want = [[h["id"] for h in orjson.loads(line)["neighbors"]] for line in single.stdout.splitlines()]
    assert got == want
    r = invoke("knn", "--index", tmp_path / "all.npy", "--engine", "ray", *args)
    assert r.exit_code == 64 and "sharded --index" in r.stderr
    ivf = invoke("knn", "--index", tmp_path / "out", "--faiss", "IVF4,Flat", "--nprobe", "4", *args)
    assert ivf.exit_code == 0, ivf.stderr
    assert [[h["id"] for h in orjson.loads(line)["neighbors"]] for line in ivf.stdout.splitlines()] == want  # all lists probed
