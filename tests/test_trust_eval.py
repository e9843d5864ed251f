"""eval and sim read the benchmarks of the field as they are published
(PAWS-X TSV with a header, BQ CSV, COS960 ratings, SQuAD/CMRC JSON), never
score the wrong columns, rank exact ties as ties, escape markdown, and answer
bad input with 65/66 and the file:line."""
import json

import numpy as np
import pytest
from scipy import stats

from vecpipe.core.eval import metrics as M
from vecpipe.core.fetch.catalog import find
from vecpipe.core.errors import DataError
from vecpipe.core.eval.report import report_table
from vecpipe.core.eval.retrieval import read_squad, run_squad_retrieval
from vecpipe.core.eval.similarity import run_similarity
from vecpipe.core.eval.sts import read_sentence_pairs
from vecpipe.core.vectors.readwrite import write_vectors
from vecpipe.core.vectors.wordvectors import WordVectors
from vecpipe.core.models.base import load_model

TOPICS = ["苹果", "香蕉", "汽车", "火车", "音乐", "电影"]


@pytest.fixture
def topics(tmp_path):
    """Six topic words on (nearly) orthogonal axes."""
    path = tmp_path / "topics.vecdir"
    write_vectors(WordVectors(TOPICS, np.eye(6, dtype=np.float32) + 0.05), path, "vecdir")
    return path


PAIRS = [
    ("苹果香蕉", "苹果", 1), ("汽车", "火车音乐", 0), ("音乐电影", "电影", 1), ("苹果", "汽车火车", 0),
    ("火车", "火车汽车", 1), ("香蕉音乐", "电影", 0), ("电影苹果", "香蕉", 0), ("汽车音乐", "汽车", 1),
]


def reference_spearman(vecdir, pairs):
    """scipy's Spearman over the cosines of the model's mean vectors, rounded as vecpipe ranks them."""
    enc = load_model(str(vecdir))
    a = enc.encode([p[0] for p in pairs]).astype(np.float64)
    b = enc.encode([p[1] for p in pairs]).astype(np.float64)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return stats.spearmanr([p[2] for p in pairs], np.round(cos, 6))[0]


# ---------------------------------------------------------------- 1. PAWS-X: a header with an id column


def test_pawsx_header_names_the_columns(invoke, topics, tmp_path):
    path = tmp_path / "test_2k.tsv"
    path.write_text("id\tsentence1\tsentence2\tlabel\n" + "".join(f"{i + 10}\t{a}\t{b}\t{y}\n"
                                                                   for i, (a, b, y) in enumerate(PAIRS)), encoding="utf-8")
    r = invoke("eval", "sts", "-m", topics, path)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["counts"]["pairs"] == len(PAIRS)
    assert res["metrics"]["spearman"] == pytest.approx(reference_spearman(topics, PAIRS), abs=1e-12)
    # the header's names, in any order
    shuffled = tmp_path / "shuffled.tsv"
    shuffled.write_text("label\tid\tsentence2\tsentence1\n" + "".join(f"{y}\t{i}\t{b}\t{a}\n"
                                                                      for i, (a, b, y) in enumerate(PAIRS)), encoding="utf-8")
    s1, s2, labels, _ = read_sentence_pairs(shuffled)
    assert (s1, s2, labels.tolist()) == ([p[0] for p in PAIRS], [p[1] for p in PAIRS], [float(p[2]) for p in PAIRS])


