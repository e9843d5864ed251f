"""`vecpipe eval TASK -m MODEL -`: the dataset from stdin, as a file gives it
(STS reads its file twice, so stdin is copied once first)."""
import hashlib

import orjson
import pytest

from conftest import DATA


def result(r):
    assert r.exit_code == 0, r.stderr
    return orjson.loads(r.stdout_bytes)


@pytest.mark.parametrize("task, path, lines", [("sts", DATA / "STS-B-zh" / "STS-B.test.data", 200),
                                               ("analogy", DATA / "CA8" / "morphological.txt", 400)])
def test_a_dataset_on_stdin_gives_the_figures_of_the_file(tmp_path, invoke, task, path, lines):
    if not path.is_file():
        pytest.skip(f"real data not found at {path} (set VECPIPE_DATA)")
    data = b"".join(path.read_bytes().splitlines(keepends=True)[:lines])
    file = tmp_path / path.name
    file.write_bytes(data)
    from_file = result(invoke("eval", task, "-m", "builtin:zh-classic", file))
    from_stdin = result(invoke("eval", task, "-m", "builtin:zh-classic", "-", input=data))
    assert from_stdin["metrics"] == from_file["metrics"]
    assert from_stdin["counts"] == from_file["counts"]
    assert from_stdin["dataset"]["name"] == "stdin"
    assert from_stdin["dataset"]["files"] == [{"path": "-", "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}]


def test_a_bad_line_on_stdin_is_named_as_stdin(invoke):
    r = invoke("eval", "analogy", "-m", "builtin:zh-classic", "-", input="北京 中国 东京\n".encode())
    assert r.exit_code == 65
    assert r.stderr.startswith("vecpipe: error: <stdin>:1:"), r.stderr
