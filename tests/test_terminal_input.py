"""A command reading its input from a terminal says so: run without a file
by mistake, it would otherwise seem to hang."""
import os
import subprocess
import sys
import time

import numpy as np


def test_input_typed_at_a_terminal_is_announced_and_read(tmp_path):
    import pty

    leader, follower = pty.openpty()
    out = tmp_path / "x.npy"
    try:
        proc = subprocess.Popen([sys.executable, "-m", "vecpipe", "encode", "-m", "builtin:zh-classic", "-o", str(out)],
                                stdin=follower, stderr=subprocess.PIPE)
        time.sleep(0.5)
        os.write(leader, "北京天气好\n".encode())
        os.write(leader, b"\x04")  # Ctrl-D: end of input
        rc = proc.wait(timeout=120)
        err = proc.stderr.read().decode()
    finally:
        os.close(follower)
        os.close(leader)
    assert rc == 0, err
    assert "reading the input from the terminal" in err and "Ctrl-D" in err
    assert np.load(out).shape[0] == 1


def test_piped_input_is_not_announced(invoke):
    r = invoke("encode", "-m", "builtin:zh-classic", "--to", "npy", input="北京\n".encode())
    assert r.exit_code == 0
    assert "terminal" not in r.stderr
