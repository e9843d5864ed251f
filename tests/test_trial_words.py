"""A new user's trial of the word-vector commands (convert, knn, sim, eval
analogy/similarity): each test pins one thing a user tripped on, on the real
small vectors where they matter (pku-morpheme-cbow.50d.txt as published)."""
import json
import pickle

import numpy as np
import pytest


def _flat(stdout):
    return [line.split("\t") for line in stdout.splitlines()]


@pytest.fixture
def pku_vecdir(tmp_path, invoke, pku):
    out = tmp_path / "pku.vecdir"
    r = invoke("convert", pku, "-o", out)
    assert r.exit_code == 0, r.stderr
    return out


# ---------------------------------------------------------------- convert


def test_output_named_with_a_trailing_slash_is_a_vecdir(tmp_path, invoke, pku):
    """`vecpipe convert sgns.zhihu.word.bz2 -o zhihu.vec/` (the first example of
    convert --help): the slash says folder, so a vecdir, not a text file `zhihu.vec`."""
    r = invoke("convert", pku, "-o", f"{tmp_path / 'zhihu.vec'}/")
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "zhihu.vec"
    assert out.is_dir()
    assert (out / "vocab.txt").read_text(encoding="utf-8").split("\n")[:2] == ["上市", "上网"]
    assert np.load(out / "vectors.npy").shape == (583, 50)
    assert json.loads((out / "meta.json").read_text())["rows"] == 583


def test_an_npy_name_is_refused_not_made_a_folder(tmp_path, invoke, pku):
    """As train-w2v: `convert X -o x.npy` made a vecdir folder named x.npy, which numpy.load cannot open."""
    r = invoke("convert", pku, "-o", tmp_path / "x.npy")
    assert r.exit_code == 64 and "holds no words" in r.stderr, r.stderr
    assert not (tmp_path / "x.npy").exists()
    r = invoke("convert", pku, "-o", tmp_path / "x.npy", "--to", "vecdir")  # asked for: made
    assert r.exit_code == 0 and (tmp_path / "x.npy" / "vectors.npy").is_file(), r.stderr


def test_a_pickled_gensim_file_is_named_as_such_by_convert(tmp_path, invoke):
    """knn -m model.kv already says what a pickle is; convert said 'cannot find a vector'."""
    kv = tmp_path / "model.kv"
    kv.write_bytes(pickle.dumps({"not": "vectors"}, protocol=4))
    r = invoke("convert", kv, "-o", tmp_path / "out.vecdir")
    assert r.exit_code == 65
    assert r.stderr.count("\n") == 1 and "pickled" in r.stderr and "save_word2vec_format" in r.stderr
    assert not (tmp_path / "out.vecdir").exists()
    r = invoke("convert", "-", input=kv.read_bytes())  # stdin too
    assert r.exit_code == 65 and "pickled" in r.stderr


# ---------------------------------------------------------------- knn --analogy


def test_analogy_oov_warning_names_the_unknown_word(invoke, pku_vecdir):
    r = invoke("knn", "-m", pku_vecdir, "--analogy", "上市", "股票", "不存在的词", "-k", "1")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["error"] == "not in the vocabulary: 不存在的词"
    assert "(e.g. 不存在的词)" in r.stderr and "(e.g. -)" not in r.stderr


def test_analogy_min_score_drops_weak_answers(invoke, pku_vecdir):
    """--min-score was ignored by --analogy; 3CosAdd scores as gensim's most_similar."""
    r = invoke("knn", "-m", pku_vecdir, "--analogy", "上市", "股票", "上网", "-k", "3", "--flat")
    assert r.exit_code == 0, r.stderr
    rows = _flat(r.stdout)
    assert [w for _, _, w, _ in rows] == ["电话", "发票", "账单"]  # gensim: most_similar(positive=[股票, 上网], negative=[上市])
    r = invoke("knn", "-m", pku_vecdir, "--analogy", "上市", "股票", "上网", "-k", "3", "--flat", "--min-score", "0.75")
    assert r.exit_code == 0, r.stderr
    assert [w for _, _, w, _ in _flat(r.stdout)] == ["电话"]


@pytest.mark.parametrize("extra, what", [
    (["--metric", "euclidean"], "--metric"),
    (["--metric", "dot"], "--metric"),
    (["--faiss", "Flat"], "--faiss"),
])
def test_analogy_refuses_options_it_would_ignore(invoke, pku_vecdir, extra, what):
    r = invoke("knn", "-m", pku_vecdir, "--index", pku_vecdir, "--analogy", "上市", "股票", "上网", *extra)
    assert r.exit_code == 64, r.stderr
    assert what in r.stderr and r.stdout == ""


