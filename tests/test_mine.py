"""vecpipe mine: hard negatives from a rank window, against a brute-force numpy computation."""
import json

import numpy as np
import pytest

from conftest import cjk_words, fake_vector

DIM = 16


def unit(text):
    v = fake_vector(text, DIM)
    return v / np.linalg.norm(v)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path):
    """200 corpus texts (one duplicated under another id), 20 queries whose
    positives are in the corpus, and one query text that is in the corpus too."""
    words = cjk_words(240, seed=3)
    corpus = [{"id": f"d{i}", "text": w} for i, w in enumerate(words[:200])]
    corpus.append({"id": "dup", "text": words[5]})  # the positive of query 0 again, under another id
    queries = [{"id": f"q{i}", "text": words[200 + i], "text_pos": words[5 + i]} for i in range(20)]
    queries[1]["text"] = words[150]  # a query that is itself a corpus text
    queries[2]["pos_id"] = "d77"  # a second positive named only by id
    return write_jsonl(tmp_path / "q.jsonl", queries), write_jsonl(tmp_path / "c.jsonl", corpus), queries, corpus


def brute_force(queries, corpus, lo, hi, margin=None):
    """Candidates per query: corpus texts (distinct, first id) ranked by cosine,
    ties by row, window [lo, hi), minus the query, its positives (text or id),
    minus those within the margin of the positive."""
    texts = list(dict.fromkeys(c["text"] for c in corpus))
    id_text = {c["id"]: c["text"] for c in corpus}
    x = np.stack([unit(t) for t in texts])
    out = []
    for q in queries:
        s = x @ unit(q["text"])
        order = np.lexsort((np.arange(len(texts)), -s))[lo:hi]
        forbidden = {q["text"], q["text_pos"]} | ({id_text[q["pos_id"]]} if "pos_id" in q else set())
        pos_score = float(unit(q["text"]) @ unit(q["text_pos"]))
        keep = [texts[r] for r in order if texts[r] not in forbidden and (margin is None or s[r] + margin <= pos_score)]
        out.append(keep)
    return out


def run_mine(invoke, *args):
    r = invoke("mine", "-m", f"fake:{DIM}", *map(str, args))
    assert r.exit_code == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_top_negatives_equal_brute_force_and_never_the_positive(invoke, small):
    qpath, cpath, queries, corpus = small
    got = run_mine(invoke, qpath, "--corpus", cpath, "--range", "0-12", "--negatives", "12", "--sample", "top",
                   "--query-prompt", "")
    want = brute_force(queries, corpus, 0, 12)
    assert [r["id"] for r in got] == [q["id"] for q in queries]
    assert [r["text_neg"] for r in got] == want
    for r, q in zip(got, queries):
        assert q["text_pos"] not in r["text_neg"] and q["text"] not in r["text_neg"]
        assert (r["text"], r["text_pos"]) == (q["text"], q["text_pos"])
    # the exclusions did happen: query 0's positive (twice in the corpus), query 1 itself, query 2's id positive
    texts = list(dict.fromkeys(c["text"] for c in corpus))
    x = np.stack([unit(t) for t in texts])
    for j, banned in ((0, queries[0]["text_pos"]), (1, queries[1]["text"]), (2, corpus[77]["text"])):
        top = [texts[i] for i in np.argsort(-(x @ unit(queries[j]["text"])))[:12]]
        if banned in top:
            assert len(got[j]["text_neg"]) == len(top) - sum(t in top for t in
                                                              {queries[j]["text"], queries[j]["text_pos"], banned})


def test_window_and_margin_equal_brute_force(invoke, small):
    qpath, cpath, queries, corpus = small
    got = run_mine(invoke, qpath, "--corpus", cpath, "--range", "3-40", "--negatives", "37", "--sample", "top",
                   "--margin", "0.05", "--query-prompt", "")
    want = brute_force(queries, corpus, 3, 40, margin=0.05)
    by_id = {r["id"]: r["text_neg"] for r in got}
    for q, w in zip(queries, want):
        assert by_id.get(q["id"], []) == w
    assert any(len(w) < 37 for w in want)  # the margin removed something


def test_random_sample_is_a_seeded_subset_of_the_window(invoke, small):
    qpath, cpath, queries, corpus = small
    args = (qpath, "--corpus", cpath, "--range", "10-100", "--negatives", "7", "--query-prompt", "")
    a = run_mine(invoke, *args, "--seed", "1")
    b = run_mine(invoke, *args, "--seed", "1")
    c = run_mine(invoke, *args, "--seed", "2")
    want = brute_force(queries, corpus, 10, 100)
    assert a == b and a != c
    for r, w in zip(a, want):
        assert len(r["text_neg"]) == 7 and set(r["text_neg"]) <= set(w)
        assert r["text_neg"] == [t for t in w if t in r["text_neg"]]  # best-ranked first


def test_retrieval_folder_positives_by_qrels(invoke, tmp_path):
    words = cjk_words(60, seed=9)
    folder = tmp_path / "ret"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [{"_id": f"d{i}", "text": w} for i, w in enumerate(words[:50])])
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": w} for i, w in enumerate(words[50:])])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                               "".join(f"q{i}\td{i}\t1\nq{i}\td{i + 10}\t1\n" for i in range(10)))
    got = run_mine(invoke, folder, "--range", "0-50", "--negatives", "48", "--sample", "top", "--query-prompt", "")
    assert len(got) == 20  # one triplet per positive
    for r in got:
        i = int(r["id"][1:])
        assert {words[i], words[i + 10]} == {x["text_pos"] for x in got if x["id"] == r["id"]}
        assert len(r["text_neg"]) == 48 and not {words[i], words[i + 10]} & set(r["text_neg"])


def test_bad_query_record_names_the_line(invoke, small, tmp_path):
    qpath, cpath, *_ = small
    bad = tmp_path / "bad.jsonl"
    bad.write_text(qpath.read_text(encoding="utf-8") + '{"text": "x"}\n', encoding="utf-8")
    r = invoke("mine", "-m", "fake:8", bad, "--corpus", cpath)
    assert r.exit_code == 65 and f"{bad}:21:" in r.stderr
    r = invoke("mine", "-m", "fake:8", bad, "--corpus", cpath, "--on-error", "skip", "--range", "0-5", "--negatives", "2")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 20


def test_usage_errors(invoke, small):
    qpath, cpath, *_ = small
    assert invoke("mine", "-m", "fake:8", qpath).exit_code == 64  # no corpus
    r = invoke("mine", "-m", "fake:8", qpath, "--corpus", cpath, "--range", "9-3")
    assert r.exit_code == 64 and "--range" in r.stderr
