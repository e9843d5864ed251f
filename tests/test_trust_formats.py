"""Word-vector files that lie: NaN/Inf values, a UTF-8 BOM, broken vecdirs,
headers that disagree with the body, and sparse vectors that must stay sparse."""
import gzip
import io

import numpy as np
import orjson
import pytest
from gensim.models import KeyedVectors
from scipy import sparse

from conftest import run_vecpipe, write_w2v_text
from vecpipe.core.errors import DataError
from vecpipe.core.vectors.detect import detect_format
from vecpipe.core.vectors.readwrite import read_vectors, write_vectors
from vecpipe.core.vectors.vecdir import open_vecdir
from vecpipe.core.vectors.wordvectors import ReadStats, WordVectors
from vecpipe.core.io.inputs import open_input

BOM = b"\xef\xbb\xbf"
X3 = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32)


def binary_w2v(words, x) -> bytes:
    out = [f"{len(words)} {x.shape[1]}\n".encode()]
    out += [w.encode() + b" " + np.asarray(r, "<f4").tobytes() + b"\n" for w, r in zip(words, x)]
    return b"".join(out)


def one_error_line(result) -> str:
    assert result.exit_code == 65, (result.exit_code, result.output)
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1 and "Traceback" not in result.stderr and "internal" not in result.stderr, result.stderr
    return lines[0]


# ---------------------------------------------------------------- 1. NaN and Inf

BAD_VALUE_FILES = {
    # name: (content, the line that names the bad row)
    "nan.txt": (b"3 3\na 1 2 3\nb 1 nan 3\nc 7 8 9\n", 3),
    "inf.vec": (b"3 3\na 1 2 3\nb 1 inf 3\nc 7 8 9\n", 3),
    "glove.txt": (b"a 1 2 3\nb -inf 2 3\nc 7 8 9\n", 2),
    "overflow.txt": (b"a 1 2 3\nb 1e39 2 3\nc 7 8 9\n", 2),  # finite as float64, inf as float32
    "nan-crlf.txt": (b"3 3\r\na 1 2 3 \r\nb NaN 2 3 \r\nc 7 8 9 \r\n", 3),
    "sparse.txt": (b"3 3\na 0:1\nb 1:nan\nc 2:9\n", 3),
    "sparse-overflow.txt": (b"3 3\na 0:1\nb 1:-4e38\nc 2:9\n", 3),
    "null.jsonl": (b'{"word":"a","vector":[1,2,3]}\n{"word":"b","vector":[1,null,3]}\n{"word":"c","vector":[7,8,9]}\n', 2),
    "big.jsonl": (b'{"word":"a","vector":[1,2,3]}\n{"word":"b","vector":[1,2,1e39]}\n{"word":"c","vector":[7,8,9]}\n', 2),
}


@pytest.mark.parametrize("name", BAD_VALUE_FILES)
def test_nonfinite_values_are_bad_input_naming_line_and_word(tmp_path, invoke, name):
    content, line = BAD_VALUE_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    err = one_error_line(invoke("convert", path))
    assert f"{path}:{line}: " in err and "'b'" in err and ("NaN" in err or "infinit" in err), err
    r = invoke("convert", path, "--on-error", "skip", "--to", "jsonl")
    assert r.exit_code == 0, r.output
    recs = [orjson.loads(x) for x in r.stdout.splitlines()]
    assert [x["word"] for x in recs] == ["a", "c"]
    assert [x["vector"][0] for x in recs] == [1.0, 7.0] if "sparse" not in name else True
    assert "skipped 1 bad rows" in r.stderr


def test_nonfinite_in_word2vec_binary(tmp_path, invoke):
    x = X3.copy()
    x[1, 2] = np.inf
    path = tmp_path / "v.bin"
    path.write_bytes(binary_w2v(["a", "b", "c"], x))
    err = one_error_line(invoke("convert", path))
    assert f"{path}: row 2 (word 'b')" in err and "infinit" in err, err
    r = invoke("convert", path, "--on-error", "skip", "--to", "word2vec")
    assert r.exit_code == 0 and "skipped 1 bad rows" in r.stderr
    assert r.stdout == "2 3\na 1.0 2.0 3.0\nc 7.0 8.0 9.0\n"
    kv = KeyedVectors.load_word2vec_format(str(path), binary=True)  # gensim keeps the inf
    ours = read_vectors(path, on_error="skip")
    assert ours.words == [kv.index_to_key[0], kv.index_to_key[2]]
    np.testing.assert_array_equal(ours.vectors, kv.vectors[[0, 2]])