def test_headerless_extra_columns_need_columns(invoke, topics, tmp_path):
    path = tmp_path / "ids.tsv"
    path.write_text("".join(f"{i}\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate(PAIRS)), encoding="utf-8")
    r = invoke("eval", "sts", "-m", topics, path)
    assert r.exit_code == 65
    assert r.stderr == (f"vecpipe: error: {path}:1: 4 tab-separated fields where 3 are expected (sentence1, sentence2, "
                        "label), and no header line names them: say which columns hold them with --columns "
                        "(e.g. --columns 2,3,4)\n")
    r = invoke("eval", "sts", "-m", topics, path, "--columns", "2,3,4")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metrics"]["spearman"] == pytest.approx(reference_spearman(topics, PAIRS), abs=1e-12)
    r = invoke("eval", "sts", "-m", topics, path, "--columns", "2,3")
    assert r.exit_code == 64 and "--columns takes 3 comma-separated columns" in r.stderr
    jl = tmp_path / "p.jsonl"
    jl.write_text('{"sentence1": "苹果", "sentence2": "香蕉", "label": 1}\n', encoding="utf-8")
    r = invoke("eval", "sts", "-m", topics, jl, "--columns", "2,3,4")
    assert r.exit_code == 64 and "--columns is for tables (TSV, CSV)" in r.stderr
    # names need a header that has them
    r = invoke("eval", "sts", "-m", topics, path, "--columns", "s1,s2,y")
    assert r.exit_code == 65 and f"{path}:1: the first line is not a header with the columns s1, s2, y" in r.stderr


def test_catalog_pawsx_description_matches_the_reader(tmp_path):
    notes = find("pawsx.test").notes
    assert "header line `id<TAB>sentence1<TAB>sentence2<TAB>label`" in notes
    header = notes.split("header line `", 1)[1].split("`", 1)[0].replace("<TAB>", "\t")
    path = tmp_path / "p.tsv"
    path.write_text(header + "\n7\t甲\t乙\t1\n8\t丙\t丁\t0\n", encoding="utf-8")
    assert read_sentence_pairs(path)[:2] == (["甲", "丙"], ["乙", "丁"])
    assert "SQuAD v1 JSON" in find("cmrc2018.dev").notes and "vecpipe eval retrieval" in find("cmrc2018.dev").notes


# ---------------------------------------------------------------- 2. BQ: CSV with a BOM, a header, quoted commas


def test_bq_csv(invoke, topics, tmp_path):
    path = tmp_path / "test.csv"
    rows = ['"苹果,香蕉",苹果,1', '汽车,"火车,音乐",0', '"音乐""电影""",电影,1', '苹果,"汽车\n火车",0',
            "火车,火车汽车,1", '"香蕉,音乐",电影,0', "电影苹果,香蕉,0", '"汽车，音乐",汽车,1']
    path.write_bytes(b"\xef\xbb\xbf" + ("sentence1,sentence2,label\r\n" + "\r\n".join(rows) + "\r\n").encode())
    s1, s2, labels, bad = read_sentence_pairs(path)
    assert s1[:4] == ["苹果,香蕉", "汽车", '音乐"电影"', "苹果"]
    assert s2[:4] == ["苹果", "火车,音乐", "电影", "汽车\n火车"]
    assert labels.tolist() == [1, 0, 1, 0, 1, 0, 0, 1] and bad == 0
    r = invoke("eval", "sts", "-m", topics, path)
    assert r.exit_code == 0, r.output
    pairs = list(zip(s1, s2, labels))
    assert json.loads(r.stdout)["metrics"]["spearman"] == pytest.approx(reference_spearman(topics, pairs), abs=1e-12)
    # a bad record after a quoted line break is named by its own line
    path.write_bytes(("sentence1,sentence2,label\n" + '苹果,"汽车\n火车",0\n香蕉,电影,high\n').encode())
    with pytest.raises(DataError, match=r"test.csv:4: label is not a number: 'high'"):
        read_sentence_pairs(path)


# ---------------------------------------------------------------- 3. COS960: ratings after the mean


def test_cos960_ratings_after_the_mean(invoke, tmp_path):
    from gensim.models import KeyedVectors

    rng = np.random.default_rng(3)
    words = [f"词{i}" for i in range(30)]
    x = rng.standard_normal((30, 12)).astype(np.float32)
    vec = tmp_path / "v.vecdir"
    write_vectors(WordVectors(words, x), vec, "vecdir")
    lines, plain, first_rating = [], [], []
    for _ in range(25):
        a, b = rng.choice(30, 2, replace=False)
        ratings = rng.integers(0, 5, 15)
        lines.append(f"{words[a]} {words[b]} {ratings.mean():.2f} " + " ".join(map(str, ratings)))
        plain.append(f"{words[a]} {words[b]} {ratings.mean():.2f}")
        first_rating.append(f"{words[a]} {words[b]} {ratings[0]}")
    path = tmp_path / "COS960_all.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "plain.txt").write_text("\n".join(plain) + "\n", encoding="utf-8")
    (tmp_path / "r1.txt").write_text("\n".join(first_rating) + "\n", encoding="utf-8")
    kv = KeyedVectors(12)
    kv.add_vectors(words, x)
    r = invoke("eval", "similarity", "-m", vec, path)
    assert r.exit_code == 0, r.output
    assert (f"{path}: lines have 18 fields; the score is column 3, the first after the two words "
            "(choose another with --score-column N)") in r.stderr
    res = json.loads(r.stdout)
    _, spearman, _ = kv.evaluate_word_pairs(str(tmp_path / "plain.txt"), delimiter=" ", case_insensitive=False)
    assert res["metrics"]["spearman"] == pytest.approx(spearman[0], abs=1e-12)
    assert res["counts"]["pairs"] == 25
    r = invoke("eval", "similarity", "-m", vec, path, "--score-column", "4")
    assert r.exit_code == 0 and "--score-column" not in r.stderr
    _, spearman, _ = kv.evaluate_word_pairs(str(tmp_path / "r1.txt"), delimiter=" ", case_insensitive=False)
    assert json.loads(r.stdout)["metrics"]["spearman"] == pytest.approx(spearman[0], abs=1e-12)
    r = invoke("eval", "similarity", "-m", vec, path, "--score-column", "19")
    assert r.exit_code == 65 and f"{path}:1: expected at least 19 fields (word1 word2 score ...), got 18" in r.stderr
    # a line that lost its ratings is named
    path.write_text("\n".join(lines[:3] + [plain[3]]) + "\n", encoding="utf-8")
    r = invoke("eval", "similarity", "-m", vec, path)
    assert r.exit_code == 65 and f"{path}:4: expected 18 fields, as line 1, got 3" in r.stderr


# ---------------------------------------------------------------- 4. SQuAD v1 (CMRC 2018) for retrieval


SQUAD = {
    "version": "v1.0",
    "data": [
        {"title": "水果", "paragraphs": [
            {"id": "DEV_0", "context": "苹果香蕉", "qas": [
                {"question": "香蕉", "id": "DEV_0_QUERY_0", "answers": [{"text": "香蕉", "answer_start": 2}]}]},
            {"id": "DEV_1", "context": "汽车火车汽车", "qas": [
                {"question": "火车", "id": "DEV_1_QUERY_0", "answers": [{"text": "火车", "answer_start": 2}]},
                {"question": "苹果", "id": "DEV_1_QUERY_1", "answers": []}]}]},
        {"title": "艺术", "paragraphs": [
            {"context": "音乐电影", "qas": []},
            {"context": "苹果香蕉", "qas": [{"question": "苹果香蕉", "id": "q-dup", "answers": []}]}]},
    ],
}


def test_squad_retrieval_by_hand(invoke, topics, tmp_path):
    path = tmp_path / "cmrc2018_dev.json"
    path.write_text(json.dumps(SQUAD, ensure_ascii=False), encoding="utf-8")
    queries, corpus, qrels, counts = read_squad(path)
    assert corpus == {"DEV_0": "苹果香蕉", "DEV_1": "汽车火车汽车", "1.0": "音乐电影"}
    assert qrels == {"DEV_0_QUERY_0": {"DEV_0": 1.0}, "DEV_1_QUERY_0": {"DEV_1": 1.0}, "DEV_1_QUERY_1": {"DEV_1": 1.0},
                     "q-dup": {"DEV_0": 1.0}}
    assert counts["duplicate_contexts"] == 1
    r = invoke("eval", "retrieval", "-m", topics, path)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    # 香蕉 -> DEV_0 first; 火车 -> DEV_1 first; 苹香香蕉 -> DEV_0 first.
    # 苹果 (asked of DEV_1): DEV_0 holds 苹果; then 音乐电影 before 汽车火车汽车: the same dot product
    # with the apple vector (2c + 6c^2, c = 0.05) and a shorter mean vector. Its document is third.
    ranks = [1, 1, 3, 1]
    expected = {
        "mrr@10": np.mean([1 / k for k in ranks]),
        "ndcg@10": np.mean([1 / np.log2(k + 1) for k in ranks]),
        "map": np.mean([1 / k for k in ranks]),
        "recall@1": 3 / 4, "recall@10": 1.0, "recall@100": 1.0,
    }
    assert res["metrics"] == pytest.approx(expected)
    assert res["metrics"]["mrr@10"] == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)
    assert res["counts"]["queries"] == 4 and res["counts"]["corpus"] == 3
    assert [f["path"] for f in res["dataset"]["files"]] == [str(path)]
    direct = run_squad_retrieval(load_model(str(topics)), path)
    assert direct["metrics"] == pytest.approx(res["metrics"])


def test_squad_bad_files(invoke, topics, tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"version": "1", "records": []}')
    r = invoke("eval", "retrieval", "-m", topics, path)
    assert r.exit_code == 65 and f'{path}: not a SQuAD JSON file (no "data" list' in r.stderr
    path.write_text(json.dumps({"data": [{"paragraphs": [{"context": "苹果", "qas": [{"id": "a"}]}]}]}))
    r = invoke("eval", "retrieval", "-m", topics, path)
    assert r.exit_code == 65 and f'{path}: data[0].paragraphs[0].qas[0]: no "question" text' in r.stderr
    r = invoke("eval", "retrieval", "-m", topics, path, "--qrels", path)
    assert r.exit_code == 64 and "a SQuAD file holds the queries, corpus and judgments" in r.stderr


# ---------------------------------------------------------------- 5. sim never scores the wrong columns


@pytest.fixture
def pair_lines():
    return [("苹果", "香蕉"), ("汽车", "火车"), ("音乐", "苹果")]


def sim_scores(invoke, topics, path, *extra):
    r = invoke("sim", "-m", topics, path, *extra)
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_sim_tsv_header_and_ids(invoke, topics, tmp_path, pair_lines):
    plain = tmp_path / "plain.tsv"
    plain.write_text("".join(f"{a}\t{b}\n" for a, b in pair_lines), encoding="utf-8")
    expected = [rec["score"] for rec in sim_scores(invoke, topics, plain)]
    assert len(expected) == 3
    with_ids = tmp_path / "ids.tsv"
    with_ids.write_text("id\ttext1\ttext2\n" + "".join(f"p{i}\t{a}\t{b}\n" for i, (a, b) in enumerate(pair_lines)),
                        encoding="utf-8")
    got = sim_scores(invoke, topics, with_ids)
    assert [r["score"] for r in got] == expected
    assert got[0] == {"id": "p0", "text1": "苹果", "text2": "香蕉", "score": expected[0]}
    # a header of two names is never scored as a pair
    header = tmp_path / "header.tsv"
    header.write_text("sentence1\tsentence2\n" + plain.read_text(encoding="utf-8"), encoding="utf-8")
    assert [r["score"] for r in sim_scores(invoke, topics, header)] == expected
    # headerless with an id column: --columns
    bare = tmp_path / "bare.tsv"
    bare.write_text("".join(f"p{i}\t{a}\t{b}\n" for i, (a, b) in enumerate(pair_lines)), encoding="utf-8")
    got = sim_scores(invoke, topics, bare, "--columns", "2,3")
    assert [r["score"] for r in got] == expected and got[0]["col1"] == "p0"


@pytest.mark.parametrize("lines", [
    ["p0\t苹果\t香蕉", "p1\t汽车\t火车"],                 # an id column, no header
    ["1\t苹果\t香蕉\t0.5", "2\t汽车\t火车\t0.1"],          # four fields
])
def test_sim_refuses_an_unknown_layout(invoke, topics, tmp_path, lines):
    path = tmp_path / "x.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = invoke("sim", "-m", topics, path)
    assert r.exit_code == 65 and r.stdout == ""
    width = len(lines[0].split("\t"))
    assert r.stderr == (f"vecpipe: error: {path}:1: {width} tab-separated fields and no header line naming the two "
                        "texts; sim reads text1<TAB>text2 lines (a numeric label may follow): name the columns in a "
                        "header line (text1, text2) or choose them with --columns (e.g. --columns 2,3)\n")


def test_sim_label_column_still_read_and_ragged_line_named(invoke, topics, tmp_path, pair_lines):
    path = tmp_path / "lcqmc.tsv"
    path.write_text("".join(f"{a}\t{b}\t{i % 2}\n" for i, (a, b) in enumerate(pair_lines)), encoding="utf-8")
    got = sim_scores(invoke, topics, path)
    assert [r["label"] for r in got] == ["0", "1", "0"] and got[1]["text1"] == "汽车"
    path.write_text("苹果\t香蕉\t1\n汽车\t火车\t1\textra\n", encoding="utf-8")
    r = invoke("sim", "-m", topics, path)
    assert r.exit_code == 65 and f"{path}:2: expected 3 tab-separated fields (as line 1), got 4" in r.stderr


# ---------------------------------------------------------------- 6. exact ties are ties


def test_spearman_ranks_exact_ties_as_ties(invoke, tmp_path):
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(40)]
    x = (rng.standard_normal((40, 8)) * rng.choice([0.01, 1, 50], (40, 1))).astype(np.float32)
    vec = tmp_path / "n.vecdir"
    write_vectors(WordVectors(words, x), vec, "vecdir")
    pairs = []
    for i in range(12):  # a sentence and the same words in another order: cosine 1 in exact arithmetic
        ws = list(rng.choice(words, 6, replace=False))
        pairs.append((" ".join(ws), " ".join(rng.permutation(ws)), float(i % 5)))
    for i in range(12):
        pairs.append((" ".join(rng.choice(words, 4)), " ".join(rng.choice(words, 5)), float(i % 4)))
    pairs.append(pairs[0])  # a pair given twice
    # the reference: exact mean vectors (float64), cosines rounded to 6 decimals
    row = {w: i for i, w in enumerate(words)}

    def mean(s):
        return x[[row[w] for w in s.split()]].astype(np.float64).mean(0)

    cos = np.array([mean(a) @ mean(b) / np.linalg.norm(mean(a)) / np.linalg.norm(mean(b)) for a, b, _ in pairs])
    gold = [y for *_, y in pairs]
    expected = stats.spearmanr(gold, np.round(cos, 6))[0]
    # float32 averaging in another word order moves the cosines of the permuted pairs off 1.0, unevenly
    enc = load_model(str(vec))
    a, b = enc.encode([p[0] for p in pairs]), enc.encode([p[1] for p in pairs])
    raw = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert len(set(raw[:12].tolist())) > 1
    assert stats.spearmanr(gold, raw)[0] != pytest.approx(expected, abs=1e-9)
    results = []
    for order in (np.arange(len(pairs)), rng.permutation(len(pairs)), rng.permutation(len(pairs))):
        path = tmp_path / "sts.tsv"
        path.write_text("".join(f"{pairs[i][0]}\t{pairs[i][1]}\t{pairs[i][2]}\n" for i in order), encoding="utf-8")
        r = invoke("eval", "sts", "-m", vec, path)
        assert r.exit_code == 0, r.output
        results.append(json.loads(r.stdout)["metrics"]["spearman"])
    assert results[0] == pytest.approx(expected, abs=1e-12)
    assert results[1] == results[0] and results[2] == results[0]
    assert M.tied([0.99999994, 1.0000001, 1.0]).tolist() == [1.0, 1.0, 1.0]


