"""A second run on an output another run is writing stops at once (75), before
it spends seconds or minutes loading its model (the model here does not even
exist: loading it first would say 66)."""
import subprocess
import sys

import pytest

from conftest import invoke_vecpipe

HOLD = """
import sys, time
from vecpipe.core.io.outputs import lock_output
with lock_output(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    procs = []

    def hold(path):
        proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return path

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("args", [["encode", "-", "-o", "OUT"], ["encode", "-", "-o", "x.npy", "--ids-out", "OUT"],
                                  ["knn", "--queries", "-", "-o", "OUT"], ["sim", "-", "-o", "OUT"],
                                  ["eval", "sts", "-", "-o", "OUT"]])
def test_a_locked_output_stops_before_the_model_loads(tmp_path, held, args):
    out = held(tmp_path / "out.file")
    args = [str(out) if a == "OUT" else str(tmp_path / a) if a == "x.npy" else a for a in args]
    r = invoke_vecpipe(*args, "-m", str(tmp_path / "no-such-model"), input="北京\t上海\t1\n".encode())
    assert r.exit_code == 75, r.stderr
    assert "is being written by another vecpipe run (pid" in r.stderr
    assert not out.exists()


def test_an_unlocked_output_goes_on_to_the_model(tmp_path):
    r = invoke_vecpipe("encode", "-", "-o", tmp_path / "out.npy", "-m", str(tmp_path / "no-such-model"), input=b"x\n")
    assert r.exit_code == 66, r.stderr
