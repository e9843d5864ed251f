"""Records and vector streams: JSONL pass-through, npy streams, atomic files."""
import io

import numpy as np
import orjson
import pytest

from vecpipe.core.errors import DataError
from vecpipe.core.io.inputs import read_records
from vecpipe.core.io.jsonl import write_jsonl
from vecpipe.core.io.npy import NpyFileWriter, NpyStreamWriter, is_npy, read_npy_stream
from vecpipe.core.io.outputs import atomic_path, open_output


def _reader(data: bytes):
    return io.BufferedReader(io.BytesIO(data))


def test_jsonl_records_pass_through_unchanged():
    recs = [{"id": 1, "text": "北京欢迎你", "extra": {"a": [1, 2.5, None]}, "flag": True}, {"text": "e\u0301 😀", "n": -0.1}]
    data = b"".join(orjson.dumps(r) + b"\n" for r in recs)
    got = list(read_records(_reader(data + b"\n"), "x.jsonl"))
    assert got == recs
    out = io.BytesIO()
    write_jsonl(out, got)
    assert [orjson.loads(line) for line in out.getvalue().splitlines()] == recs


def test_plain_text_lines_become_records():
    got = list(read_records(_reader("第一句\r\n第二句\n\n第三句".encode()), "x.txt", text_field="sentence"))
    assert got == [{"sentence": "第一句"}, {"sentence": "第二句"}, {"sentence": "第三句"}]


def test_bad_json_names_the_line():
    data = b'{"text": "a"}\n{"text": "b"}\n{"text": oops}\n'
    with pytest.raises(DataError, match=r"^x.jsonl:3: invalid JSON"):
        list(read_records(_reader(data), "x.jsonl"))
    with pytest.raises(DataError, match=r"x.jsonl:2: expected a JSON object"):
        list(read_records(_reader(b'{"a": 1}\n[1, 2]\n'), "x.jsonl"))


def test_npy_stream_round_trip():
    blocks = [np.arange(i * 12, (i + 1) * 12, dtype=np.float32).reshape(3, 4) for i in range(3)]
    buf = io.BytesIO()
    w = NpyStreamWriter(buf)
    for b in blocks:
        w.write(b)
    w.close()
    fh = _reader(buf.getvalue())
    assert is_npy(fh)
    got = list(read_npy_stream(fh, "<stdin>"))
    assert len(got) == 3
    np.testing.assert_array_equal(np.vstack(got), np.vstack(blocks))
    # each block is a plain .npy array: numpy alone can read the first
    np.testing.assert_array_equal(np.load(io.BytesIO(buf.getvalue())), blocks[0])


def test_npy_stream_rejects_mismatched_blocks():
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros((2, 4), np.float32))
    np.lib.format.write_array(buf, np.zeros((2, 5), np.float32))
    with pytest.raises(DataError, match="block 2"):
        list(read_npy_stream(_reader(buf.getvalue()), "s"))


def test_npy_file_output_is_one_true_array(tmp_path):
    path = tmp_path / "v.npy"
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((n, 7)).astype(np.float32) for n in (5, 1, 300)]
    # as encode writes `-o x.npy`: NpyFileWriter into an atomic temporary, header fixed on close
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        w = NpyFileWriter(fh)
        for b in blocks:
            w.write(b)
        w.close()
    expected = np.vstack(blocks)
    np.testing.assert_array_equal(np.load(path), expected)
    mm = np.load(path, mmap_mode="r")
    assert mm.shape == (306, 7)
    np.testing.assert_array_equal(mm[300:], expected[300:])


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with open_output(target) as fh:
            fh.write(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "dir") as tmp:
            tmp.mkdir()
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_replaces_existing(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with open_output(target) as fh:
        fh.write(b"new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_output_to_a_fifo_writes_into_it(tmp_path):
    """-o /dev/null or a named pipe must be written to, never replaced by a file."""
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    with open_output(fifo) as fh:
        fh.write(b"hello\n")
    reader.join(10)
    assert got == [b"hello\n"]
    assert fifo.is_fifo()


def test_output_through_a_symlink_keeps_the_link(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with open_output(link) as fh:
        fh.write(b"new")
    assert link.is_symlink() and real.read_text() == "new"