def test_word_similarity_duplicate_pairs_tie(tmp_path):
    words = ["甲", "乙", "丙", "丁"]
    x = np.array([[1, 0.2, 0], [0.3, 1, 0], [0, 0.1, 1], [0.5, 0.5, 0.5]], dtype=np.float32)
    path = tmp_path / "ws.txt"
    path.write_text("甲 乙 3\n乙 甲 5\n甲 丙 1\n丙 丁 2\n", encoding="utf-8")
    res = run_similarity(path, wv=WordVectors(words, x))
    v = x.astype(np.float64)
    cos = [v[a] @ v[b] / np.linalg.norm(v[a]) / np.linalg.norm(v[b]) for a, b in ((0, 1), (1, 0), (0, 2), (2, 3))]
    assert res["metrics"]["spearman"] == pytest.approx(stats.spearmanr([3, 5, 1, 2], np.round(cos, 6))[0], abs=1e-12)


# ---------------------------------------------------------------- 7. markdown cells


def test_report_escapes_pipes(invoke, tmp_path):
    res = {"task": "sts", "model": {"spec": "hf|model"}, "dataset": {"name": "a|b"}, "metrics": {"spearman": 0.5},
           "headline": ["spearman"], "counts": {"pairs": 3}, "seconds": 1.0, "_source": "x"}
    table = report_table([res], fmt="md")
    assert table.splitlines()[0] == "| model     |   a\\|b |"
    assert table.splitlines()[2] == "| hf\\|model | 0.5000 |"
    path = tmp_path / "r.json"
    path.write_text(json.dumps({k: v for k, v in res.items() if k != "_source"}))
    r = invoke("eval", "report", path, "--layout", "long")
    assert r.exit_code == 0
    row = r.stdout.splitlines()[2]
    assert row.replace("\\|", "").count("|") == 8 and "hf\\|model" in row and "a\\|b" in row