def test_nonfinite_on_the_fast_path_of_a_real_file(tmp_path, pku):
    """A NaN deep inside a real file (parsed by the multi-threaded chunk parser)."""
    lines = pku.read_bytes().split(b"\n")
    parts = lines[400].split(b" ")
    parts[7] = b"nan"
    lines[400] = b" ".join(parts)
    path = tmp_path / "v.txt"
    path.write_bytes(b"\n".join(lines))
    word = parts[0].decode()
    with pytest.raises(DataError, match=f"v.txt:401: the vector of {word!r} holds NaN"):
        read_vectors(path)
    stats = ReadStats()
    ours = read_vectors(path, on_error="skip", stats=stats)
    kv = KeyedVectors.load_word2vec_format(str(pku), binary=False, no_header=True)
    keep = [i for i in range(len(kv.index_to_key)) if i != 400]
    assert stats.skipped == 1
    assert ours.words == [kv.index_to_key[i] for i in keep]
    np.testing.assert_array_equal(ours.vectors, kv.vectors[keep])


def test_nonfinite_in_a_hand_made_vecdir(tmp_path, invoke):
    d = tmp_path / "v.vecdir"
    d.mkdir()
    (d / "vocab.txt").write_text("a\nb\nc\n")
    x = X3.copy()
    x[2, 0] = np.nan
    np.save(d / "vectors.npy", x)
    err = one_error_line(invoke("convert", d))
    assert f"{d / 'vectors.npy'}: row 3 (word 'c'" in err and "NaN" in err, err
    r = invoke("convert", d, "--on-error", "skip")
    assert r.exit_code == 0 and r.stdout == "2 3\na 1.0 2.0 3.0\nb 4.0 5.0 6.0\n"
    # every command that opens it, not only convert
    pairs = tmp_path / "p.tsv"
    pairs.write_text("a\tc\n")
    assert "row 3 (word 'c'" in one_error_line(invoke("sim", "-m", d, pairs))


def test_vecdir_written_by_vecpipe_is_checked_once_and_trusted(tmp_path, invoke):
    """vecpipe checks the values when it writes a vecdir and says so in meta.json
    (`"finite": true`), so opening a huge one stays an mmap; convert checks again."""
    d = tmp_path / "v.vecdir"
    write_vectors(WordVectors(["a", "b", "c"], X3), d, "vecdir")
    assert orjson.loads((d / "meta.json").read_bytes())["finite"] is True
    x = X3.copy()
    x[1, 1] = -np.inf
    np.save(d / "vectors.npy", x)  # changed behind vecpipe's back
    assert isinstance(open_vecdir(d).vectors, np.memmap)  # trusted: no scan at open
    err = one_error_line(invoke("convert", d))
    assert f"{d / 'vectors.npy'}: row 2 (word 'b'" in err


def test_writers_refuse_nonfinite_vectors(tmp_path):
    x = X3.copy()
    x[0, 0] = np.inf
    for fmt, name in (("jsonl", "o.jsonl"), ("word2vec", "o.txt"), ("vecdir", "o.vecdir"), ("sparse", "o.sp")):
        vectors = sparse.csr_matrix(x) if fmt == "sparse" else x
        with pytest.raises(DataError, match="row 1 \\(word 'a'\\).*infinit"):
            write_vectors(WordVectors(["a", "b", "c"], vectors), tmp_path / name, fmt)
        assert not (tmp_path / name).exists()


def test_float16_overflow_is_reported_not_written_as_inf(tmp_path, invoke):
    path = tmp_path / "v.txt"
    path.write_bytes(b"2 2\na 1 2\nb 70000 1\n")
    err = one_error_line(invoke("convert", path, "--dtype", "float16", "-o", tmp_path / "o.vecdir"))
    assert "'b'" in err and "float16" in err, err
    assert not (tmp_path / "o.vecdir").exists()


# ---------------------------------------------------------------- 2. a UTF-8 BOM

