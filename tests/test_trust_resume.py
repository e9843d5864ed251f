"""Trust: --resume checks what it continues, SIGTERM cleans up like Ctrl-C,
broken compressed/npy input is bad data (65), a UTF-8 BOM is not text."""
import bz2
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import orjson
import pytest

from conftest import DATA, corpus_copy_made, invoke_vecpipe
from vecpipe.core.vectors.readwrite import write_vectors
from vecpipe.core.vectors.wordvectors import WordVectors

PY = [sys.executable, "-m", "vecpipe"]
BOM = b"\xef\xbb\xbf"


@pytest.fixture
def tiny_vecdir(tmp_path):
    words = ["北京", "上海", "京", "天气", "好", "Apple"]
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 4], [2, 2, 0], [0, 3, 0], [5, 5, 5]], dtype=np.float32)
    path = tmp_path / "model" / "tiny.vecdir"
    path.parent.mkdir()
    write_vectors(WordVectors(words, x), path, "vecdir")
    return path


def records(n=3000, texts=("北京", "上海", "天气好", "京")):
    return [orjson.dumps({"id": i, "text": texts[i % len(texts)] * (1 + i % 3)}) + b"\n" for i in range(n)]


def wait_for(cond, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def state_done(state):
    try:
        return json.loads(state.read_text())["records_done"]
    except (OSError, ValueError, KeyError):
        return None


def start(args, data, **kw):
    """A real vecpipe process fed `data` on stdin; stdin stays open (the rest never comes)."""
    proc = subprocess.Popen([*PY, *map(str, args)], stdin=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    proc.stdin.write(data)
    proc.stdin.flush()
    return proc


def stop(proc, sig):
    """Send sig, wait for the exit with stdin still open, then collect stderr."""
    proc.send_signal(sig)
    rc = proc.wait(timeout=60)
    proc.stdin.close()
    return rc, proc.stderr.read().decode()


def full_output(tmp_path, model, data):
    full = tmp_path / "full.npy"
    r = invoke_vecpipe("encode", "-m", model, "-", "-o", full, "--window", "500", input=data)
    assert r.exit_code == 0, r.stderr
    return full.read_bytes()


def killed_resume_run(tmp_path, model, data_lines, out, done=1500, sig=signal.SIGKILL):
    """An encode --resume run stopped by `sig` once `done` records are checkpointed."""
    proc = start(["encode", "-m", model, "-", "-o", out, "--window", "500", "--resume"], b"".join(data_lines[: done + 200]))
    state = out.with_name(f".{out.name}.state.json")
    wait_for(lambda: state_done(state) == done)
    rc, err = stop(proc, sig)
    return rc, err


def leftovers(folder, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---------------------------------------------------------------- 1. resume never pads with zeros


def test_run_without_resume_clears_old_state_so_resume_never_pads_zeros(tmp_path, tiny_vecdir):
    lines = records()
    data = b"".join(lines)
    full = full_output(tmp_path, tiny_vecdir, data)
    out = tmp_path / "out.npy"
    partial = tmp_path / ".out.npy.partial"
    killed_resume_run(tmp_path, tiny_vecdir, lines, out)
    assert state_done(tmp_path / ".out.npy.state.json") == 1500
    # a plain run over the same -o, killed sooner (after its first window of 500 rows)
    proc = start(["encode", "-m", tiny_vecdir, "-", "-o", out, "--window", "500"], b"".join(lines[:700]))
    wait_for(lambda: partial.exists() and partial.stat().st_size == 128 + 500 * 3 * 4)
    stop(proc, signal.SIGKILL)
    r = invoke_vecpipe("-v", "encode", "-m", tiny_vecdir, "-", "-o", out, "--window", "500", "--resume", input=data)
    assert r.exit_code == 0, r.stderr
    assert "resuming after" not in r.stderr  # nothing to resume: the plain run dropped the old state
    assert out.read_bytes() == full
    assert not np.any(np.all(np.load(out) == 0, axis=1))


@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_resume_refuses_a_partial_that_does_not_match_its_state(tmp_path, tiny_vecdir, damage):
    lines = records()
    out = tmp_path / "out.npy"
    partial = tmp_path / ".out.npy.partial"
    killed_resume_run(tmp_path, tiny_vecdir, lines, out)
    raw = bytearray(partial.read_bytes())
    if damage == "flip":
        raw[1000] ^= 0xFF
    else:
        raw = raw[:5000]
    partial.write_bytes(bytes(raw))
    r = invoke_vecpipe("encode", "-m", tiny_vecdir, "-", "-o", out, "--window", "500", "--resume", input=b"".join(lines))
    assert r.exit_code == 65, r.stderr
    assert r.stderr.startswith(f"vecpipe: error: {out}: --resume: the unfinished output {partial.name} ")
    assert "run without --resume to start over" in r.stderr
    assert not out.exists()
    assert partial.read_bytes() == bytes(raw)  # refused: nothing touched


# ---------------------------------------------------------------- 2. resume checks the input


def test_resume_from_stdin_refuses_a_different_input(tmp_path, tiny_vecdir):
    lines = records()
    out = tmp_path / "out.npy"
    killed_resume_run(tmp_path, tiny_vecdir, lines, out)
    other = b"".join(records(texts=("上海", "北京", "京", "天气好")))
    assert len(other) == len(b"".join(lines))
    r = invoke_vecpipe("encode", "-m", tiny_vecdir, "-", "-o", out, "--window", "500", "--resume", input=other)
    assert r.exit_code == 65, r.stderr
    assert "vecpipe: error: <stdin>: --resume: the first 1500 records of the input differ from those" in r.stderr
    assert not out.exists()
    # the right input still resumes, byte for byte
    data = b"".join(lines)
    r = invoke_vecpipe("-v", "encode", "-m", tiny_vecdir, "-", "-o", out, "--window", "500", "--resume", input=data)
    assert r.exit_code == 0 and "resuming after 1500 records" in r.stderr, r.stderr
    assert out.read_bytes() == full_output(tmp_path, tiny_vecdir, data)


def test_resume_from_a_file_checks_its_content_not_its_date(tmp_path, tiny_vecdir):
    lines = records()
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(lines))
    out = tmp_path / "out.npy"
    killed_resume_run(tmp_path, tiny_vecdir, lines, out)  # started from stdin with the same bytes
    st = src.stat()
    swapped = b"".join(records(texts=("上海", "北京", "京", "天气好")))
    src.write_bytes(swapped)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same date, other content
    r = invoke_vecpipe("encode", "-m", tiny_vecdir, src, "-o", out, "--window", "500", "--resume")
    assert r.exit_code == 65, r.stderr
    assert f"vecpipe: error: {src}: --resume: the first 1500 records of the input differ" in r.stderr
    src.write_bytes(b"".join(lines))  # back, with a new date: resumes
    r = invoke_vecpipe("-v", "encode", "-m", tiny_vecdir, src, "-o", out, "--window", "500", "--resume")
    assert r.exit_code == 0 and "resuming after 1500 records" in r.stderr, r.stderr
    assert out.read_bytes() == full_output(tmp_path, tiny_vecdir, b"".join(lines))


# ---------------------------------------------------------------- 3. SIGTERM cleans up like Ctrl-C


def test_help_lists_143():
    r = invoke_vecpipe("--help")
    assert "143 terminated (SIGTERM)" in " ".join(r.stdout_bytes.decode().split())


def test_sigterm_encode_removes_partial_and_lock(tmp_path, tiny_vecdir):
    lines = records()
    out = tmp_path / "work"
    out.mkdir()
    partial = out / ".o.jsonl.partial"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = start(["encode", "-m", tiny_vecdir, "-", "-o", out / "o.jsonl", "--window", "500", "--ids-out", out / "o.ids"],
                 b"".join(lines[:700]), env={**os.environ, "TMPDIR": str(tmp)})
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0)
    rc, err = stop(proc, signal.SIGTERM)
    assert rc == 143, err
    assert err.strip().splitlines()[-1] == "vecpipe: error: terminated (SIGTERM)" and "Traceback" not in err
    assert leftovers(out) == [] and leftovers(tmp) == []


def test_sigterm_encode_resume_keeps_state_and_resumes(tmp_path, tiny_vecdir):
    lines = records()
    data = b"".join(lines)
    work = tmp_path / "work"
    work.mkdir()
    out = work / "out.npy"
    rc, err = killed_resume_run(tmp_path, tiny_vecdir, lines, out, sig=signal.SIGTERM)
    assert rc == 143, err
    assert leftovers(work) == [".out.npy.partial", ".out.npy.state.json"]
    r = invoke_vecpipe("-v", "encode", "-m", tiny_vecdir, "-", "-o", out, "--window", "500", "--resume", input=data)
    assert r.exit_code == 0 and "resuming after 1500 records" in r.stderr, r.stderr
    assert out.read_bytes() == full_output(tmp_path, tiny_vecdir, data)
    assert leftovers(work) == ["out.npy"]


def test_sigterm_convert_leaves_nothing(tmp_path):
    words = [f"w{i}" for i in range(5000)]
    text = "".join(f"{w} " + " ".join(["0.5"] * 20) + "\n" for w in words).encode()
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    proc = start(["convert", "-", "-o", work / "o.vecdir"], text[:100000], cwd=work, env={**os.environ, "TMPDIR": str(tmp)})
    time.sleep(2.0)  # reading stdin, which stays open
    rc, err = stop(proc, signal.SIGTERM)
    assert rc == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert leftovers(work) == [] and leftovers(tmp) == []


@pytest.mark.parametrize("phase", ["reading", "training"])
def test_sigterm_train_w2v_removes_its_corpus_copy(tmp_path, phase):
    corpus = (DATA / "classical-novels-zh" / "xiyouji.txt")
    if not corpus.is_file():
        pytest.skip("real data not found")
    data = corpus.read_bytes()
    data = data[: data.index(b"\n", 1 << 20) + 1]
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    args = ["train-w2v", "-", "--tokenize", "char", "--min-count", "1", "--dim", "50", "--epochs", "500",
            "--workers", "1", "-o", work / "o.vecdir"]
    if phase == "reading":
        proc = start(args, data[: len(data) // 2], env=env, cwd=work)
    else:
        proc = start(args, data, env=env, cwd=work)
        proc.stdin.close()  # the whole corpus: it trains for a long while
        proc.stdin = open(os.devnull, "wb")
    wait_for(lambda: corpus_copy_made(proc.pid, tmp))
    time.sleep(2.0)
    rc, err = stop(proc, signal.SIGTERM)
    assert rc == 143, err
    assert "Traceback" not in err
    assert leftovers(tmp) == []
    assert leftovers(work) == []


# ---------------------------------------------------------------- 4. truncated compressed input is bad data


def _truncated(tmp_path, name, raw):
    path = tmp_path / name
    if name.endswith(".gz"):
        packed = gzip.compress(raw)
    elif name.endswith(".bz2"):
        packed = bz2.compress(raw)
    else:
        inner = tmp_path / "inner.txt"
        inner.write_bytes(raw)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(inner, "inner.txt")
        packed = path.read_bytes()
        inner.unlink()
    path.write_bytes(packed[: len(packed) * 2 // 3])
    return path


PAIRS = "".join(f"北京\t上海\t{i % 5}\n" for i in range(2000)).encode()


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zip"])
@pytest.mark.parametrize("command", ["encode", "knn", "sim", "eval", "convert"])
def test_truncated_compressed_input_is_bad_data(invoke, tmp_path, tiny_vecdir, command, suffix):
    if command == "convert":
        raw = "".join(f"w{i} 1.5 2.5 3.5\n" for i in range(5000)).encode()
    elif command in ("sim", "eval"):
        raw = PAIRS
    else:
        raw = "".join(f"北京{i}\n" for i in range(5000)).encode()
    src = _truncated(tmp_path, "in.txt" + suffix, raw)
    args = {
        "encode": ["encode", "-m", tiny_vecdir, src],
        "knn": ["knn", "-m", tiny_vecdir, "--queries", src],
        "sim": ["sim", "-m", tiny_vecdir, src],
        "eval": ["eval", "similarity", "-m", tiny_vecdir, src],
        "convert": ["convert", src, "-o", tmp_path / "o.vecdir"],
    }[command]
    r = invoke(*args)
    assert r.exit_code == 65, r.stderr
    assert f"vecpipe: error: {src}: " in r.stderr
    assert "interrupted" not in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------- 5. npy input that lies


def _npy_header(shape, descr="<f4"):
    body = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    body += b" " * (117 - len(body)) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


@pytest.mark.parametrize("case", ["huge", "truncated", "second-block-truncated", "object", "strings"])
def test_bad_npy_stream_is_bad_data(invoke, tmp_path, case):
    import io

    good = io.BytesIO()
    np.save(good, np.ones((3, 4), np.float32))
    if case == "huge":
        raw = _npy_header((10**12, 4)) + b"\0" * 64
    elif case == "truncated":
        raw = good.getvalue()[:-5]
    elif case == "second-block-truncated":
        raw = good.getvalue() + good.getvalue()[:100]
    elif case == "object":
        raw = _npy_header((2, 2), "|O") + b"\0" * 64
    else:
        raw = _npy_header((2, 2), "<U3") + b"\0" * 48
    bad = tmp_path / "bad.npy"
    bad.write_bytes(raw)
    ok = tmp_path / "ok.npy"
    ok.write_bytes(good.getvalue())
    r = invoke("sim", "--left", ok, "--right", bad)
    assert r.exit_code == 65, r.stderr
    assert r.stderr.startswith(f"vecpipe: error: {bad}: npy block ")
    assert "Traceback" not in r.stderr
    # the same from stdin, as knn queries
    r = invoke("knn", "--index", ok, "--queries", "-", input=raw)
    assert r.exit_code == 65, r.stderr
    assert r.stderr.startswith("vecpipe: error: <stdin>: npy block ")


def test_calibration_npy_claiming_huge_rows_is_bad_data(invoke, tmp_path, tiny_vecdir):
    bad = tmp_path / "cal.npy"
    bad.write_bytes(_npy_header((10**12, 3)) + b"\0" * 64)
    r = invoke("encode", "-m", tiny_vecdir, "--precision", "int8", "--calibration", bad, input=b"x\n")
    assert r.exit_code == 65, r.stderr
    assert f"vecpipe: error: {bad}: " in r.stderr


# ---------------------------------------------------------------- 6. a UTF-8 BOM is not text


def run_on(invoke, tmp_path, via, data, *args):
    """vecpipe with data on stdin, or in a file named last on the command line."""
    if via == "stdin":
        return invoke(*args, input=data)
    src = tmp_path / "in.jsonl"
    src.write_bytes(data)
    return invoke(*args, src)


JSONL = b'{"id": "a", "text": "\xe5\x8c\x97\xe4\xba\xac"}\n{"id": "b", "text": "\xe4\xb8\x8a\xe6\xb5\xb7"}\n'


@pytest.mark.parametrize("via", ["file", "stdin", "gz"])
def test_bom_jsonl_encode(invoke, tmp_path, tiny_vecdir, via):
    data = BOM + JSONL
    if via == "gz":
        data = gzip.compress(data)
    r = run_on(invoke, tmp_path, via, data, "encode", "-m", tiny_vecdir)
    assert r.exit_code == 0, r.stderr
    out = [json.loads(line) for line in r.stdout_bytes.splitlines()]
    assert [(o["id"], o["text"], o["vector"]) for o in out] == [("a", "北京", [1, 0, 0]), ("b", "上海", [0, 1, 0])]


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_bom_jsonl_sim(invoke, tmp_path, tiny_vecdir, via):
    data = BOM + b'{"text1": "\xe5\x8c\x97\xe4\xba\xac", "text2": "\xe5\x8c\x97\xe4\xba\xac", "k": 1}\n'
    r = run_on(invoke, tmp_path, via, data, "sim", "-m", tiny_vecdir)
    assert r.exit_code == 0, r.stderr
    (rec,) = [json.loads(line) for line in r.stdout_bytes.splitlines()]
    assert rec["k"] == 1 and rec["score"] == pytest.approx(1.0)


def test_bom_text_lines_and_ids(tmp_path, tiny_vecdir):
    from vecpipe.core.io.inputs import iter_lines, open_input, read_numbered_records

    src = tmp_path / "t.txt"
    src.write_bytes(BOM + "北京\n上海\n".encode())
    with open_input(src) as fh:
        assert list(iter_lines(fh, "t")) == [(1, "北京"), (2, "上海")]
    import io

    raw = io.BufferedReader(io.BytesIO(BOM + JSONL))  # a BOM also goes when the reader gets the raw bytes
    assert [rec["id"] for _, rec in read_numbered_records(raw, "x")] == ["a", "b"]
    raw = io.BufferedReader(io.BytesIO(BOM + "北京\n".encode()))
    assert list(iter_lines(raw, "x")) == [(1, "北京")]


# ---------------------------------------------------------------- 7. a signal wins over a later error


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_wins_over_a_later_data_error(invoke, tmp_path, tiny_vecdir, monkeypatch, sig, code, word):
    """A library that swallows the KeyboardInterrupt and fails with its own error
    (as a parser meeting EOF does) must still end as an interruption."""
    import vecpipe.core.encode.pipeline as enc
    from vecpipe.core.errors import DataError

    def swallowing(*args, **kwargs):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(5)
        except KeyboardInterrupt:
            pass
        raise DataError("unexpected end of data", "in.txt", 3)

    monkeypatch.setattr(enc, "encode_texts", swallowing)
    previous = signal.getsignal(signal.SIGTERM)
    r = invoke("encode", "-m", tiny_vecdir, input="北京\n")
    assert r.exit_code == code, r.output
    assert f"vecpipe: error: {word}" in r.output and "unexpected end" not in r.output
    assert signal.getsignal(signal.SIGTERM) is previous  # the in-process run gave the handler back


@pytest.mark.parametrize("case", ["huge", "object", "truncated"])
def test_bad_npy_index_is_bad_data(invoke, tmp_path, case):
    ok = tmp_path / "ok.npy"
    np.save(ok, np.ones((3, 4), np.float32))
    bad = tmp_path / "index.npy"
    if case == "huge":
        bad.write_bytes(_npy_header((10**12, 4)) + b"\0" * 64)
    elif case == "object":
        bad.write_bytes(_npy_header((2, 2), "|O") + b"\0" * 64)
    else:
        bad.write_bytes(ok.read_bytes()[:-5])
    r = invoke("knn", "--index", bad, "--queries", ok)
    assert r.exit_code == 65, r.stderr
    assert r.stderr.startswith(f"vecpipe: error: {bad}: ") and "Traceback" not in r.stderr


def test_bom_is_not_part_of_the_first_word_in_training(tmp_path, invoke):
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(BOM + ("北京 上海 天气 好\n" * 50).encode())
    r = invoke("train-w2v", corpus, "--min-count", "1", "--dim", "4", "--epochs", "1", "--workers", "1",
               "-o", tmp_path / "o.vecdir")
    assert r.exit_code == 0, r.stderr
    vocab = (tmp_path / "o.vecdir" / "vocab.txt").read_text(encoding="utf-8").split()
    assert sorted(vocab) == sorted(["北京", "上海", "天气", "好"])


def test_an_eof_error_without_a_signal_is_not_an_interruption(invoke, tiny_vecdir, monkeypatch):
    import vecpipe.core.encode.pipeline as enc

    def eof(*args, **kwargs):
        raise EOFError("Compressed file ended before the end-of-stream marker was reached")

    monkeypatch.setattr(enc, "encode_texts", eof)
    r = invoke("encode", "-m", tiny_vecdir, input="北京\n")
    assert r.exit_code == 65, r.output
    assert "vecpipe: error: unexpected end of input: Compressed file ended" in r.output
    assert "interrupted" not in r.output
