"""knn trust: --exclude-self by identity, NaN/Inf never ranked, faiss errors and
saved-index metadata, and every bad input named with its own exit code."""
import json

import numpy as np
import pytest

from vecpipe.core.search.topk import topk


def jsonl(out):
    if isinstance(out, str):
        out = out.encode()
    return [json.loads(line) for line in out.splitlines()]


def error_line(res):
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert "Traceback" not in res.output
    assert "Usage:" not in res.output
    return lines[-1]


@pytest.fixture
def rand8(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 8)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    return x, path


def brute(q, x, metric):
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    if metric == "euclidean":
        return -np.sqrt(((q[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return q @ x.T


# ---------------------------------------------------------------- 1. --exclude-self


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_exclude_self_random_vectors_by_identity(invoke, rand8, metric):
    x, path = rand8
    res = invoke("knn", "--index", path, "--queries", path, "--exclude-self", "--metric", metric, "-k", "3")
    assert res.exit_code == 0, res.output
    recs = jsonl(res.stdout_bytes)
    assert len(recs) == 20
    s = brute(x.astype(np.float64), x.astype(np.float64), metric)
    np.fill_diagonal(s, -np.inf)
    for i, rec in enumerate(recs):
        ids = [h["id"] for h in rec["neighbors"]]
        assert i not in ids
        assert ids == list(np.argsort(-s[i], kind="stable")[:3])


def test_exclude_self_jsonl_queries_by_id(invoke, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((10, 8)).astype(np.float32)
    idx = tmp_path / "idx.jsonl"
    idx.write_text("".join(json.dumps({"id": f"d{i}", "vector": r.tolist()}) + "\n" for i, r in enumerate(x)))
    # queries: rows 7 and 2 of the index, slightly perturbed, carrying their ids
    q = tmp_path / "q.jsonl"
    q.write_text("".join(json.dumps({"id": f"d{i}", "vector": (x[i] + 1e-3).tolist()}) + "\n" for i in (7, 2)))
    res = invoke("knn", "--index", idx, "--queries", q, "--exclude-self", "-k", "19")
    assert res.exit_code == 0, res.output
    recs = jsonl(res.stdout_bytes)
    assert [len(r["neighbors"]) for r in recs] == [9, 9]
    assert "d7" not in [h["id"] for h in recs[0]["neighbors"]]
    assert "d2" not in [h["id"] for h in recs[1]["neighbors"]]


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_exclude_self_with_faiss(invoke, rand8, tmp_path, metric):
    pytest.importorskip("faiss")
    x, path = rand8
    saved = tmp_path / "x.faiss"
    exact = invoke("knn", "--index", path, "--queries", path, "--exclude-self", "--metric", metric, "-k", "3")
    built = invoke("knn", "--index", path, "--queries", path, "--exclude-self", "--metric", metric, "-k", "3",
                   "--faiss", "Flat", "--save-index", saved)
    assert built.exit_code == 0, built.output
    reused = invoke("knn", "--index", path, "--queries", path, "--exclude-self", "--metric", metric, "-k", "3",
                    "--faiss-index", saved)
    assert reused.exit_code == 0, reused.output
    want = [[h["id"] for h in r["neighbors"]] for r in jsonl(exact.stdout_bytes)]
    for res in (built, reused):
        got = [[h["id"] for h in r["neighbors"]] for r in jsonl(res.stdout_bytes)]
        assert got == want
        assert all(i not in ids for i, ids in enumerate(got))


# ---------------------------------------------------------------- 2. NaN / Inf


def test_topk_never_ranks_nan_ahead_of_real_scores():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 8)).astype(np.float32)
    x[[3, 4100]] = np.nan
    x[77, 2] = np.inf
    q = rng.standard_normal((6, 8)).astype(np.float32)
    for metric in ("cosine", "dot", "euclidean"):
        s, i = topk(q, x, 5, metric=metric, index_block=1024)
        assert np.isfinite(s).all()
        assert not {3, 4100, 77} & set(i.ravel().tolist())
        clean = x.copy()
        clean[[3, 4100, 77]] = 0 if metric != "euclidean" else 1e6
        ref = brute(q.astype(np.float64), np.nan_to_num(clean, posinf=0).astype(np.float64), metric)
        ref[:, [3, 4100, 77]] = -np.inf
        np.testing.assert_array_equal(i, np.argsort(-ref, axis=1, kind="stable")[:, :5])


@pytest.mark.parametrize("side", ["--index", "--queries"])
def test_nan_row_rejected_naming_file_and_row(invoke, rand8, tmp_path, side):
    x, path = rand8
    y = x.copy()
    y[3, 2] = np.nan
    bad = tmp_path / "nan.npy"
    np.save(bad, y)
    args = {"--index": bad, "--queries": path}
    args[side] = bad
    res = invoke("knn", "--index", args["--index"], "--queries", args["--queries"], "-k", "2")
    assert res.exit_code == 65, res.output
    assert str(bad) in error_line(res) and "row 3" in error_line(res) and "NaN" in error_line(res)


@pytest.mark.parametrize("bad, line", [
    ({4: [1e39] + [0.5] * 7}, 5),  # inf in float32
    ({6: [0.5] * 5, 9: ["a"] * 8}, 7),  # a short vector, then one of strings
])
def test_bad_vector_in_jsonl_index_names_its_line(invoke, rand8, tmp_path, bad, line):
    x, path = rand8
    idx = tmp_path / "idx.jsonl"
    vectors = {i: r.tolist() for i, r in enumerate(x)} | bad
    idx.write_text("".join(json.dumps({"id": i, "vector": v}) + "\n" for i, v in vectors.items()))
    res = invoke("knn", "--index", idx, "--queries", path)
    assert res.exit_code == 65, res.output
    assert f"{idx}:{line}:" in error_line(res)


def test_nan_jsonl_query_rejected_naming_line(invoke, rand8, tmp_path):
    x, path = rand8
    q = tmp_path / "q.jsonl"
    q.write_text('{"vector": [1, 2, 3, 4, 5, 6, 7, 8]}\n{"vector": [1, null, 3, 4, 5, 6, 7, 8]}\n')
    res = invoke("knn", "--index", path, "--queries", q, "-k", "2")
    assert res.exit_code == 65, res.output
    assert f"{q}:2:" in error_line(res)


# ---------------------------------------------------------------- 3. faiss


@pytest.mark.parametrize("spec, words", [("IVF1024,Flat", "400 rows"), ("Bogus", "Bogus")])
def test_faiss_bad_factory_is_usage_error(invoke, tmp_path, spec, words):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(0)
    path = tmp_path / "big.npy"
    np.save(path, rng.standard_normal((400, 8)).astype(np.float32))
    res = invoke("knn", "--index", path, "--queries", path, "--faiss", spec)
    assert res.exit_code == 64, res.output
    line = error_line(res)
    assert words in line and "internal error" not in line and "faiss/" not in line


def test_saved_faiss_index_records_its_metric(invoke, rand8, tmp_path):
    pytest.importorskip("faiss")
    x, path = rand8
    saved = tmp_path / "x.faiss"
    res = invoke("knn", "--index", path, "--queries", path, "--faiss", "Flat", "--metric", "dot", "--save-index", saved)
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "x.faiss.meta.json").read_text())
    assert (meta["metric"], meta["dim"], meta["rows"]) == ("dot", 8, 20)
    res = invoke("knn", "--index", path, "--queries", path, "--faiss-index", saved, "--metric", "cosine")
    assert res.exit_code == 64, res.output
    assert "dot" in error_line(res) and "cosine" in error_line(res)
    # without --metric, the saved metric is used: the answer is the dot-product one
    res = invoke("knn", "--index", path, "--queries", path, "--faiss-index", saved, "-k", "3")
    assert res.exit_code == 0, res.output
    got = [[h["id"] for h in r["neighbors"]] for r in jsonl(res.stdout_bytes)]
    assert got == np.argsort(-(x.astype(np.float64) @ x.T.astype(np.float64)), axis=1, kind="stable")[:, :3].tolist()


def test_saved_faiss_index_dim_mismatch(invoke, rand8, tmp_path):
    pytest.importorskip("faiss")
    x, path = rand8
    saved = tmp_path / "x.faiss"
    assert invoke("knn", "--index", path, "--queries", path, "--faiss", "Flat", "--save-index", saved).exit_code == 0
    other = tmp_path / "other.npy"
    np.save(other, np.zeros((20, 5), np.float32) + 1)
    res = invoke("knn", "--index", other, "--queries", other, "--faiss-index", saved)
    assert res.exit_code == 65, res.output
    assert str(saved) in error_line(res) and str(other) in error_line(res)


# ---------------------------------------------------------------- 4. dimensions


def test_dimension_mismatch_names_both_inputs(invoke, rand8, tmp_path):
    x, path = rand8
    idx = tmp_path / "x5.npy"
    np.save(idx, np.ones((20, 5), np.float32))
    res = invoke("knn", "--index", idx, "--queries", path)
    assert res.exit_code == 65, res.output
    line = error_line(res)
    assert str(idx) in line and str(path) in line and "8" in line and "5" in line


# ---------------------------------------------------------------- 5. missing files


@pytest.mark.parametrize("option", ["--index", "--ids", "--faiss-index"])
def test_missing_file_option_is_66(invoke, rand8, tmp_path, option):
    x, path = rand8
    missing = tmp_path / "missing.bin"
    args = {"--index": ["--index", missing], "--ids": ["--index", path, "--ids", missing],
            "--faiss-index": ["--index", path, "--faiss-index", missing]}[option]
    res = invoke("knn", *args, "--queries", path)
    assert res.exit_code == 66, res.output
    assert str(missing) in error_line(res)


# ---------------------------------------------------------------- 6. bad index files


def test_truncated_npy_index_is_65(invoke, rand8, tmp_path):
    x, path = rand8
    bad = tmp_path / "trunc.npy"
    bad.write_bytes(path.read_bytes()[:200])
    res = invoke("knn", "--index", bad, "--queries", path)
    assert res.exit_code == 65, res.output
    assert str(bad) in error_line(res)


def test_object_npy_index_is_65(invoke, rand8, tmp_path):
    x, path = rand8
    bad = tmp_path / "obj.npy"
    np.save(bad, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    res = invoke("knn", "--index", bad, "--queries", path)
    assert res.exit_code == 65, res.output
    assert str(bad) in error_line(res) and "object" in error_line(res)


def test_invalid_utf8_ids_is_65_with_line(invoke, rand8, tmp_path):
    x, path = rand8
    ids = tmp_path / "ids.txt"
    ids.write_bytes(b"a\nb\xff\n" + b"c\n" * 18)
    res = invoke("knn", "--index", path, "--ids", ids, "--queries", path)
    assert res.exit_code == 65, res.output
    assert f"{ids}:2:" in error_line(res)


@pytest.mark.parametrize("kind", ["npy", "jsonl"])
def test_fewer_ids_than_rows_is_65_naming_both_counts(invoke, rand8, tmp_path, kind):
    x, path = rand8
    idx = path
    if kind == "jsonl":
        idx = tmp_path / "idx.jsonl"
        idx.write_text("".join(json.dumps({"vector": r.tolist()}) + "\n" for r in x))
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(f"a{i}\n" for i in range(10)))
    res = invoke("knn", "--index", idx, "--ids", ids, "--queries", path)
    assert res.exit_code == 65, res.output
    line = error_line(res)
    assert "10" in line and "20" in line and str(ids) in line and str(idx) in line


def test_topk_torch_never_ranks_nan_first():
    pytest.importorskip("torch")
    from vecpipe.core.search.gpu import topk_torch

    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    x[5] = np.nan
    q = rng.standard_normal((4, 8)).astype(np.float32)
    s, i = topk_torch(q, x, 3, metric="dot", device="cpu")
    assert 5 not in i.ravel().tolist() and np.isfinite(s).all()
    x[5] = 0
    ref = q.astype(np.float64) @ x.T.astype(np.float64)
    ref[:, 5] = -np.inf
    assert i.tolist() == np.argsort(-ref, axis=1, kind="stable")[:, :3].tolist()


# ---------------------------------------------------------------- exact search through faiss


@pytest.mark.parametrize("metric", ["cosine", "dot"])
def test_faiss_engine_equals_exact_reference_with_ties_and_exclusions(metric):
    """The faiss engine gives the float64 brute-force ids, equal scores by lower
    row (copies of one row in several blocks), exclusions honoured, NaN rows never."""
    pytest.importorskip("faiss")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6000, 16)).astype(np.float32)
    x[100:140] = x[7]  # 41 equal rows: ties inside a block and across the k-th place
    x[5000:5010] = x[7]  # and in a later block
    x[9] = np.nan
    q = np.concatenate([rng.standard_normal((30, 16)).astype(np.float32), x[[7, 7, 120]]])
    exclude = [[] for _ in q]
    exclude[-3] = [7, 100, 5003]
    exclude[-1] = [120]
    ref = brute(q.astype(np.float64), np.nan_to_num(x).astype(np.float64), metric)
    ref[:, 9] = -np.inf
    ref_ex = ref.copy()
    for r, rows in enumerate(exclude):
        ref_ex[r, rows] = -np.inf
    for k in (1, 5, 60):
        for kw, want in (({}, ref), ({"exclude": exclude}, ref_ex), ({"index_block": 1000}, ref)):
            fs, fi = topk(q, x, k, metric=metric, engine="faiss", **kw)
            np.testing.assert_array_equal(fi, np.argsort(-want, axis=1, kind="stable")[:, :k])
            np.testing.assert_allclose(fs, np.sort(want, axis=1)[:, ::-1][:, :k], rtol=1e-5, atol=1e-5)
            if "exclude" in kw and k >= 5 and metric == "cosine":
                assert fi[-3, :5].tolist() == [101, 102, 103, 104, 105]