BOM_FILES = {
    "w2v.txt": b"2 3\n\xe4\xb8\xad 1 2 3\nb 4 5 6\n",
    "w2v-crlf.vec": b"2 3\r\n\xe4\xb8\xad 1 2 3 \r\nb 4 5 6 \r\n",
    "glove.txt": b"\xe4\xb8\xad 1 2 3\nb 4 5 6\n",
    "sparse.txt": b"2 3\n\xe4\xb8\xad 0:1 1:2 2:3\nb 0:4 1:5 2:6\n",
    "sparse-noheader.txt": b"\xe4\xb8\xad 0:1 1:2 2:3\nb 0:4 1:5 2:6\n",
    "v.jsonl": b'{"word":"\xe4\xb8\xad","vector":[1,2,3]}\n{"word":"b","vector":[4,5,6]}\n',
}


@pytest.mark.parametrize("name", BOM_FILES)
@pytest.mark.parametrize("compressed", [False, True])
def test_leading_bom_is_stripped(tmp_path, name, compressed):
    data = BOM + BOM_FILES[name]
    path = tmp_path / (name + (".gz" if compressed else ""))
    path.write_bytes(gzip.compress(data) if compressed else data)
    wv = read_vectors(path)
    assert wv.words == ["中", "b"]
    np.testing.assert_array_equal(wv.dense(), [[1, 2, 3], [4, 5, 6]])
    if name.startswith(("w2v", "glove")):
        plain = tmp_path / ("plain-" + name)
        plain.write_bytes(BOM_FILES[name])
        kv = KeyedVectors.load_word2vec_format(str(plain), no_header=name.startswith("glove"))
        assert kv.index_to_key == wv.words
        np.testing.assert_array_equal(kv.vectors, wv.vectors)


def test_bom_on_a_real_file_and_on_stdin(tmp_path, pku):
    ref = read_vectors(pku)
    path = tmp_path / "v.txt"
    path.write_bytes(BOM + pku.read_bytes())
    wv = read_vectors(path)
    assert wv.words == ref.words
    np.testing.assert_array_equal(wv.vectors, ref.vectors)
    r = run_vecpipe("convert", "--limit", "2", input=BOM + b"2 2\nx 1 2\ny 3 4\n")
    assert r.returncode == 0 and r.stdout == b"2 2\nx 1.0 2.0\ny 3.0 4.0\n", r.stderr


def test_bom_in_vecdir_vocab_and_vocab_filter(tmp_path, invoke):
    d = tmp_path / "v.vecdir"
    d.mkdir()
    (d / "vocab.txt").write_bytes(BOM + "中\nb\nc\n".encode())
    np.save(d / "vectors.npy", X3)
    assert read_vectors(d).words == ["中", "b", "c"]
    keep = tmp_path / "keep.txt"
    keep.write_bytes(BOM + "中\nc\n".encode())
    r = invoke("convert", d, "--vocab", keep)
    assert r.exit_code == 0 and r.stdout == "2 3\n中 1.0 2.0 3.0\nc 7.0 8.0 9.0\n", r.output


# ---------------------------------------------------------------- 3. broken vecdirs and .npy files


def make_vecdir(tmp_path, name="v.vecdir"):
    d = tmp_path / name
    write_vectors(WordVectors(["a", "b", "c"], X3), d, "vecdir")
    return d


def test_vecdir_vocab_with_invalid_utf8(tmp_path, invoke):
    d = make_vecdir(tmp_path)
    (d / "vocab.txt").write_bytes(b"a\n\xff\xfeb\nc\n")
    err = one_error_line(invoke("convert", d))
    assert err.startswith(f"vecpipe: error: {d / 'vocab.txt'}:2: invalid UTF-8"), err
    r = invoke("convert", d, "--unicode-errors", "replace")
    assert r.exit_code == 0 and "\ufffd\ufffdb 4.0" in r.stdout


@pytest.mark.parametrize("damage", ["header", "data", "object", "one-d", "text", "complex"])
@pytest.mark.parametrize("mmap", [True, False])
def test_vecdir_with_a_broken_vectors_npy(tmp_path, damage, mmap):
    d = make_vecdir(tmp_path)
    npy = d / "vectors.npy"
    if damage == "header":
        npy.write_bytes(npy.read_bytes()[:40])
    elif damage == "data":
        npy.write_bytes(npy.read_bytes()[:-7])
    elif damage == "object":
        np.save(npy, np.array([[1, "x"]] * 3, dtype=object), allow_pickle=True)
    elif damage == "one-d":
        np.save(npy, np.ones(3, np.float32))
    elif damage == "text":
        npy.write_bytes(b"not numpy at all\n")
    else:
        np.save(npy, X3.astype(np.complex64))
    with pytest.raises(DataError) as info:
        open_vecdir(d, mmap=mmap)
    assert info.value.path == str(npy) and info.value.exit_code == 65