# ---------------------------------------------------------------- 8. bad input: 65 with file:line, missing: 66


def test_sim_vectors_empty_and_missing(invoke, tmp_path):
    a = tmp_path / "a.npy"
    np.save(a, np.ones((2, 4), dtype=np.float32))
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    r = invoke("sim", "--left", empty, "--right", a)
    assert r.exit_code == 65
    assert r.stderr == f"vecpipe: error: {empty}: --left: no vectors (an empty stream; expected .npy arrays)\n"
    r = invoke("sim", "--left", "-", "--right", a, input=b"")
    assert r.exit_code == 65 and r.stderr.startswith("vecpipe: error: <stdin>: --left: no vectors")
    for opt, other in (("--left", "--right"), ("--right", "--left")):
        r = invoke("sim", opt, tmp_path / "nope.npy", other, a)
        assert r.exit_code == 66, r.output
        assert r.stderr == f"vecpipe: error: {tmp_path / 'nope.npy'}: no such file\n"


def test_sim_missing_src_is_66(invoke, topics, tmp_path):
    r = invoke("sim", "-m", topics, tmp_path / "nope.tsv")
    assert r.exit_code == 66 and r.stderr == f"vecpipe: error: {tmp_path / 'nope.tsv'}: no such file\n"


def test_sim_matrix_record_without_text(invoke, topics, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"text": "苹果"}\n{"id": 1}\n', encoding="utf-8")
    r = invoke("sim", "-m", topics, "--matrix", path)
    assert r.exit_code == 65
    assert r.stderr == f'vecpipe: error: {path}:2: field "text" is missing\n'
    path.write_text('{"text": "苹果"}\n\n{"text": 3}\n', encoding="utf-8")
    r = invoke("sim", "-m", topics, "--matrix", path)
    assert r.exit_code == 65 and f'{path}:3: field "text" is not a string (int)' in r.stderr


