"""Reading and writing every word-vector format, against gensim's reader."""
import bz2
import gzip
import itertools
import lzma
import zipfile

import numpy as np
import pytest
from gensim.models import KeyedVectors

from conftest import cjk_words, write_w2v_text
from vecpipe.core.vectors.convert import ConvertOptions, convert
from vecpipe.core.errors import DataError
from vecpipe.core.vectors.detect import detect_format
from vecpipe.core.vectors.readwrite import read_vectors, write_vectors
from vecpipe.core.vectors.vecdir import open_vecdir
from vecpipe.core.vectors.wordvectors import FORMATS, ReadStats, WordVectors
from vecpipe.core.io.inputs import open_input

SUFFIX = {"word2vec": ".txt", "glove": ".glove.txt", "word2vec-bin": ".bin", "sparse": ".sparse.txt", "jsonl": ".jsonl",
          "vecdir": ".vecdir", "parquet": ".parquet"}


def assert_same(a: WordVectors, words, x):
    assert a.words == list(words)
    np.testing.assert_array_equal(a.dense(), x)


def test_reads_real_headerless_crlf_file_like_gensim(pku):
    ours = read_vectors(pku)
    kv = KeyedVectors.load_word2vec_format(str(pku), binary=False, no_header=True)
    assert len(ours) == len(kv.index_to_key) == 583
    assert ours.words == kv.index_to_key
    np.testing.assert_array_equal(ours.vectors, kv.vectors)
    assert ours.dim == 50


@pytest.mark.parametrize("src_fmt,dst_fmt", list(itertools.product(FORMATS, FORMATS)))
def test_round_trip_every_pair_generated(tmp_path, cjk_vectors, src_fmt, dst_fmt):
    words, x = cjk_vectors
    x = x.copy()
    x[::7, ::3] = 0.0  # zeros, so the sparse format has something to leave out
    src = tmp_path / ("in" + SUFFIX[src_fmt])
    dst = tmp_path / ("out" + SUFFIX[dst_fmt])
    write_vectors(WordVectors(words, x), src, src_fmt)
    assert detect_format(src, None if src_fmt == "vecdir" else open_input(src)) == src_fmt
    convert(src, dst, ConvertOptions(dst_format=dst_fmt))
    assert_same(read_vectors(dst, dst_fmt), words, x)