def test_vecdir_with_integer_vectors_still_reads(tmp_path):
    d = make_vecdir(tmp_path)
    np.save(d / "vectors.npy", X3.astype(np.int64))
    wv = open_vecdir(d)
    assert wv.vectors.dtype == np.float32
    np.testing.assert_array_equal(wv.vectors, X3)


def test_broken_vecdir_via_cli_exits_65(tmp_path, invoke):
    d = make_vecdir(tmp_path)
    np.save(d / "vectors.npy", np.array([[1, "x"]] * 3, dtype=object), allow_pickle=True)
    err = one_error_line(invoke("convert", d))
    assert f"{d / 'vectors.npy'}: " in err and "object" in err
    pairs = tmp_path / "p.tsv"
    pairs.write_text("a\tb\n")
    assert f"{d / 'vectors.npy'}: " in one_error_line(invoke("sim", "-m", d, pairs))


def test_vecdir_row_counts_disagree(tmp_path, invoke):
    d = make_vecdir(tmp_path)
    with open(d / "vocab.txt", "a") as f:
        f.write("extra\n")
    err = one_error_line(invoke("convert", d))
    assert f"{d / 'vocab.txt'}: 4 words, but vectors.npy has 3 rows" in err, err
    d2 = make_vecdir(tmp_path, "w.vecdir")
    np.save(d2 / "vectors.npy", X3[:, :2])
    err = one_error_line(invoke("convert", d2))
    assert f"{d2 / 'meta.json'}: " in err and "dim 3" in err and "2" in err, err


def test_vecdir_other_files(tmp_path, invoke):
    d = make_vecdir(tmp_path)
    np.save(d / "counts.npy", np.array([1, 2], np.int64))
    assert f"{d / 'counts.npy'}: " in one_error_line(invoke("convert", d))
    (d / "counts.npy").write_bytes(b"\x93NUMPY garbage")
    assert f"{d / 'counts.npy'}: " in one_error_line(invoke("convert", d))
    (d / "counts.npy").unlink()
    (d / "meta.json").write_bytes(b"[1, 2]\n")
    assert f"{d / 'meta.json'}: " in one_error_line(invoke("convert", d))


def test_sparse_vecdir_with_a_broken_npz(tmp_path, invoke):
    d = tmp_path / "s.vecdir"
    write_vectors(WordVectors(["a", "b", "c"], sparse.csr_matrix(X3)), d, "vecdir")
    (d / "vectors.npz").write_bytes((d / "vectors.npz").read_bytes()[:100])
    err = one_error_line(invoke("convert", d))
    assert f"{d / 'vectors.npz'}: " in err


def test_npy_given_as_word_vectors(tmp_path, invoke):
    npy = tmp_path / "x.npy"
    np.save(npy, X3)
    err = one_error_line(invoke("convert", npy))
    assert f"{npy}: " in err and "vecdir" in err, err
    pairs = tmp_path / "p.tsv"
    pairs.write_text("a\tb\n")
    assert f"{npy}: " in one_error_line(invoke("sim", "-m", npy, pairs))


# ---------------------------------------------------------------- 4. sparse stays sparse


def tiny_sparse():
    words = ["中国", "北京", "上海", "天", "地"]
    x = np.zeros((5, 40), dtype=np.float32)
    x[0, [3, 17]] = [1.5, 0.25]
    x[1, 39] = 2.0
    x[3, [0, 1, 2]] = [0.1, 0.2, 0.3]
    x[4, 5] = 7.0
    return words, x