def test_method_without_analogy_is_a_usage_error(invoke, pku_vecdir):
    r = invoke("knn", "-m", pku_vecdir, "--method", "mul", "上市")
    assert r.exit_code == 64 and "--analogy" in r.stderr
    r = invoke("knn", "-m", pku_vecdir, "--method", "add", "--analogy", "上市", "股票", "上网", "-k", "1")
    assert r.exit_code == 0, r.stderr


# ---------------------------------------------------------------- knn --index FILE.parquet


def test_a_parquet_file_is_an_index(tmp_path, invoke, pku_vecdir):
    """convert's Parquet (word + vector columns) as --index: it was read as JSONL
    ('invalid UTF-8'); its ids are the words, as in a JSONL {word, vector} index."""
    pq_file = tmp_path / "pku.parquet"
    assert invoke("convert", pku_vecdir, "-o", pq_file).exit_code == 0
    want = invoke("knn", "-m", pku_vecdir, "--index", pku_vecdir, "上市", "-k", "3", "--flat")
    assert want.exit_code == 0, want.stderr
    assert [w for _, _, w, _ in _flat(want.stdout)] == ["上市", "股票", "市场"]
    r = invoke("knn", "-m", pku_vecdir, "--index", pq_file, "上市", "-k", "3", "--flat")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == want.stdout
    folder = tmp_path / "shards"  # a folder of such shards: the words too
    folder.mkdir()
    pq_file.rename(folder / "part-0.parquet")
    r = invoke("knn", "-m", pku_vecdir, "--index", folder, "上市", "-k", "3", "--flat")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == want.stdout


# ---------------------------------------------------------------- progress on a terminal


@pytest.mark.parametrize("analogy", [False, True])
def test_knn_query_stream_shows_progress_on_a_terminal_only(tmp_path, pku_vecdir, analogy):
    """A long stream of queries (a million words against a big vocabulary takes
    minutes) showed nothing on a terminal; now a bar counts the queries answered."""
    import io

    from vecpipe.cli.main import main
    from vecpipe.core.io.env import Environment

    words = (pku_vecdir / "vocab.txt").read_text(encoding="utf-8").split("\n")[:30]
    lines = [" ".join(words[i : i + 3]) for i in range(0, 30, 3)] if analogy else words
    queries = tmp_path / "q.txt"
    queries.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["knn", "-m", str(pku_vecdir), "--queries", str(queries), "-k", "2", *(["--analogy"] if analogy else [])]
    outputs = []
    for tty in (True, False):
        out, err = io.BytesIO(), io.StringIO()
        env = Environment(stdin=io.BytesIO(), stdout=out, stderr=err, stderr_isatty=tty, debug=False)
        assert main(args, env=env) == 0, err.getvalue()
        outputs.append(out.getvalue())
        if tty:
            assert f"{len(lines)} queries" in err.getvalue()
        else:
            assert err.getvalue() == ""
    assert outputs[0] == outputs[1] and outputs[0].count(b"\n") == len(lines)


# ---------------------------------------------------------------- sim


def test_sim_matrix_warns_of_texts_with_no_known_word(tmp_path, invoke, pku_vecdir):
    """Pairs give such a side null with a reason; --matrix gave silent 0.0 rows."""
    texts = tmp_path / "words.txt"
    texts.write_text("上市\n股票\n不存在\n", encoding="utf-8")
    r = invoke("sim", "-m", pku_vecdir, "--matrix", texts)
    assert r.exit_code == 0, r.stderr
    rows = [json.loads(line)["scores"] for line in r.stdout.splitlines()]
    assert rows[0][1] == pytest.approx(0.8693774, abs=1e-6)  # gensim: similarity('上市', '股票')
    assert rows[2] == [0.0, 0.0, 0.0]
    assert "1 of 3 texts have no known word" in r.stderr and "不存在" in r.stderr


def test_faiss_on_the_model_words_says_how(invoke, pku_vecdir):
    """`knn -m words.vecdir --faiss HNSW32 上市` said only '--faiss needs --index';
    the command it points to gives the exact answer (the query word left out)."""
    r = invoke("knn", "-m", pku_vecdir, "--faiss", "Flat", "上市")
    assert r.exit_code == 64
    assert f"--index {pku_vecdir} --exclude-self" in r.stderr
    r = invoke("knn", "-m", pku_vecdir, "--index", pku_vecdir, "--exclude-self", "--faiss", "Flat", "上市", "-k", "3",
               "--flat")
    assert r.exit_code == 0, r.stderr
    assert [w for _, _, w, _ in _flat(r.stdout)] == ["股票", "市场", "商标"]  # gensim most_similar('上市', topn=3)


