"""The house rules, as tests: runtime state per invocation (no module globals),
the model interface as the only way to a model (a fake one registered from
conftest drives the CLI in-process, without torch), light cli imports, and no
kind checks on encoders outside core/models."""
import io
import json
import logging
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, FakeEncoder, fake_vector
from vecpipe.core.io.env import Environment, current
from vecpipe.core.models.base import ModelSpec

HEAVY = ("torch", "sentence_transformers", "transformers", "gensim", "scipy", "polars", "sklearn", "faiss", "ray")


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


# -- runtime state ------------------------------------------------------------------------------------------------

def test_quiet_does_not_outlive_its_invocation(invoke, tmp_path, monkeypatch):
    """`-q` in one run must not silence the next: the state lives on the run's Environment."""
    from vecpipe.core.io import progress

    monkeypatch.setattr("vecpipe.core.io.env._isatty", lambda stream: True)  # as if run on a terminal
    seen = []
    monkeypatch.setattr("vecpipe.core.encode.pipeline.progress", lambda *a, **k: seen.append(progress.enabled()) or progress._NoBar())
    src = tmp_path / "t.txt"
    src.write_text("甲\n乙\n", encoding="utf-8")

    r = invoke("-q", "encode", "-m", "fake:4", src, "--to", "npy", "-o", tmp_path / "a.npy")
    assert r.exit_code == 0, r.stderr
    r = invoke("-v", "encode", "-m", "fake:4", src, "--to", "npy", "-o", tmp_path / "b.npy")
    assert r.exit_code == 0, r.stderr
    assert seen == [False, True]  # bars off under -q, on again for the next run on a "terminal"
    assert "encoded 2 texts" in r.stderr  # -v's info messages are back too
    log = logging.getLogger("vecpipe")
    assert log.level == logging.NOTSET and not log.handlers  # the logger is left as it was found


def test_debug_and_verbosity_stay_on_the_invocation(invoke, tmp_path):
    missing = tmp_path / "nope.txt"
    r = invoke("--debug", "encode", "-m", "fake:4", missing)
    assert r.exit_code == 66 and "Traceback" in r.stderr
    r = invoke("encode", "-m", "fake:4", missing)
    assert r.exit_code == 66 and "Traceback" not in r.stderr
    assert r.stderr == f"vecpipe: error: {missing}: no such file\n"


def test_main_takes_an_environment_and_restores_the_current_one(tmp_path):
    from vecpipe.cli.main import main

    from vecpipe.core.io import env as env_mod

    assert env_mod._current.get() is None  # outside an invocation: none is current
    err = io.StringIO()
    env = Environment(stdin=io.BytesIO(), stdout=io.BytesIO(), stderr=err, debug=False)
    assert env.stderr_isatty is False and env.progress_enabled is False
    assert main(["-q", "encode", "-m", "fake:4", str(tmp_path / "nope.txt")], env=env) == 66
    assert env.quiet and err.getvalue().startswith("vecpipe: error:")  # errors go to the env's stderr
    assert env_mod._current.get() is None and current() is not env and current().quiet is False  # none again
    assert Environment(stderr_isatty=True).progress_enabled and not Environment(stderr_isatty=True, quiet=True).progress_enabled


def test_no_module_globals_for_runtime_state():
    import vecpipe.cli.main as main_mod
    import vecpipe.core.io.progress as progress_mod

    assert not hasattr(main_mod, "_state")
    assert not hasattr(progress_mod, "_enabled") and not hasattr(progress_mod, "set_enabled")


# -- the fake model through the interface ---------------------------------------------------------------------

def test_fake_model_is_found_through_the_registry_and_pickles():
    spec = ModelSpec("fake:8", device="cpu")
    again = pickle.loads(pickle.dumps(spec))  # what a Ray worker receives
    assert again == spec
    a, b = spec.load(), again.load()
    assert type(a) is type(b) is FakeEncoder and a.dim == b.dim == 8
    enc = b.encode_batch(["你好", ""])
    np.testing.assert_array_equal(enc.vectors, a.encode_batch(["你好", ""]).vectors)
    np.testing.assert_array_equal(enc.vectors[0], fake_vector("你好", 8))
    assert enc.counters == {"empty_texts": 1, "fake_batches": 1}


def test_encode_in_process(invoke, tmp_path):
    src = tmp_path / "docs.jsonl"
    src.write_text('{"id": "a", "text": "北京"}\n{"id": "b", "text": "上海", "lang": "zh"}\n', encoding="utf-8")
    r = invoke("encode", "-m", "fake:8", src)
    assert r.exit_code == 0, r.stderr
    recs = jsonl(r.stdout_bytes)
    assert [rec["id"] for rec in recs] == ["a", "b"] and recs[1]["lang"] == "zh"
    np.testing.assert_allclose([rec["vector"] for rec in recs], [fake_vector("北京", 8), fake_vector("上海", 8)], rtol=1e-6)

    out = tmp_path / "docs.npy"
    r = invoke("encode", "-m", "fake:8", src, "-o", out, "--normalize", "--truncate-dim", "4", "--ids-out", tmp_path / "ids")
    assert r.exit_code == 0, r.stderr
    x = np.load(out)
    want = np.stack([fake_vector("北京", 8)[:4], fake_vector("上海", 8)[:4]])
    np.testing.assert_allclose(x, want / np.linalg.norm(want, axis=1, keepdims=True), rtol=1e-6)
    assert (tmp_path / "ids").read_text() == '"a"\n"b"\n'