def test_knn_cli_uses_faiss_exact_search_when_installed(invoke, rand8, monkeypatch):
    pytest.importorskip("faiss")
    import vecpipe.core.search.topk as search_mod

    x, path = rand8
    calls = []
    real = search_mod._faiss_block_topk
    monkeypatch.setattr(search_mod, "_faiss_block_topk", lambda *a: calls.append(1) or real(*a))
    res = invoke("knn", "--index", path, "--queries", path, "-k", "3", "--metric", "dot")
    assert res.exit_code == 0 and calls
    want = np.argsort(-(x.astype(np.float64) @ x.T.astype(np.float64)), axis=1, kind="stable")[:, :3]
    assert [[h["id"] for h in r["neighbors"]] for r in jsonl(res.stdout_bytes)] == want.tolist()


def test_save_index_without_faiss_is_usage_error(invoke, rand8, tmp_path):
    x, path = rand8
    res = invoke("knn", "--index", path, "--queries", path, "--save-index", tmp_path / "x.faiss")
    assert res.exit_code == 64, res.output
    assert "--faiss" in error_line(res) and not (tmp_path / "x.faiss").exists()


def test_gpu_branch_searches_query_blocks_of_1024_with_their_exclusions(monkeypatch):
    """search() on a CUDA device hands torch 1024 queries at a time (the block
    of 4096 would need a 4x larger score matrix); run here with torch on the CPU."""
    pytest.importorskip("torch")
    import vecpipe.core.search.gpu as gpu
    import vecpipe.core.search.knn as nb
    from vecpipe.core.search.index import Index

    rng = np.random.default_rng(2)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    q = x[rng.integers(0, 500, 2500)]
    exclude = [[int(np.flatnonzero((x == row).all(1))[0])] for row in q]
    sizes = []
    real_topk_torch, real_on_device = gpu.topk_torch, Index.on_device
    monkeypatch.setattr(gpu, "topk_torch", lambda qq, v, k, **kw: sizes.append(len(qq)) or
                        real_topk_torch(qq, v, k, **{**kw, "device": "cpu"}))
    monkeypatch.setattr(Index, "on_device", lambda self, device, metric: real_on_device(self, "cpu", metric))
    index = Index(x, list(range(500)), "x")
    s, i = nb.search(index, q, nb.KnnOptions(k=4, metric="dot", device="cuda:0"), exclude)
    assert sizes == [1024, 1024, 452]
    ref_s, ref_i = topk(q, x, 4, metric="dot", exclude=exclude)
    np.testing.assert_array_equal(i, ref_i)


def test_analogy_input_with_invalid_utf8_is_65_naming_the_line(invoke):
    stdin = "宝玉 袭人 黛玉\n".encode() + b"\xff\xfe bad line\n"
    r = invoke("knn", "-m", "builtin:zh-classic", "--analogy", "-k", "1", input=stdin)
    assert r.exit_code == 65, r.output
    assert "<stdin>:2:" in r.output and "UTF-8" in r.output