def test_sparse_vecdir_to_txt_and_stdout_stays_sparse(tmp_path, invoke):
    words, x = tiny_sparse()
    d = tmp_path / "ppmi.vecdir"
    write_vectors(WordVectors(words, sparse.csr_matrix(x)), d, "vecdir")
    expected = "5 40\n中国 3:1.5 17:0.25\n北京 39:2.0\n上海\n天 0:0.1 1:0.2 2:0.3\n地 5:7.0\n"
    r = invoke("convert", d)
    assert r.exit_code == 0 and r.stdout == expected, r.output
    out = tmp_path / "ppmi.txt"
    assert invoke("convert", d, "-o", out).exit_code == 0
    assert out.read_text() == expected
    back = read_vectors(out)
    assert back.is_sparse and back.words == words
    np.testing.assert_array_equal(back.dense(), x)
    # --to still decides
    dense = invoke("convert", d, "--to", "word2vec").stdout
    assert dense.startswith("5 40\n中国 0.0 0.0 0.0 1.5")


def test_train_ppmi_then_convert_round_trip(tmp_path, invoke):
    corpus = tmp_path / "c.txt"
    corpus.write_text("天 地 天 人\n山 水 天 风\n天 云 雨 天\n花 鸟 天 鱼 虫\n" * 3)
    vd = tmp_path / "ppmi.vecdir"
    r = invoke("train-w2v", corpus, "--model", "ppmi", "--min-count", "1", "--sample", "0", "--window", "1",
               "--fixed-window", "-o", vd)
    assert r.exit_code == 0, r.output
    ref = open_vecdir(vd)
    assert ref.is_sparse
    txt = tmp_path / "ppmi.txt"
    assert invoke("convert", vd, "-o", txt).exit_code == 0
    stdout = invoke("convert", vd).stdout
    assert stdout == txt.read_text() and stdout.split("\n")[1].startswith("天 2:0.29289")
    dense = invoke("convert", vd, "--to", "word2vec").stdout
    assert len(stdout) < len(dense)
    back = read_vectors(txt)
    assert back.is_sparse and back.words == ref.words
    np.testing.assert_array_equal(back.dense(), ref.dense())
    back2 = tmp_path / "back.vecdir"
    assert invoke("convert", txt, "-o", back2).exit_code == 0
    np.testing.assert_array_equal(open_vecdir(back2).dense(), ref.dense())


# ---------------------------------------------------------------- 5. a sparse file whose first row is empty


@pytest.mark.parametrize("header", [True, False])
def test_sparse_file_with_empty_first_row_is_detected(tmp_path, invoke, header):
    words, x = tiny_sparse()
    order = [2, 0, 1, 3, 4]  # 上海 (no values) first
    words, x = [words[i] for i in order], x[order]
    path = tmp_path / "ppmi.txt"
    write_vectors(WordVectors(words, sparse.csr_matrix(x)), path, "sparse")
    if not header:
        path.write_bytes(path.read_bytes().split(b"\n", 1)[1])
    assert path.read_text().split("\n")[1 if header else 0] == "上海"
    assert detect_format(path, open_input(path)) == "sparse"
    wv = read_vectors(path)
    assert wv.is_sparse and wv.words == words
    np.testing.assert_array_equal(wv.dense()[:, : (40 if header else 40)], x)
    r = invoke("convert", path, "-o", tmp_path / "o.vecdir")
    assert r.exit_code == 0, r.output