@pytest.mark.parametrize("dst_fmt", FORMATS)
def test_round_trip_real_file(tmp_path, pku, dst_fmt):
    ref = read_vectors(pku)
    dst = tmp_path / ("out" + SUFFIX[dst_fmt])
    convert(pku, dst, ConvertOptions(dst_format=dst_fmt))
    back = read_vectors(dst)
    assert_same(back, ref.words, ref.vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_reads_our_word2vec_output_identically(tmp_path, pku, binary):
    ref = read_vectors(pku)
    out = tmp_path / ("out.bin" if binary else "out.txt")
    convert(pku, out, ConvertOptions())
    kv = KeyedVectors.load_word2vec_format(str(out), binary=binary)
    assert kv.index_to_key == ref.words
    np.testing.assert_array_equal(kv.vectors, ref.vectors)


def test_we_read_gensim_output_identically(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    kv = KeyedVectors(vector_size=x.shape[1])
    kv.add_vectors(words, x)
    for binary in (False, True):
        path = tmp_path / f"g{binary}.w2v"
        kv.save_word2vec_format(str(path), binary=binary)
        assert_same(read_vectors(path), words, x)


def test_vecdir_opens_as_mmap(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    write_vectors(WordVectors(words, x), tmp_path / "v", "vecdir")
    wv = open_vecdir(tmp_path / "v")
    assert isinstance(wv.vectors, np.memmap)
    assert (tmp_path / "v" / "meta.json").is_file()
    assert np.load(tmp_path / "v" / "vectors.npy").shape == (300, 16)


@pytest.mark.parametrize("kind", ["bz2", "gz", "xz", "zip"])
def test_compressed_inputs(tmp_path, cjk_vectors, kind):
    words, x = cjk_vectors
    plain = write_w2v_text(tmp_path / "v.txt", words, x).read_bytes()
    path = tmp_path / f"v.txt.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("v.txt", plain)
    else:
        path.write_bytes({"bz2": bz2, "gz": gzip, "xz": lzma}[kind].compress(plain))
    assert_same(read_vectors(path), words, x)


def test_compressed_output_by_suffix(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    write_vectors(WordVectors(words, x), tmp_path / "o.txt.gz", "word2vec")
    assert gzip.decompress((tmp_path / "o.txt.gz").read_bytes()).startswith(b"300 16\n")
    assert_same(read_vectors(tmp_path / "o.txt.gz"), words, x)


def test_truncated_bz2_is_a_data_error(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    data = bz2.compress(write_w2v_text(tmp_path / "v.txt", words, x).read_bytes())
    (tmp_path / "cut.bz2").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated|corrupt|cannot read"):
        read_vectors(tmp_path / "cut.bz2")


def test_header_lines_crlf_and_trailing_spaces(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    for header, end, trail in itertools.product([True, False], ["\n", "\r\n"], ["", " "]):
        path = write_w2v_text(tmp_path / "v.txt", words, x, header=header, line_end=end, trailing=trail)
        assert_same(read_vectors(path), words, x)


def test_header_count_disagrees(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    path = write_w2v_text(tmp_path / "v.txt", words, x)
    text = path.read_text().replace("300 16", "305 16", 1)
    path.write_text(text)
    with pytest.raises(DataError, match=r"v.txt:1: the header says 305 rows but the file has 300"):
        read_vectors(path)


def test_header_dim_disagrees_names_the_line(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    path = write_w2v_text(tmp_path / "v.txt", words, x)
    path.write_text(path.read_text().replace("300 16", "300 15", 1))
    with pytest.raises(DataError, match=r"v.txt:2: expected 15 values after the word, found 16"):
        read_vectors(path)


def test_short_row_is_reported_or_skipped(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    path = write_w2v_text(tmp_path / "v.txt", words, x, header=False)
    lines = path.read_text().split("\n")
    lines[9] = lines[9].rsplit(" ", 1)[0]  # line 10 loses its last value
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"v.txt:10: expected 16 values after the word, found 15"):
        read_vectors(path)
    stats = ReadStats()
    wv = read_vectors(path, on_error="skip", stats=stats)
    assert stats.skipped == 1
    assert_same(wv, words[:9] + words[10:], np.delete(x, 9, axis=0))


def test_bad_number_names_line(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    path = write_w2v_text(tmp_path / "v.txt", words, x, header=False)
    lines = path.read_text().split("\n")
    lines[2] = lines[2].rsplit(" ", 1)[0] + " 1.2.3"
    path.write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"v.txt:3: not a number: '1.2.3'"):
        read_vectors(path)


def test_duplicates_keep_first(tmp_path, cjk_vectors, caplog):
    words, x = cjk_vectors
    dup_words = words[:5] + [words[1], words[3]]
    dup_x = np.vstack([x[:5], x[10:12]])
    path = write_w2v_text(tmp_path / "v.txt", dup_words, dup_x)
    stats = ReadStats()
    wv = read_vectors(path, stats=stats)
    assert stats.duplicates == 2
    assert_same(wv, words[:5], x[:5])
    assert "2 duplicate words" in caplog.text


def test_unicode_errors(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    path = write_w2v_text(tmp_path / "v.txt", words[:3], x[:3], header=False)
    data = path.read_bytes().split(b"\n")
    data[1] = b"\xff\xfe" + data[1]
    path.write_bytes(b"\n".join(data))
    with pytest.raises(DataError, match=r"v.txt:2: invalid UTF-8"):
        read_vectors(path)
    wv = read_vectors(path, unicode_errors="replace")
    assert wv.words[1] == "\ufffd\ufffd" + words[1]
    assert read_vectors(path, unicode_errors="ignore").words[1] == words[1]


def test_words_with_spaces_glove_style(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("a 1 2 3\nnew york 4 5 6\n. . . 7 8 9\n")
    wv = read_vectors(path)
    assert wv.words == ["a", "new york", ". . ."]
    np.testing.assert_array_equal(wv.vectors[2], [7, 8, 9])


def test_limit_reads_first_rows(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    path = write_w2v_text(tmp_path / "v.txt", words, x)
    assert_same(read_vectors(path, limit=7), words[:7], x[:7])
    assert len(read_vectors(path, limit=0)) == 0


def test_sparse_ppmi_format(tmp_path):
    path = tmp_path / "ppmi.txt"
    path.write_text("3 10\n中国 1:0.5 7:1.25\n北京 0:2.0\n空 \n")
    wv = read_vectors(path)
    assert wv.is_sparse and wv.vectors.shape == (3, 10)
    dense = wv.dense()
    assert dense[0, 1] == 0.5 and dense[0, 7] == 1.25 and dense[1, 0] == 2.0 and dense[2].sum() == 0
    write_vectors(wv, tmp_path / "back.txt", "sparse")
    assert (tmp_path / "back.txt").read_text() == "3 10\n中国 1:0.5 7:1.25\n北京 0:2.0\n空\n"


def test_float16_and_normalize(tmp_path, cjk_vectors):
    words, x = cjk_vectors
    src = write_w2v_text(tmp_path / "v.txt", words, x)
    convert(src, tmp_path / "n", ConvertOptions(normalize=True, dtype="float16"))
    wv = open_vecdir(tmp_path / "n")
    assert wv.vectors.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(wv.vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)
    assert wv.meta["normalized"] is True and wv.meta["dtype"] == "float16"


def test_vocab_filter_and_lower(tmp_path):
    src = tmp_path / "v.txt"
    src.write_text("Apple 1 0\napple 2 0\nBanana 3 0\ncherry 4 0\n")
    (tmp_path / "keep.txt").write_text("banana 17\ncherry\nnope\n")
    convert(src, tmp_path / "o.jsonl", ConvertOptions(lower=True, vocab=str(tmp_path / "keep.txt")))
    wv = read_vectors(tmp_path / "o.jsonl")
    assert wv.words == ["banana", "cherry"]
    convert(src, tmp_path / "o2.jsonl", ConvertOptions(lower=True))
    wv = read_vectors(tmp_path / "o2.jsonl")
    assert wv.words == ["apple", "banana", "cherry"] and wv.vectors[0, 0] == 1.0


def test_nonfinite_values_are_refused_not_written(tmp_path):
    # (was: they survived text) NaN and infinity are bad input now; see test_trust_formats.py
    wv = WordVectors(["a", "b"], np.array([[np.nan, 1.0], [np.inf, -np.inf]], dtype=np.float32))
    with pytest.raises(DataError, match=r"row 1 \(word 'a'\) holds NaN"):
        write_vectors(wv, tmp_path / "o.txt", "word2vec")
    assert not (tmp_path / "o.txt").exists()


def test_large_file_uses_fast_and_careful_paths_alike(tmp_path, monkeypatch):
    """Chunks that the fast parser accepts and ones it refuses give the same rows."""
    import vecpipe.core.vectors.text as text

    words = cjk_words(3000, seed=3)
    x = np.random.default_rng(1).standard_normal((3000, 8)).astype(np.float32)
    path = write_w2v_text(tmp_path / "v.txt", words, x, trailing=" ")
    monkeypatch.setattr(text, "CHUNK_BYTES", 4096)
    lines = path.read_text().split("\n")
    lines[1500] = lines[1500].replace(" ", "\t", 1)  # one chunk goes the careful way
    path.write_text("\n".join(lines))
    assert_same(read_vectors(path), words, x)