def test_eval_missing_files_are_66(invoke, topics, tmp_path):
    nope = tmp_path / "nope.tsv"
    q = tmp_path / "q.tsv"
    q.write_text("q1\t苹果\n", encoding="utf-8")
    for args in (["retrieval", "--queries", nope, "--corpus", q, "--qrels", q],
                 ["retrieval", "--queries", q, "--corpus", nope, "--qrels", q],
                 ["retrieval", "--queries", q, "--corpus", q, "--qrels", nope],
                 ["classify", q, "--test", nope], ["classify", nope], ["sts", nope], ["similarity", nope],
                 ["analogy", nope], ["retrieval", nope]):
        r = invoke("eval", args[0], "-m", topics, *args[1:])
        assert r.exit_code == 66, (args, r.output)
        assert f"{nope}: no such file" in r.stderr
    r = invoke("eval", "report", nope)
    assert r.exit_code == 66 and f"{nope}: no such file" in r.stderr


def test_analogy_invalid_utf8_is_65_with_line(invoke, topics, tmp_path):
    path = tmp_path / "q.txt"
    path.write_bytes(": a\n苹果 香蕉 汽车 火车\n".encode() + b"\xe8\x8b\xb9 \xff x y\n")  # 苹, then a stray byte
    r = invoke("eval", "analogy", "-m", topics, path)
    assert r.exit_code == 65
    assert r.stderr == f"vecpipe: error: {path}:3: invalid UTF-8 at byte 4 of the line (try --unicode-errors replace)\n"


# ---------------------------------------------------------------- siblings: classification tables as published


def test_classify_csv_and_named_headers(tmp_path):
    from vecpipe.core.eval.classify import read_labelled

    csv_path = tmp_path / "waimai_10k.csv"  # label,review with quoted commas and a BOM
    csv_path.write_bytes(b"\xef\xbb\xbf" + 'label,review\r\n1,"很快,好吃"\r\n0,"送餐慢，""凉了"""\r\n'.encode())
    assert read_labelled([csv_path]) == (["很快,好吃", '送餐慢，"凉了"'], ["1", "0"], 0)
    tsv = tmp_path / "ChnSentiCorp.tsv"  # ERNIE's layout: a label<TAB>text_a header
    tsv.write_text("label\ttext_a\n1\t不错\n0\t很差\n", encoding="utf-8")
    assert read_labelled([tsv]) == (["不错", "很差"], ["1", "0"], 0)
