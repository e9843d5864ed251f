"""A run killed with SIGKILL (or a lost machine) cannot clean up: the next
run on the same output removes the temporary folder it left, and nothing
else."""
import signal

from conftest import invoke_vecpipe
from test_trust_resume import leftovers, start, stop, wait_for

WORDS = ["北京\n".encode(), "上海\n".encode()] * 20


def test_a_killed_runs_temporary_is_removed_by_the_next_run(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = start(["knn", "-m", "builtin:zh-classic", "-k", "3", "-o", out], b"".join(WORDS[:10]))
    wait_for(lambda: any(p.name.endswith(".tmp") for p in tmp_path.iterdir()))
    rc, _ = stop(proc, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    stale = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(stale) == 1 and stale[0].startswith(".out.jsonl.")
    # look-alikes a user made: another name, or something else inside, are not ours
    mine = tmp_path / ".out.jsonl.abcdefgh.tmp"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    other = tmp_path / ".out.jsonl.notours.tmp"
    other.mkdir()
    r = invoke_vecpipe("knn", "-m", "builtin:zh-classic", "-k", "3", "-o", out, input=b"".join(WORDS))
    assert r.exit_code == 0, r.stderr
    assert len(out.read_bytes().splitlines()) == len(WORDS)
    assert leftovers(tmp_path) == sorted([".out.jsonl.abcdefgh.tmp", ".out.jsonl.notours.tmp", "out.jsonl"])
    assert (mine / "notes.txt").read_text() == "keep me"