def test_prompt_is_refused_where_words_are_looked_up(tmp_path, invoke, pku_vecdir):
    """Words among -m word vectors are looked up, never encoded: a --prompt was dropped silently."""
    r = invoke("knn", "-m", pku_vecdir, "--prompt", "query: ", "上市")
    assert r.exit_code == 64 and "--prompt" in r.stderr and r.stdout == ""
    # texts averaged from word vectors take no prompt either (the static model drops it): knn --index, sim
    r = invoke("knn", "-m", pku_vecdir, "--index", pku_vecdir, "--prompt", "query: ", "上市")
    assert r.exit_code == 64 and "--prompt" in r.stderr and r.stdout == ""
    pairs = tmp_path / "p.tsv"
    pairs.write_text("上市\t股票\n", encoding="utf-8")
    for extra in ([], ["--matrix"]):
        r = invoke("sim", "-m", pku_vecdir, pairs, "--prompt", "query: ", *extra)
        assert r.exit_code == 64 and "--prompt" in r.stderr and r.stdout == ""


# ---------------------------------------------------------------- sparse PPMI vectors (the CWV sparse format)


def _write_sparse(path, words, m):
    """The Chinese-Word-Vectors sparse text: `N D`, then `word idx:val ...` (a row may be empty)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(words)} {m.shape[1]}\n")
        for w, row in zip(words, m):
            nz = np.flatnonzero(row)
            f.write(" ".join([w] + [f"{j}:{float(row[j])!r}" for j in nz]) + "\n")
    return path


@pytest.fixture
def ppmi(tmp_path):
    rng = np.random.default_rng(3)
    words = ["甲", "乙", "丙", "丁", "戊", "己", "庚", "辛", "壬", "癸", "子", "丑"]
    m = rng.gamma(1.0, 1.0, (len(words), 40)).astype(np.float32) * (rng.random((len(words), 40)) < 0.4)
    return _write_sparse(tmp_path / "ppmi.txt", words, m), words, m


def test_eval_similarity_on_sparse_vectors_is_the_dense_figure(tmp_path, invoke, ppmi):
    """It was exit 70 (internal error); the CWV toolkit scores PPMI similarity on the sparse rows."""
    from scipy.stats import pearsonr

    path, words, m = ppmi
    pairs = [(words[i], words[j], float(s)) for (i, j), s in zip([(0, 1), (0, 2), (3, 4), (5, 6), (7, 1), (2, 9)],
                                                                  [9.0, 7.5, 6.0, 3.0, 1.5, 0.5])]
    data = tmp_path / "pairs.txt"
    data.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs), encoding="utf-8")
    r = invoke("-q", "eval", "similarity", "-m", path, data)
    assert r.exit_code == 0, r.stderr
    got = json.loads(r.stdout)["metrics"]
    x = m.astype(np.float64) / np.linalg.norm(m.astype(np.float64), axis=1, keepdims=True)
    cos = [float(x[words.index(a)] @ x[words.index(b)]) for a, b, _ in pairs]
    assert got["pearson"] == pytest.approx(pearsonr([s for *_, s in pairs], cos).statistic, abs=1e-9)
    dense = tmp_path / "dense.vec"
    assert invoke("convert", path, "--to", "word2vec", "-o", dense).exit_code == 0
    r = invoke("-q", "eval", "similarity", "-m", dense, data)
    assert json.loads(r.stdout)["metrics"]["spearman"] == pytest.approx(got["spearman"], abs=1e-12)


def test_convert_svd_makes_sparse_ppmi_dense(tmp_path, invoke, ppmi):
    """knn, sim and eval analogy refuse sparse vectors and say 'convert with --svd
    first', but convert had no --svd: U S^0.5 of the truncated SVD, as train-w2v's."""
    path, words, m = ppmi
    out = tmp_path / "svd.vecdir"
    r = invoke("convert", path, "--svd", "4", "-o", out)
    assert r.exit_code == 0, r.stderr
    got = np.load(out / "vectors.npy")
    u, s, _ = np.linalg.svd(m.astype(np.float64), full_matrices=False)
    want = u[:, :4] * s[:4] ** 0.5
    want *= np.sign(want[np.argmax(np.abs(u[:, :4]), axis=0), np.arange(4)])  # each column's largest |entry| positive
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert (out / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1] == words
    assert json.loads((out / "meta.json").read_text())["made_by"]["options"]["svd"] == 4
    r = invoke("knn", "-m", out, "甲", "-k", "1")  # now searchable
    assert r.exit_code == 0, r.stderr
    r = invoke("convert", path, "--svd", "4", "--svd-eig", "0", "--to", "word2vec")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_allclose(np.loadtxt(r.stdout.splitlines()[1:], usecols=range(1, 5)), want / s[:4] ** 0.5,
                               atol=1e-4)


def test_convert_svd_refuses_dense_input_and_too_many_dimensions(invoke, ppmi, pku):
    r = invoke("convert", pku, "--svd", "4")
    assert r.exit_code == 64 and "sparse" in r.stderr
    r = invoke("convert", ppmi[0], "--svd", "12")
    assert r.exit_code == 64 and "--svd 12" in r.stderr


@pytest.mark.parametrize("cmd", [["knn", "甲"], ["eval", "analogy", "ANALOGIES"], ["sim", "PAIRS"]])
def test_sparse_refusals_name_convert_svd(tmp_path, invoke, ppmi, cmd):
    vecdir = tmp_path / "ppmi.vecdir"
    assert invoke("convert", ppmi[0], "-o", vecdir).exit_code == 0
    (tmp_path / "a.txt").write_text("甲 乙 丙 丁\n", encoding="utf-8")
    (tmp_path / "p.tsv").write_text("甲\t乙\n", encoding="utf-8")
    cmd = [{"ANALOGIES": tmp_path / "a.txt", "PAIRS": tmp_path / "p.tsv"}.get(c, c) for c in cmd]
    r = invoke(*cmd[:-1], "-m", vecdir, cmd[-1])
    assert r.exit_code == 64 and "vecpipe convert" in r.stderr and "--svd" in r.stderr


@pytest.mark.parametrize("cmd", [["knn", "-m", "VECDIR", "上市"], ["convert", "VECDIR", "--to", "word2vec"],
                                 ["sim", "-m", "VECDIR", "PAIRS"]])
def test_a_file_output_named_with_a_trailing_slash_is_refused(tmp_path, invoke, pku_vecdir, cmd):
    """`-o results/` wrote a FILE named results; the slash says folder (as cp and mv read it)."""
    pairs = tmp_path / "p.tsv"
    pairs.write_text("上市\t股票\n", encoding="utf-8")
    cmd = [{"VECDIR": pku_vecdir, "PAIRS": pairs}.get(c, c) for c in cmd]
    r = invoke(*cmd, "-o", f"{tmp_path / 'results'}/")
    assert r.exit_code == 73, r.stderr
    assert "results/" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_sim_matrix_too_large_for_memory_is_not_an_internal_error(tmp_path, pku_vecdir):
    """200,000 lines to --matrix ended in 'internal error: MemoryError' (exit 70);
    the size is the user's request: say it, and what to use instead."""
    import resource
    import subprocess
    import sys

    texts = tmp_path / "many.txt"
    texts.write_text("".join(f"上市{i}\n" for i in range(40_000)), encoding="utf-8")  # 40k x 40k float32: 6 GiB

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    p = subprocess.run([sys.executable, "-m", "vecpipe", "sim", "-m", str(pku_vecdir), "--matrix", str(texts), "-o",
                        str(tmp_path / "m.npy")], preexec_fn=limit, capture_output=True, text=True, timeout=120)
    assert p.returncode == 64, p.stderr
    assert "40,000 x 40,000" in p.stderr and "vecpipe knn" in p.stderr and "internal error" not in p.stderr
    assert not (tmp_path / "m.npy").exists()


def test_k_beyond_the_index_is_the_whole_index_in_bounded_memory(tmp_path, pku_vecdir):
    """-k 1000000000 against a 583-row index was killed by the kernel (137, all the
    machine's memory taken by padding); analogies listed the question words, -inf."""
    import resource
    import subprocess
    import sys

    q = tmp_path / "q.npy"
    np.save(q, np.load(pku_vecdir / "vectors.npy")[:3])

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    def run(*args):
        p = subprocess.run([sys.executable, "-m", "vecpipe", "knn", *map(str, args), "-k", "1000000000", "--flat"],
                           preexec_fn=limit, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        return _flat(p.stdout)

    rows = run("--index", pku_vecdir, "--queries", q)
    assert len(rows) == 3 * 583 and rows[0][2] == "上市" and rows[1][2] == "股票"
    rows = run("--index", pku_vecdir, "--queries", q, "--exclude-self")
    assert len(rows) == 3 * 582 and "上市" not in [w for label, _, w, _ in rows if label == "0"]
    rows = run("-m", pku_vecdir, "--analogy", "上市", "股票", "上网")
    assert len(rows) == 580 and not {"上市", "股票", "上网"} & {w for *_, w, _ in rows}
    assert all(s != "-inf" for *_, s in rows)