def test_encode_query_uses_the_models_prompt(invoke, tmp_path):
    r = invoke("encode", "-m", "fake:8", "--query", "-", "--to", "npy", input="天气\n".encode())
    assert r.exit_code == 0, r.stderr
    x = np.lib.format.read_array(io.BytesIO(r.stdout_bytes))
    np.testing.assert_array_equal(x[0], fake_vector("query: 天气", 8))


def test_knn_text_queries_find_the_identical_text_first(invoke, tmp_path):
    texts = ["北京是首都", "上海在海边", "广州很热", "成都有熊猫"]
    (tmp_path / "docs.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert invoke("encode", "-m", "fake:16", tmp_path / "docs.txt", "-o", tmp_path / "docs.npy").exit_code == 0
    (tmp_path / "docs.ids").write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")

    r = invoke("knn", "-m", "fake:16", "--index", tmp_path / "docs.npy", "--ids", tmp_path / "docs.ids", "-k", "4",
               "广州很热", "成都有熊猫")
    assert r.exit_code == 0, r.stderr
    for rec in jsonl(r.stdout_bytes):
        hits = rec["neighbors"]
        assert hits[0]["id"] == rec["text"] and hits[0]["score"] == pytest.approx(1.0, abs=1e-6)
        q = fake_vector(rec["text"], 16)
        want = sorted(((cos(q, fake_vector(t, 16)), t) for t in texts), reverse=True)
        assert [h["id"] for h in hits] == [t for _, t in want]
        np.testing.assert_allclose([h["score"] for h in hits], [s for s, _ in want], rtol=1e-5, atol=1e-6)


def test_sim_equals_the_cosine_by_hand(invoke, tmp_path):
    pairs = [("猫", "狗"), ("苹果", "香蕉"), ("同一句话", "同一句话")]
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps({"text1": a, "text2": b}, ensure_ascii=False) + "\n" for a, b in pairs),
                   encoding="utf-8")
    r = invoke("sim", "-m", "fake:8", src)
    assert r.exit_code == 0, r.stderr
    scores = [rec["score"] for rec in jsonl(r.stdout_bytes)]
    np.testing.assert_allclose(scores, [cos(fake_vector(a, 8), fake_vector(b, 8)) for a, b in pairs], rtol=1e-5)
    assert scores[2] == pytest.approx(1.0, abs=1e-6)


def test_eval_sts_spearman_matches_scipy(invoke, tmp_path):
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    rows = [(f"句子{i}", f"句子{(i * 7) % 13}", int(rng.integers(0, 6))) for i in range(20)]
    src = tmp_path / "sts.tsv"
    src.write_text("".join(f"{a}\t{b}\t{y}\n" for a, b, y in rows), encoding="utf-8")
    r = invoke("eval", "sts", "-m", "fake:8", src)
    assert r.exit_code == 0, r.stderr
    result = json.loads(r.stdout_bytes)
    cosines = [round(cos(fake_vector(a, 8), fake_vector(b, 8)), 6) for a, b, _ in rows]
    assert result["metrics"]["spearman"] == pytest.approx(spearmanr([y for *_, y in rows], cosines)[0], abs=1e-6)
    assert result["model"]["kind"] == "fake" and result["model"]["dim"] == 8


# -- the house rules over the source --------------------------------------------------------------------------

def test_importing_every_cli_module_loads_no_heavy_library():
    modules = sorted(f"vecpipe.cli.{p.stem}" for p in (REPO / "cli").glob("*.py") if p.stem != "__init__")
    assert "vecpipe.cli.main" in modules and "vecpipe.cli.encode" in modules
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


KIND_CHECKS = re.compile(
    r"\b(?:encoder|enc|model|self\.encoder|self\.model)\.kind\b"  # asking an encoder its kind
    r"|\.kind\s*[!=]=\s*[\"'](?:static|transformer|fake)[\"']"  # comparing with a model kind
    r"|\[[\"']kind[\"']\]\s*[!=]=\s*[\"'](?:static|transformer)[\"']"  # describe()["kind"] == ...
    r"|getattr\([^)]*[\"']kind[\"']"
)


def test_no_kind_checks_on_encoders_outside_core_models():
    """Only core/models knows kinds (core/fetch's catalog entries have kinds of their own)."""
    offenders = []
    for path in sorted([*(REPO / "cli").rglob("*.py"), *(REPO / "core").rglob("*.py")]):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(("core/models/", "core/fetch/")):
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if KIND_CHECKS.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    assert offenders == []
    assert KIND_CHECKS.search('if encoder.kind == "static":') and KIND_CHECKS.search('m.kind != "transformer"')
