"""The embedded demo model: it loads offline, says it is a demo, and the
rebuild script reproduces its vocabulary exactly."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, REPO, run_vecpipe
from vecpipe.core.models.base import load_model

BUILTIN = REPO / "core" / "builtin" / "zh-classic"


def test_builtin_model_loads_and_says_it_is_a_demo():
    enc = load_model("builtin:zh-classic")
    assert enc.kind == "static" and len(enc.wv) == 20000 and enc.dim == 100
    assert enc.wv.vectors.dtype == np.float16 and enc.wv.counts is not None
    meta = json.loads((BUILTIN / "meta.json").read_text(encoding="utf-8"))
    assert meta["demo"] is True and meta["how_made"]["script"] == "scripts/build_zh_classic.py"
    r = run_vecpipe("fetch", "--info", "zh-classic")
    assert r.returncode == 0 and "DEMO model" in r.stdout.decode()
    assert load_model("zh-classic").wv.words == enc.wv.words  # the catalog name resolves to it too


def test_unknown_builtin_is_a_clear_error():
    r = run_vecpipe("knn", "-m", "builtin:nope", "x")
    assert r.returncode == 66 and "no built-in model 'nope'" in r.stderr and "zh-classic" in r.stderr


def test_rebuild_script_reproduces_the_vocabulary(tmp_path):
    pytest.importorskip("jieba")
    if not (DATA / "classical-novels-zh" / "xiyouji.txt").is_file():
        pytest.skip(f"the novels are not under {DATA}")
    out = tmp_path / "zc"
    # one epoch: the vocabulary depends on the text, segmentation and min count, not on training
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_zh_classic.py"), "--out", str(out), "--epochs", "1"],
                   check=True, capture_output=True, env={**__import__("os").environ, "VECPIPE_DATA": str(DATA)})
    assert (out / "vocab.txt").read_bytes() == (BUILTIN / "vocab.txt").read_bytes()
    np.testing.assert_array_equal(np.load(out / "counts.npy"), np.load(BUILTIN / "counts.npy"))
