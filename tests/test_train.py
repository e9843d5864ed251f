"""vecpipe train-w2v: gensim models against gensim itself, PPMI against the
formula, planted structure, reproducibility, and the command as a process."""
import bz2
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict

import numpy as np
import pytest

from conftest import cjk_words, corpus_copy_made, run_vecpipe
from vecpipe.core.errors import DataError, UnavailableError, UsageError
from vecpipe.core.train.job import train
from vecpipe.core.train.options import TrainOptions, gensim_params
from vecpipe.core.train.ppmi import ppmi_matrix
from vecpipe.core.vectors.readwrite import read_vectors

FAST = dict(dim=24, epochs=2, min_count=2, workers=1, seed=7, bucket=5000)


def zipf_lines(n_lines=1500, vocab=1500, seed=0):
    """Lines of words drawn from a Zipf-like distribution (so min-count and
    subsampling both matter)."""
    rng = np.random.default_rng(seed)
    words = cjk_words(vocab, seed=seed)
    p = 1.0 / np.arange(1, vocab + 1)
    p /= p.sum()
    return [[words[i] for i in rng.choice(vocab, size=rng.integers(3, 30), p=p)] for _ in range(n_lines)]


def write_lines(path, lines, sep=" "):
    path.write_text("".join(sep.join(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def zipf_file(tmp_path):
    return write_lines(tmp_path / "corpus.txt", zipf_lines())


def planted(n_lines=1200, groups=4, members=4, contexts=12, seed=3):
    """Each line: context words of one group around one member of that group.
    Members of a group never meet each other but share all their contexts."""
    rng = np.random.default_rng(seed)
    words = cjk_words(groups * (members + contexts), seed=seed + 100)
    mem = [words[g * members : (g + 1) * members] for g in range(groups)]
    ctx = [words[groups * members + g * contexts : groups * members + (g + 1) * contexts] for g in range(groups)]
    lines = []
    for _ in range(n_lines):
        g = rng.integers(groups)
        left, right = rng.choice(ctx[g], 3), rng.choice(ctx[g], 3)
        lines.append([*left, mem[g][rng.integers(members)], *right])
    return lines, mem


# ---------------------------------------------------------------- gensim models


@pytest.mark.parametrize("model", ["sgns", "cbow", "fasttext"])
def test_same_vectors_as_gensim_called_directly(zipf_file, model):
    from gensim.models import FastText, Word2Vec

    opts = TrainOptions(model=model, sample=1e-3, **FAST)
    ours = train([str(zipf_file)], opts)
    cls = FastText if model == "fasttext" else Word2Vec
    ref = cls(corpus_file=str(zipf_file), **gensim_params(opts, 1))
    assert ours.corpus_mode == "corpus_file"
    assert ours.vectors.words == ref.wv.index_to_key
    np.testing.assert_array_equal(ours.vectors.vectors, ref.wv.vectors)
    np.testing.assert_array_equal(ours.contexts.vectors, ref.syn1neg)
    np.testing.assert_array_equal(ours.vectors.counts, [ref.wv.get_vecattr(w, "count") for w in ref.wv.index_to_key])
    assert ours.tokens == ref.corpus_total_words


def test_tokenized_copy_trains_like_the_plain_file(tmp_path, zipf_file):
    """.bz2 input (tokenized into a temporary copy) gives the very same model."""
    opts = TrainOptions(**FAST)
    direct = train([str(zipf_file)], opts)
    packed = tmp_path / "corpus.txt.bz2"
    packed.write_bytes(bz2.compress(zipf_file.read_bytes()))
    copy = train([str(packed)], opts)
    assert copy.corpus_mode == "tokenized copy"
    assert copy.vectors.words == direct.vectors.words
    np.testing.assert_array_equal(copy.vectors.vectors, direct.vectors.vectors)


def test_reproducible_with_seed_and_one_worker(zipf_file, tmp_path):
    a = train([str(zipf_file)], TrainOptions(**FAST))
    b = train([str(zipf_file)], TrainOptions(**FAST))
    np.testing.assert_array_equal(a.vectors.vectors, b.vectors.vectors)
    c = train([str(zipf_file)], TrainOptions(**{**FAST, "seed": 8}))
    assert not np.array_equal(a.vectors.vectors, c.vectors.vectors)
    # two processes with different hash seeds write byte-identical files
    outs = []
    for hashseed in ("1", "2"):
        out = tmp_path / f"v{hashseed}.vecdir"
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        proc = subprocess.run(
            [sys.executable, "-m", "vecpipe", "train-w2v", str(zipf_file), "--dim", "16", "--epochs", "1",
             "--min-count", "2", "--seed", "5", "--workers", "1", "-o", str(out)],
            capture_output=True, env=env,
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    for name in ("vectors.npy", "vocab.txt", "counts.npy"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes()


@pytest.mark.parametrize("model,extra", [("sgns", {}), ("cbow", {}), ("fasttext", {}), ("ppmi", {}),
                                         ("ppmi", {"svd": 8})])
def test_planted_structure(tmp_path, model, extra):
    lines, members = planted()
    path = write_lines(tmp_path / "planted.txt", lines)
    opts = TrainOptions(model=model, dim=16, epochs=5, window=3, sample=0, min_count=1, workers=1, seed=1,
                        bucket=2000, **extra)
    result = train([str(path)], opts)
    wv = result.vectors
    flat = [w for group in members for w in group]
    x = wv.dense()[[wv.index[w] for w in flat]].astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    k = len(members[0])
    for i, w in enumerate(flat):
        nearest = {flat[j] for j in np.argsort(-sim[i])[: k - 1]}
        assert nearest == set(members[i // k]) - {w}, (model, w)


def test_fasttext_vector_for_unseen_word_sgns_says_no(tmp_path):
    lines, _ = planted(n_lines=300)
    path = write_lines(tmp_path / "c.txt", lines)
    unseen = "从未见过的词"
    ft = train([str(path)], TrainOptions(model="fasttext", dim=8, epochs=1, min_count=1, workers=1, bucket=1000))
    assert unseen not in ft.vectors.index
    v = ft.vector(unseen)
    assert v.shape == (8,) and np.abs(v).sum() > 0
    sg = train([str(path)], TrainOptions(model="sgns", dim=8, epochs=1, min_count=1, workers=1))
    with pytest.raises(UsageError, match="not in the vocabulary.*only --model fasttext"):
        sg.vector(unseen)
    with pytest.raises(UsageError, match="--add-words needs --model fasttext"):
        train([str(path)], TrainOptions(model="sgns", min_count=1), add_words=[unseen])


def test_cli_fasttext_add_words_and_bin(tmp_path):
    from gensim.models.fasttext import load_facebook_vectors

    lines, _ = planted(n_lines=300)
    path = write_lines(tmp_path / "c.txt", lines)
    (tmp_path / "extra.txt").write_text("从未见过\n" + lines[0][0] + "\n", encoding="utf-8")
    args = [path, "--model", "fasttext", "--dim", "8", "--epochs", "1", "--min-count", "1", "--workers", "1",
            "--bucket", "1000", "--add-words", tmp_path / "extra.txt"]
    r = run_vecpipe("train-w2v", *args, "-o", tmp_path / "ft.vecdir", "--fasttext-bin", tmp_path / "ft.bin")
    assert r.returncode == 0, r.stderr
    wv = read_vectors(tmp_path / "ft.vecdir")
    assert wv.words[-1] == "从未见过" and wv.words.count(lines[0][0]) == 1  # only unseen words are added
    assert wv.counts[-1] == 0
    kv = load_facebook_vectors(str(tmp_path / "ft.bin"))
    np.testing.assert_allclose(kv["从未见过"], wv.vectors[-1], rtol=1e-5, atol=1e-6)
    r = run_vecpipe("train-w2v", path, "--add-words", tmp_path / "extra.txt", "--min-count", "1",
                    "-o", tmp_path / "sg.vecdir")
    assert r.returncode == 64 and "--add-words needs --model fasttext" in r.stderr
    assert not (tmp_path / "sg.vecdir").exists()


# ---------------------------------------------------------------- PPMI


def test_ppmi_hand_computed():
    """Corpus "a b a c" / "b a", window 1, fixed, no subsampling.
    Co-occurrence counts (both directions): #(a,b) = #(b,a) = 3, #(a,c) = #(c,a) = 1.
    Rows a, b, c sum to 4, 3, 1; columns a, b, c sum to 4, 3, 1.
    With cds 0.75: Z = 4^.75 + 3^.75 + 1^.75 = 6.10793...
      PMI(a,b) = log(3 Z / (4 * 3^.75))  = log(2.00962) = 0.69795
      PMI(a,c) = log(1 Z / (4 * 1))      = log(1.52698) = 0.42330
      PMI(b,a) = log(3 Z / (3 * 4^.75))  = log(2.15950) = 0.76989
      PMI(c,a) = log(1 Z / (1 * 4^.75))  = log(2.15950) = 0.76989
    With cds 1 and shift 2: PMI = log(#(w,c) * 8 / (#w #c)) - log 2:
      (a,b): log(24/12) - log 2 = 0 (dropped); (a,c): log(8/4) - log 2 = 0 (dropped);
      (b,a): log(24/12) - log 2 = 0 (dropped); (c,a): log(8/4) - log 2 = 0 (dropped)
    and with cds 1, shift 1.5: each is log 2 - log 1.5 = 0.28768."""
    from scipy import sparse

    counts = sparse.csr_matrix(np.array([[0, 3, 1], [3, 0, 0], [1, 0, 0]], dtype=np.float64))
    m = ppmi_matrix(counts, cds=0.75).toarray()
    expected = np.array([[0, 0.69795, 0.42330], [0.76989, 0, 0], [0.76989, 0, 0]])
    np.testing.assert_allclose(m, expected, atol=5e-5)
    assert ppmi_matrix(counts, cds=1.0, shift=2.0).nnz == 0
    np.testing.assert_allclose(ppmi_matrix(counts, cds=1.0, shift=1.5).toarray(),
                               (counts.toarray() > 0) * 0.28768, atol=5e-5)


def test_ppmi_from_corpus_hand_computed(tmp_path):
    """The same numbers from the corpus text, through the whole pipeline, and
    with the dynamic window: window 2 weighs distance 1 by 1 and distance 2 by 0.5."""
    path = tmp_path / "c.txt"
    path.write_text("a b a c\nb a\n")
    r = train([str(path)], TrainOptions(model="ppmi", window=1, dynamic_window=False, sample=0, min_count=1))
    assert r.vectors.words == ["a", "b", "c"] and r.contexts.words == ["a", "b", "c"]
    np.testing.assert_allclose(r.vectors.vectors.toarray(),
                               [[0, 0.69795, 0.42330], [0.76989, 0, 0], [0.76989, 0, 0]], atol=5e-5)
    # window 2, dynamic: line 1 adds the distance-2 pairs (a,a) and (b,c), both ways, at weight 0.5:
    # counts a: [1, 3, 1], b: [3, 0, .5], c: [1, .5, 0]; rows (= columns) 5, 3.5, 1.5; total 10.
    # With cds 1: PMI(a,b) = log(3*10 / (5*3.5)) = 0.53900, PMI(a,c) = log(1*10 / (5*1.5)) = 0.28768,
    # PMI(a,a) = log(1*10 / 25) < 0 and PMI(b,c) = log(0.5*10 / (3.5*1.5)) < 0 are clipped to 0.
    r = train([str(path)], TrainOptions(model="ppmi", window=2, dynamic_window=True, sample=0, min_count=1, cds=1.0))
    np.testing.assert_allclose(r.vectors.vectors.toarray(),
                               [[0, 0.53900, 0.28768], [0.53900, 0, 0], [0.28768, 0, 0]], atol=5e-5)


def reference_ppmi(lines, window, dynamic, min_count, cds, shift, ngram_order):
    """PPMI the slow, obvious way: a loop over every (word, context) pair."""
    count = Counter(t for line in lines for t in line)
    first = {}
    for line in lines:
        for t in line:
            first.setdefault(t, len(first))
    vocab = sorted((w for w in first if count[w] >= min_count), key=lambda w: (-count[w], -first[w]))
    known = set(vocab)
    bigrams = Counter((ln[i], ln[i + 1]) for ln in lines for i in range(len(ln) - 1) if ln[i] in known and ln[i + 1] in known)
    m = defaultdict(float)

    def weight(d):
        return (window - d + 1) / window if dynamic else 1.0

    for line in lines:
        for i, w in enumerate(line):
            if w not in known:
                continue
            for j in range(max(0, i - window), min(len(line), i + window + 1)):
                if j != i and line[j] in known:
                    m[w, line[j]] += weight(abs(i - j))
            if ngram_order == 2:
                for s in [*range(i - window, i - 1), *range(i + 1, i + window)]:
                    if s >= 0 and s + 1 < len(line) and bigrams.get((line[s], line[s + 1]), 0) >= min_count:
                        far = max(abs(s - i), abs(s + 1 - i))
                        m[w, line[s] + "@$" + line[s + 1]] += weight(far)
    rows, cols = defaultdict(float), defaultdict(float)
    for (w, c), v in m.items():
        rows[w] += v
        cols[c] += v
    z = sum(v**cds for v in cols.values())
    out = {}
    for (w, c), v in m.items():
        pmi = math.log(v * z / (rows[w] * cols[c] ** cds)) - math.log(shift)
        if pmi > 0:
            out[w, c] = pmi
    return vocab, out


@pytest.mark.parametrize("dynamic", [True, False])
@pytest.mark.parametrize("ngram_order", [1, 2])
def test_ppmi_matches_a_pair_by_pair_reference(tmp_path, dynamic, ngram_order):
    rng = np.random.default_rng(0)
    letters = list("abcdefghijkl")
    lines = [[letters[k] for k in rng.integers(0, 12, rng.integers(1, 16))] for _ in range(300)]
    path = write_lines(tmp_path / "c.txt", lines)
    opts = TrainOptions(model="ppmi", window=3, dynamic_window=dynamic, sample=0, min_count=3,
                        ngram_order=ngram_order, cds=0.75, shift=1.2)
    r = train([str(path)], opts)
    vocab, expected = reference_ppmi(lines, 3, dynamic, 3, 0.75, 1.2, ngram_order)
    assert r.vectors.words == vocab
    m = r.vectors.vectors.tocoo()
    got = {(r.vectors.words[i], r.contexts.words[j]): v for i, j, v in zip(m.row, m.col, m.data)}
    assert got.keys() == expected.keys()
    assert max(abs(got[k] - expected[k]) for k in expected) < 1e-5
    if ngram_order == 2:
        assert any("@$" in c for _, c in expected)


def test_ppmi_counting_blocks_do_not_change_the_result(monkeypatch, zipf_file):
    """Counting goes block by block over the token positions; pairs that cross a
    block boundary must count exactly once (and subsampling draws the same)."""
    import vecpipe.core.train.ppmi as ppmi_module

    opts = TrainOptions(model="ppmi", window=4, sample=1e-3, min_count=2, ngram_order=2, seed=3)
    whole = train([str(zipf_file)], opts)
    monkeypatch.setattr(ppmi_module, "PPMI_BLOCK", 7)
    blocks = train([str(zipf_file)], opts)
    assert blocks.contexts.words == whole.contexts.words
    assert abs(blocks.vectors.vectors - whole.vectors.vectors).max() < 1e-6


def test_ppmi_subsampling_is_seeded(zipf_file):
    a = train([str(zipf_file)], TrainOptions(model="ppmi", sample=1e-3, min_count=2, seed=1))
    b = train([str(zipf_file)], TrainOptions(model="ppmi", sample=1e-3, min_count=2, seed=1))
    c = train([str(zipf_file)], TrainOptions(model="ppmi", sample=1e-3, min_count=2, seed=2))
    assert (a.vectors.vectors != b.vectors.vectors).nnz == 0
    assert (a.vectors.vectors != c.vectors.vectors).nnz > 0
    full = train([str(zipf_file)], TrainOptions(model="ppmi", sample=0, min_count=2))
    assert a.vectors.vectors.nnz < full.vectors.vectors.nnz


def test_cli_ppmi_outputs(tmp_path, zipf_file):
    r = run_vecpipe("train-w2v", zipf_file, "--model", "ppmi", "--min-count", "2", "--ngram-order", "2",
                    "-o", tmp_path / "p.vecdir", "--context-vectors", tmp_path / "ctx.vecdir")
    assert r.returncode == 0, r.stderr
    assert "ppmi:" in r.stderr and "non-zero" in r.stderr
    vecdir = read_vectors(tmp_path / "p.vecdir")
    assert vecdir.is_sparse
    meta = json.loads((tmp_path / "p.vecdir" / "meta.json").read_text())
    assert meta["training"]["bigram_contexts"] > 0 and meta["training"]["params"]["ngram_order"] == 2
    ctx = read_vectors(tmp_path / "ctx.vecdir")
    assert ctx.dim == len(vecdir) and any("@$" in w for w in ctx.words)
    assert (ctx.vectors.T != vecdir.vectors).nnz == 0
    # a text name gives the Chinese-Word-Vectors sparse text, which reads back equal
    r = run_vecpipe("train-w2v", zipf_file, "--model", "ppmi", "--min-count", "2", "--ngram-order", "2",
                    "-o", tmp_path / "p.txt.bz2")
    assert r.returncode == 0, r.stderr
    assert bz2.decompress((tmp_path / "p.txt.bz2").read_bytes()).split(b"\n")[1].split(b" ")[1].count(b":") == 1
    text = read_vectors(tmp_path / "p.txt.bz2")
    assert text.words == vecdir.words
    np.testing.assert_array_equal(text.vectors.toarray(), vecdir.vectors.toarray())
    # --svd: dense, reproducible
    outs = []
    for name in ("s1.vecdir", "s2.vecdir"):
        r = run_vecpipe("train-w2v", zipf_file, "--model", "ppmi", "--min-count", "2", "--svd", "10", "-o", tmp_path / name)
        assert r.returncode == 0, r.stderr
        outs.append(np.load(tmp_path / name / "vectors.npy"))
    assert outs[0].shape == (len(vecdir), 10)
    np.testing.assert_array_equal(outs[0], outs[1])


# ---------------------------------------------------------------- tokenization


def test_jieba_missing_is_a_clear_error_exit_69(monkeypatch, tmp_path, invoke):
    monkeypatch.setitem(sys.modules, "jieba", None)  # `import jieba` now fails as if it were not installed
    path = write_lines(tmp_path / "c.txt", [["今天天气很好"]])
    with pytest.raises(UnavailableError, match="pip install 'vecpipe\\[jieba\\]'"):
        train([str(path)], TrainOptions(tokenize="jieba"))
    result = invoke("train-w2v", path, "--tokenize", "jieba", "-o", tmp_path / "o.vecdir")
    assert result.exit_code == 69
    assert "jieba" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.vecdir").exists()


def test_jieba_tokenizes(tmp_path):
    pytest.importorskip("jieba")
    path = write_lines(tmp_path / "c.txt", [["我们今天在北京开会"]] * 5)
    r = train([str(path)], TrainOptions(tokenize="jieba", min_count=1, dim=4, epochs=1, workers=1))
    assert "北京" in r.vectors.index and r.corpus_mode == "tokenized copy"


def test_char_tokenization_and_several_files(tmp_path):
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("天地玄黄 宇宙洪荒\n", encoding="utf-8")
    b.write_text("日月盈昃\u3000辰宿列张\n天地", encoding="utf-8")  # no final newline
    r = train([str(a), str(b)], TrainOptions(tokenize="char", min_count=1, dim=4, epochs=1, workers=1))
    assert r.tokens == 18 and r.vectors.counts[r.vectors.index["天"]] == 2 and r.lines == 3


def test_char_tokens_are_core_segments():
    import sys as _sys

    from vecpipe.core.models.segment import make_tokenizer
    from vecpipe.core.train.corpus import tokenizer_for

    spaces = "".join(chr(i) for i in range(_sys.maxunicode + 1) if chr(i).isspace())
    text = "天地 玄黄\u3000a1,\t宇宙\r\n" + spaces + "洪荒。 "
    assert tokenizer_for("char")(text) == make_tokenizer("char")(text) == list("天地玄黄a1,宇宙洪荒。")


def test_non_ascii_whitespace_is_a_separator(tmp_path):
    """gensim's own reader splits on ASCII whitespace only; the ideographic space
    U+3000 must still separate words, so vecpipe trains on a tokenized copy."""
    path = tmp_path / "c.txt"
    path.write_text("中国\u3000北京 上海\n" * 5, encoding="utf-8")
    r = train([str(path)], TrainOptions(min_count=1, dim=4, epochs=1, workers=1))
    assert sorted(r.vectors.words) == sorted(["中国", "北京", "上海"]) and r.corpus_mode == "tokenized copy"


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes("好 的\n".encode() * 3 + b"bad \xff\xfe word\n")
    with pytest.raises(DataError, match=r"c\.txt:4: invalid UTF-8 at byte 4"):
        train([str(path)], TrainOptions(min_count=1))
    r = train([str(path)], TrainOptions(min_count=1, dim=4, epochs=1, workers=1, unicode_errors="replace"))
    assert "\ufffd\ufffd" in r.vectors.index


# ---------------------------------------------------------------- the command as a process


def test_cli_stdin_and_bz2_give_the_file_result_and_meta(tmp_path, zipf_file):
    args = ["--dim", "16", "--epochs", "1", "--min-count", "2", "--workers", "1", "--seed", "3"]
    r = run_vecpipe("train-w2v", zipf_file, *args, "-o", tmp_path / "file.vecdir")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith("vecpipe: sgns: vocabulary") and r.stderr.count("\n") == 1
    assert "words/s" in r.stderr and "tokens" in r.stderr
    r = run_vecpipe("train-w2v", "-", *args, "-o", tmp_path / "stdin.vecdir", input=zipf_file.read_bytes())
    assert r.returncode == 0, r.stderr
    r = run_vecpipe("-q", "train-w2v", *args, "-o", tmp_path / "bz2.vecdir", input=bz2.compress(zipf_file.read_bytes()))
    assert r.returncode == 0 and r.stderr == ""
    ref = read_vectors(tmp_path / "file.vecdir")
    for name in ("stdin.vecdir", "bz2.vecdir"):
        got = read_vectors(tmp_path / name)
        assert got.words == ref.words
        np.testing.assert_array_equal(got.vectors, ref.vectors)
    meta = json.loads((tmp_path / "file.vecdir" / "meta.json").read_text())
    t = meta["training"]
    from vecpipe import __version__

    assert meta["made_by"]["tool"] == f"vecpipe {__version__}" and "gensim" in meta["made_by"]["libraries"]
    assert t["model"] == "sgns" and t["seed"] == 3 and t["workers"] == 1 and t["reproducible"]
    assert t["params"] == {"dim": 16, "window": 5, "dynamic_window": True, "sample": 1e-5, "min_count": 2,
                           "epochs": 1, "negative": 5, "alpha": 0.025, "min_alpha": 0.0001}
    assert t["gensim_params"]["sg"] == 1 and t["gensim_params"]["shrink_windows"] is True
    assert t["corpus"][0]["path"] == str(zipf_file) and t["corpus"][0]["bytes"] == zipf_file.stat().st_size
    assert t["tokens"] == sum(len(line.split()) for line in zipf_file.read_text().splitlines())
    assert t["vocab_size"] == len(ref) and t["corpus_mode"] == "corpus_file"
    stdin_meta = json.loads((tmp_path / "stdin.vecdir" / "meta.json").read_text())["training"]
    assert stdin_meta["corpus"][0]["path"] == "<stdin>" and stdin_meta["corpus_mode"] == "tokenized copy"
    assert stdin_meta["corpus"][0]["sha256"] == t["corpus"][0]["sha256"]


def test_cli_text_to_stdout_and_context_vectors(tmp_path, zipf_file):
    r = run_vecpipe("train-w2v", zipf_file, "--dim", "8", "--epochs", "1", "--min-count", "2",
                    "--context-vectors", tmp_path / "ctx.txt")
    assert r.returncode == 0, r.stderr
    n, d = map(int, r.stdout.split(b"\n", 1)[0].split())
    assert d == 8 and len(r.stdout.splitlines()) == n + 1
    ctx = read_vectors(tmp_path / "ctx.txt")
    assert len(ctx) == n and ctx.dim == 8


@pytest.mark.parametrize("args,code,message", [
    (["{missing}"], 66, "no such file"),
    (["{corpus}", "--svd", "10"], 64, "--svd and --ngram-order apply to --model ppmi only"),
    (["{corpus}", "--fasttext-bin", "{out}.bin"], 64, "--fasttext-bin needs --model fasttext"),
    (["{corpus}", "--min-count", "100000"], 65, "no word occurs --min-count 100000 times"),
    (["{corpus}", "--to", "vecdir"], 64, "give it a name with -o"),
    (["{corpus}", "-o", "{tmp}/bad.txt/dir/v.vecdir"], 73, "cannot create"),
    (["{bad}"], 65, "bad.txt:3: invalid UTF-8"),
    (["{corpus}", "--window", "0"], 64, "--window"),
])
def test_cli_errors_exit_codes_and_no_output(tmp_path, zipf_file, args, code, message):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"a b\nc d\n\xff\n")
    fill = {"missing": tmp_path / "nope.txt", "corpus": zipf_file, "out": tmp_path / "o", "tmp": tmp_path, "bad": bad}
    argv = [a.format(**fill) for a in args]
    if "-o" not in argv and "--to" not in argv:
        argv += ["-o", str(tmp_path / "o.vecdir")]
    before = set(tmp_path.iterdir())
    r = run_vecpipe("train-w2v", *argv, "--epochs", "1", "--dim", "4")
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert set(tmp_path.iterdir()) == before  # no output, no temporary left behind


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path, zipf_file):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "o.vecdir"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vecpipe", "train-w2v", "-", "-o", str(out), "--min-count", "1"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=dict(os.environ, TMPDIR=str(tmpdir)),
    )
    proc.stdin.write(zipf_file.read_bytes())  # part of the corpus; the rest never comes
    proc.stdin.flush()
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "tmp"]
    assert list(tmpdir.iterdir()) == []  # the tokenized copy is gone too


def test_train_help_does_not_import_gensim():
    code = (
        "import sys; from vecpipe.cli.main import main\n"
        "rc = main(['train-w2v', '--help'])\n"
        "print(rc, [m for m in ('gensim', 'scipy', 'torch', 'jieba') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("0 []")


def test_ctrl_c_during_training_exits_130_and_leaves_nothing(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "o.vecdir"
    corpus = "".join(" ".join(line) + "\n" for line in zipf_lines(n_lines=8000)).encode()
    proc = subprocess.Popen(
        # 200 epochs: far longer than the wait below
        [sys.executable, "-m", "vecpipe", "train-w2v", "-", "-o", str(out), "--min-count", "1", "--epochs", "200",
         "--context-vectors", str(tmp_path / "ctx.txt")],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=dict(os.environ, TMPDIR=str(tmpdir)),
    )
    proc.stdin.write(corpus)
    proc.stdin.close()
    deadline = time.time() + 30
    while not corpus_copy_made(proc.pid, tmpdir) and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # reading is done and gensim's threads are training
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert list(tmpdir.iterdir()) == []