def test_binary_is_still_detected_when_a_row_looks_odd(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    path = tmp_path / "v.w2v"  # not .bin: detected from content
    path.write_bytes(binary_w2v(words, x))
    assert detect_format(path, open_input(path)) == "word2vec-bin"
    wv = read_vectors(path)
    kv = KeyedVectors.load_word2vec_format(str(path), binary=True)
    assert wv.words == kv.index_to_key
    np.testing.assert_array_equal(wv.vectors, kv.vectors)


# ---------------------------------------------------------------- siblings: headers that disagree with the body


def test_binary_header_with_fewer_rows_than_the_body(tmp_path, invoke):
    path = tmp_path / "v.bin"
    path.write_bytes(binary_w2v(["a", "b", "c"], X3).replace(b"3 3\n", b"2 3\n", 1))
    err = one_error_line(invoke("convert", path))
    assert f"{path}:1: the header says 2 rows" in err, err


def test_binary_header_with_more_rows_than_the_body(tmp_path, invoke):
    path = tmp_path / "v.bin"
    path.write_bytes(binary_w2v(["a", "b", "c"], X3).replace(b"3 3\n", b"5 3\n", 1))
    err = one_error_line(invoke("convert", path))
    assert f"{path}: " in err and "3 of the 5 rows" in err, err


def test_binary_header_with_the_wrong_dim(tmp_path, invoke):
    path = tmp_path / "v.bin"
    path.write_bytes(binary_w2v(["a", "b", "c"], X3).replace(b"3 3\n", b"3 2\n", 1))
    err = one_error_line(invoke("convert", path))
    assert f"{path}: " in err, err


@pytest.mark.parametrize("content,line,what", [
    (b"3 2\na 0:1\nb 1.5:2\nc 1:1\n", 3, "index"),        # a fractional index
    (b"3 2\na 0:1\nb 1:2 1:3\nc 1:1\n", 3, "twice"),      # the same index twice
    (b"3 2\na 0:1\nb 5:2\nc 1:1\n", 3, "outside"),        # beyond the header's dim
    (b"4 2\na 0:1\nb 1:2\nc 1:1\n", 1, "header says 4 rows"),
])
def test_sparse_rows_that_disagree(tmp_path, invoke, content, line, what):
    path = tmp_path / "s.txt"
    path.write_bytes(content)
    err = one_error_line(invoke("convert", path, "--from", "sparse"))
    assert f"{path}:{line}: " in err and what in err, err


def test_text_header_dim_larger_than_rows(tmp_path, invoke):
    path = write_w2v_text(tmp_path / "v.txt", ["a", "b"], X3[:2])
    path.write_text(path.read_text().replace("2 3", "2 4", 1))
    err = one_error_line(invoke("convert", path))
    assert f"{path}:2: expected 4 values after the word, found 3" in err


class _Pipe(io.RawIOBase):
    """A pipe whose writer wrote its header line alone: each read returns one write."""

    def __init__(self, writes):
        self.writes = list(writes)

    def readable(self):
        return True

    def readinto(self, b):
        if not self.writes:
            return 0
        data = self.writes.pop(0)
        b[: len(data)] = data
        return len(data)


@pytest.mark.parametrize("body,expected", [
    (b"a 0:1 2:3\nb 1:2\n", [[1, 0, 3], [0, 2, 0]]),
    (b"a 1 2 3\nb 4 5 6\n", [[1, 2, 3], [4, 5, 6]]),
])
def test_detection_waits_for_more_than_the_first_write_of_a_pipe(monkeypatch, body, expected):
    """`vecpipe convert x | vecpipe convert -`: the header may arrive alone (it did,
    and sparse or text on stdin was taken for word2vec binary)."""
    import vecpipe.core.vectors.readwrite as readwrite

    monkeypatch.setattr(readwrite, "open_input", lambda path: io.BufferedReader(_Pipe([BOM + b"2 3\n", body])))
    wv = read_vectors("-")
    assert wv.words == ["a", "b"]
    np.testing.assert_array_equal(wv.dense(), expected)


def test_nonfinite_in_a_hand_made_sparse_vecdir(tmp_path, invoke):
    d = tmp_path / "s.vecdir"
    d.mkdir()
    (d / "vocab.txt").write_text("a\nb\nc\n")
    x = np.diag([1, np.nan, 3]).astype(np.float32)
    sparse.save_npz(d / "vectors.npz", sparse.csr_matrix(x))
    err = one_error_line(invoke("convert", d))
    assert f"{d / 'vectors.npz'}: row 2 (word 'b', vocab.txt:2) holds NaN" in err
    r = invoke("convert", d, "--on-error", "skip")
    assert r.exit_code == 0 and r.stdout == "2 3\na 0:1.0\nc 2:3.0\n"


@pytest.mark.parametrize("name,content,message", [
    ("d0.txt", b"2 0\na\nb\n", ":1: the header promises 2 vectors of 0 dimensions"),
    ("d0.bin", b"2 0\na \nb \n", ":1: the header promises 2 vectors of 0 dimensions"),
    ("bom-only.txt", BOM, ":1: cannot find a vector on the first line"),
    ("empty.txt", b"", ":1: cannot find a vector on the first line"),
    ("a.npz", None, ": a .npy array holds vectors without their words"),
])
def test_degenerate_files(tmp_path, invoke, name, content, message):
    path = tmp_path / name
    if content is None:
        np.savez(path, x=X3)
    else:
        path.write_bytes(content)
    err = one_error_line(invoke("convert", path))
    assert f"{path}{message}" in err, err
