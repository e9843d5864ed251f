"""Trust fixes in the model layer: the segmenter, --oov char, int8/binary
quantization equal to sentence-transformers, long lines, load-time errors and
missing local paths."""
import numpy as np
import pytest

from vecpipe.core.encode import int8_ranges, quantize
from vecpipe.core.formats import WordVectors, write_vectors
from vecpipe.core.models import StaticEncoder, load_model
from vecpipe.core.segment import LongestMatch


def _vocab(words):
    return {w: i for i, w in enumerate(words)}


# ---------------------------------------------------------------- 1. the segmenter


MIXED_WORDS = ["借", "万", "对", "吗", "4", "号", "怎么", "不能", "开通", "微粒", "qq", "〇", "二〇", "年", "iphone", "手机"]


@pytest.mark.parametrize("text, tokens", [
    ("借4万对吗", ["借", "4", "万", "对", "吗"]),
    ("QQ号怎么不能开通微粒货", ["QQ", "号", "怎么", "不能", "开通", "微粒", "货"]),
    ("二〇年", ["二〇", "年"]),
    ("iPhone6手机", ["iPhone6", "手机"]),
    ("手机iphone", ["手机", "iphone"]),
    ("a1借b2", ["a1", "借", "b2"]),
])
def test_longest_match_splits_cjk_from_latin_and_digits(text, tokens):
    seg = LongestMatch(_vocab(MIXED_WORDS))
    assert seg(text) == tokens


def test_longest_match_rows_of_mixed_text():
    vocab = _vocab(MIXED_WORDS)
    seg = LongestMatch(vocab)
    rows, unknown = seg.rows("借4万对吗")
    assert rows == [vocab[w] for w in ["借", "4", "万", "对", "吗"]] and unknown == 0
    rows, unknown = seg.rows("QQ号怎么不能开通微粒货")
    # QQ is found lowercased; 货 is the only unknown
    assert rows == [vocab[w] for w in ["qq", "号", "怎么", "不能", "开通", "微粒"]] and unknown == 1
    rows, unknown = seg.rows("一九九〇年")
    assert rows == [vocab["〇"], vocab["年"]] and unknown == 3  # 一九九 unknown


def test_builtin_model_finds_chinese_after_digits():
    enc = load_model("builtin:zh-classic")
    index = enc.index
    assert "说" in index and "你" in index
    rows, unknown = enc.tokenizer.rows("3说你")
    assert [enc.wv.words[r] for r in rows] == ["说", "你"]
    np.testing.assert_allclose(enc.encode(["3说你"]), enc.encode(["说你"]))


# ---------------------------------------------------------------- 2. --oov char on the fast path


@pytest.fixture
def digits_vecdir(tmp_path):
    words = ["4", "5", "北京", "京", "ab"]
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 3], [7, 7, 7]], dtype=np.float32)
    write_vectors(WordVectors(words, x), tmp_path / "d.vecdir", "vecdir")
    return tmp_path / "d.vecdir"


def test_oov_char_on_the_default_segmenter(digits_vecdir):
    wv = load_model(str(digits_vecdir)).wv
    skip = StaticEncoder(wv, oov="skip")
    char = StaticEncoder(wv, oov="char")
    # "456" is one unknown token: skip drops it, char keeps its known characters 4 and 5
    np.testing.assert_allclose(skip.encode(["456"]), [[0, 0, 0]])
    assert skip.oov_tokens == 1 and skip.empty_texts == 1
    np.testing.assert_allclose(char.encode(["456"]), [[0.5, 0.5, 0]])
    assert char.oov_tokens == 1  # the one unknown character 6
    # a known word is never split; a mixed line keeps the CJK words found
    np.testing.assert_allclose(char.encode(["ab北京45"]), [[8 / 4, 8 / 4, 8 / 4]])
    np.testing.assert_allclose(skip.encode(["ab北京45"]), [[7 / 2, 7 / 2, 8 / 2]])


def test_oov_char_same_on_fast_and_slow_paths(digits_vecdir):
    wv = load_model(str(digits_vecdir)).wv
    fast = StaticEncoder(wv, oov="char")
    slow = StaticEncoder(wv, oov="char", tokenize="space")
    np.testing.assert_allclose(fast.encode(["456", "4x5"]), slow.encode(["456", "4x5"]))


# ---------------------------------------------------------------- 3. quantization = sentence-transformers


def _st_quantize(x, precision, ranges=None):
    try:
        from sentence_transformers.util.quantization import quantize_embeddings
    except ImportError:  # older sentence-transformers
        from sentence_transformers.quantization import quantize_embeddings
    return quantize_embeddings(x, precision=precision, ranges=ranges)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_int8_equals_sentence_transformers(seed):
    rng = np.random.default_rng(seed)
    calib = (rng.standard_normal((200, 48)) * rng.choice([0.01, 1.0, 30.0], 48)).astype(np.float32)
    x = (rng.standard_normal((500, 48)) * rng.choice([0.01, 1.0, 30.0], 48) * 1.3).astype(np.float32)  # beyond the ranges too
    x[:, 0] = 0.0  # a constant dimension
    calib[:, 0] = 0.0
    ranges = int8_ranges(calib)
    ref_ranges = np.vstack((calib.min(axis=0), calib.max(axis=0)))
    np.testing.assert_array_equal(ranges, ref_ranges)
    ours = quantize(x, "int8", ranges)
    ref = _st_quantize(x, "int8", ranges)
    assert ours.dtype == ref.dtype == np.int8
    np.testing.assert_array_equal(ours, ref)
    assert (x < 0).any()


@pytest.mark.parametrize("precision", ["binary", "ubinary"])
def test_binary_equals_sentence_transformers(precision):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 77)).astype(np.float32)  # a width that is not a multiple of 8
    x[0] = 0.0
    ours = quantize(x, precision)
    ref = _st_quantize(x, precision)
    assert ours.dtype == ref.dtype
    np.testing.assert_array_equal(ours, ref)
