"""vecpipe fetch against a real HTTP server on 127.0.0.1 (started here, serving
generated files, honouring Range, able to drop the connection mid-file)."""
import bz2
import hashlib
import io
import json
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from conftest import cjk_words, run_vecpipe, write_w2v_text
from vecpipe.core.fetch import catalog
from vecpipe.core.fetch.archives import safe_extract
from vecpipe.core.fetch.cache import register_file
from vecpipe.core.fetch.fetch import FetchOptions, fetch, fetch_entry
from vecpipe.core.fetch.http import _RedirectHandler
from vecpipe.core.fetch.hub import fetch_hub
from vecpipe.core.fetch.catalog import Entry
from vecpipe.core.errors import DataError, UnavailableError, UsageError
from vecpipe.core.vectors.readwrite import read_vectors


# ---------------------------------------------------------------- the server


class _State:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drops: dict[str, list[int]] = {}   # path -> byte offsets at which to hang up, one per request
        self.no_range: set[str] = set()          # paths served whole whatever Range says
        self.redirects: dict[str, str] = {}
        self.etags: dict[str, str] = {}          # path -> ETag sent, and If-Range honoured (RFC 9110)
        self.if_ranges: list[str | None] = []
        self.requests: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def hits(self, path):
        return [r for p, r in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        st: _State = self.server.state
        with st.lock:
            st.requests.append((self.path, self.headers.get("Range")))
            st.if_ranges.append(self.headers.get("If-Range"))
        if self.path in st.redirects:
            self.send_response(302)
            self.send_header("Location", st.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = st.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start, rng = 0, self.headers.get("Range")
        etag, if_range = st.etags.get(self.path), self.headers.get("If-Range")
        if rng and self.path not in st.no_range and (if_range is None or if_range == etag):
            start = int(re.match(r"bytes=(\d+)-$", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        with st.lock:
            drops = st.drops.get(self.path)
            cut = drops.pop(0) if drops else None
        if cut is not None:
            self.wfile.write(body[: max(cut - start, 0)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = _State()
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd.state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private cache, catalog overlay and HF cache for every test."""
    h = tmp_path / "vphome"
    monkeypatch.setenv("VECPIPE_HOME", str(h))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hfcache"))
    monkeypatch.delenv("VECPIPE_CATALOG", raising=False)
    monkeypatch.delenv("VECPIPE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return h


FAST = FetchOptions(allow_http=True, timeout=5, retries=3, backoff=0.01)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(name, url, data=None, **kw):
    kw.setdefault("kind", "dataset")
    kw.setdefault("format", "text")
    return Entry(name=name, urls=(url,) if isinstance(url, str) else tuple(url),
                 sha256=sha(data) if data is not None else kw.pop("sha256", None), **kw)


def cache_files(home: Path) -> list[str]:
    """Everything in the cache except the lock files."""
    if not home.exists():
        return []
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if ".locks" not in p.parts)


def random_bytes(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# ---------------------------------------------------------------- downloads


def test_full_download_verified_and_cached(server, home):
    data = random_bytes(300_000)
    server.files["/d/data.bin"] = data
    e = entry("t.full", server.base + "/d/data.bin", data, filename="data.bin")
    path = fetch_entry(e, FAST)
    assert path == home / "t.full" / "data.bin"
    assert path.read_bytes() == data
    manifest = json.loads((home / "t.full" / "manifest.json").read_text())
    assert manifest["sha256"] == sha(data) and manifest["verified"] == "sha256"
    assert catalog.resolve_local(e) == path
    assert not list((home / "t.full").glob("*.part"))
    # a second fetch is answered from the cache without a request
    n = len(server.requests)
    assert fetch_entry(e, FAST) == path
    assert len(server.requests) == n


def test_resume_after_a_dropped_connection_gives_the_same_bytes(server, home):
    data = random_bytes(3_000_000, seed=1)
    server.files["/big.bin"] = data
    server.files["/clean.bin"] = data
    server.drops["/big.bin"] = [1_234_567]
    resumed = fetch_entry(entry("t.resumed", server.base + "/big.bin", data), FAST)
    clean = fetch_entry(entry("t.clean", server.base + "/clean.bin", data), FAST)
    assert resumed.read_bytes() == clean.read_bytes() == data
    assert server.hits("/big.bin") == [None, "bytes=1234567-"]  # the second request resumed, not restarted


def test_resume_across_runs(server, home):
    """A fetch that gives up leaves its partial file; the next run continues it."""
    data = random_bytes(2_000_000, seed=2)
    server.files["/f.bin"] = data
    server.drops["/f.bin"] = [700_000]
    e = entry("t.runs", server.base + "/f.bin", data)
    with pytest.raises(UnavailableError, match="700000 of 2000000"):
        fetch_entry(e, FetchOptions(allow_http=True, retries=0, backoff=0.01))
    part = home / "t.runs" / "f.bin.part"
    assert part.stat().st_size == 700_000 and catalog.resolve_local(e) is None
    path = fetch_entry(e, FAST)
    assert path.read_bytes() == data
    assert server.hits("/f.bin")[-1] == "bytes=700000-"


def test_a_file_changed_on_the_server_is_downloaded_again_not_spliced(server, home):
    """The resume asks for the rest of the version it began (If-Range with its
    ETag); a file replaced upstream since then comes whole, not as the head of
    the old version and the tail of the new one."""
    old, new = random_bytes(1_000_000, seed=4), random_bytes(1_000_000, seed=5)
    server.files["/v.txt"], server.etags["/v.txt"] = old, '"v1"'
    server.drops["/v.txt"] = [400_000]
    e = entry("t.changed", server.base + "/v.txt")  # no checksum to catch a splice
    with pytest.raises(UnavailableError, match="400000 of 1000000"):
        fetch_entry(e, FetchOptions(allow_http=True, retries=0, backoff=0.01))
    part = home / "t.changed" / "v.txt.part"
    assert part.stat().st_size == 400_000 and (home / "t.changed" / "v.txt.part.json").is_file()
    server.files["/v.txt"], server.etags["/v.txt"] = new, '"v2"'  # replaced upstream meanwhile
    path = fetch_entry(e, FAST)
    assert path.read_bytes() == new
    assert server.hits("/v.txt")[-1] == "bytes=400000-" and server.if_ranges[-1] == '"v1"'
    assert not (home / "t.changed" / "v.txt.part.json").exists()
    # unchanged upstream: the same conditional request resumes
    server.files["/w.txt"], server.etags["/w.txt"] = old, '"w1"'
    server.drops["/w.txt"] = [300_000]
    path = fetch_entry(entry("t.same", server.base + "/w.txt"), FAST)
    assert path.read_bytes() == old
    assert server.hits("/w.txt") == [None, "bytes=300000-"] and server.if_ranges[-1] == '"w1"'


def test_server_without_range_support_restarts_cleanly(server, home):
    data = random_bytes(1_500_000, seed=3)
    server.files["/nr.bin"] = data
    server.no_range.add("/nr.bin")
    server.drops["/nr.bin"] = [500_000]
    path = fetch_entry(entry("t.norange", server.base + "/nr.bin", data), FAST)
    assert path.read_bytes() == data


def test_checksum_mismatch_leaves_nothing_in_the_cache(server, home):
    server.files["/x.txt"] = b"the bytes the server has\n"
    e = entry("t.bad", server.base + "/x.txt", b"the bytes the catalog expects\n")
    with pytest.raises(DataError) as err:
        fetch_entry(e, FAST)
    assert "sha256 mismatch" in str(err.value) and "deleted" in str(err.value)
    assert cache_files(home) == []
    assert catalog.resolve_local(e) is None


def test_truncated_bz2_is_detected_and_reported(server, home):
    text = "".join(f"词{i} " + " ".join(["0.5"] * 20) + "\n" for i in range(20000)).encode()
    whole = bz2.compress(text)
    server.files["/v.txt.bz2"] = whole[: len(whole) // 2]  # served "completely": Content-Length is the cut size
    e = entry("t.trunc", server.base + "/v.txt.bz2", kind="static", format="glove", filename="v.txt.bz2")
    with pytest.raises(DataError, match="bz2 stream is truncated"):
        fetch_entry(e, FAST)
    assert cache_files(home) == []


def test_mirrors_are_tried_in_turn_and_http_needs_permission(server, home):
    data = b"mirror two has it\n"
    server.files["/m2/f.txt"] = data
    e = entry("t.mirrors", [server.base + "/m1/f.txt", server.base + "/m2/f.txt"], data)
    with pytest.raises(UsageError, match="--allow-http"):
        fetch_entry(e, FetchOptions())
    assert fetch_entry(e, FAST).read_bytes() == data


def test_https_may_not_redirect_to_plain_http(home):
    handler = _RedirectHandler(allow_http=False)
    with pytest.raises(UsageError, match="plain HTTP"):
        handler.redirect_request(None, None, 302, "Found", {}, "http://example.org/x")


def test_offline_is_a_clear_unavailable_error(server, home, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = entry("t.offline", f"http://127.0.0.1:{port}/f.bin", b"x")
    with pytest.raises(UnavailableError, match="offline"):
        fetch_entry(e, FetchOptions(allow_http=True, retries=1, backoff=0.01, timeout=2))
    monkeypatch.setenv("VECPIPE_OFFLINE", "1")
    server.files["/f.bin"] = b"x"
    with pytest.raises(UnavailableError, match="offline mode"):
        fetch_entry(entry("t.offline2", server.base + "/f.bin", b"x"), FAST)
    assert server.requests == []


def test_not_found_is_unavailable(server, home):
    with pytest.raises(UnavailableError, match="HTTP 404"):
        fetch_entry(entry("t.404", server.base + "/nope", b"x"), FAST)


# ---------------------------------------------------------------- archives


def _tar_gz(members: dict[str, bytes], links: dict[str, tuple[str, str]] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def test_archive_is_extracted_and_its_member_resolved(server, home):
    vec = b"2 3\n\xe4\xb8\x80 1 2 3\n\xe4\xba\x8c 4 5 6\n"
    data = _tar_gz({"pack/pack.txt": vec, "pack/README": b"hi\n"})
    server.files["/pack.tar.gz"] = data
    e = entry("t.tar", server.base + "/pack.tar.gz", data, kind="static", format="word2vec",
              filename="pack.tar.gz", archive="tar.gz", member="pack/pack.txt")
    path = fetch_entry(e, FAST)
    assert path == home / "t.tar" / "files" / "pack" / "pack.txt" and path.read_bytes() == vec
    assert not (home / "t.tar" / "pack.tar.gz").exists()  # only the extracted copy is kept
    assert catalog.resolve_local(e) == path
    assert read_vectors(path).words == ["一", "二"]


def test_path_traversal_archive_is_refused(server, home, tmp_path):
    data = _tar_gz({"ok.txt": b"fine\n", "../../evil.txt": b"gotcha\n"})
    server.files["/evil.tar.gz"] = data
    e = entry("t.evil", server.base + "/evil.tar.gz", data, archive="tar.gz", filename="evil.tar.gz")
    with pytest.raises(DataError, match="points outside the target folder"):
        fetch_entry(e, FAST)
    assert not list(tmp_path.rglob("evil.txt")) and not (tmp_path.parent / "evil.txt").exists()
    assert cache_files(home) == []


def test_truncated_archive_without_checksum_is_refused(server, home):
    data = _tar_gz({"v.txt": random_bytes(400_000, seed=9)})
    server.files["/cut.tar.gz"] = data[: len(data) // 2]
    e = entry("t.cuttar", server.base + "/cut.tar.gz", archive="tar.gz", filename="cut.tar.gz")
    with pytest.raises(DataError, match="truncated"):
        fetch_entry(e, FAST)
    assert cache_files(home) == []


@pytest.mark.parametrize("members,links,message", [
    ({"/etc/evil": b"x"}, None, "absolute path"),
    ({"a/../../evil": b"x"}, None, "outside"),
    ({"ok": b"x"}, {"link": ("sym", "../../etc/passwd")}, "points outside"),
    ({"ok": b"x"}, {"link": ("sym", "/etc/passwd")}, "absolute"),
    ({"ok": b"x"}, {"hard": ("hard", "../outside")}, "points outside"),
])
def test_safe_extract_refuses_escapes(tmp_path, members, links, message):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz(members, links))
    with pytest.raises(DataError, match=message):
        safe_extract(archive, "tar.gz", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar.gz"]


def test_safe_extract_allows_links_inside_and_zip_checks(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz({"d/f.txt": b"data"}, {"d/l.txt": ("sym", "f.txt")}))
    safe_extract(archive, "tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / "d" / "l.txt").read_bytes() == b"data"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match="outside"):
        safe_extract(bad, "zip", tmp_path / "zout")
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("inner/v.txt", "a 1 2\n")
    safe_extract(good, "zip", tmp_path / "zout")
    assert (tmp_path / "zout" / "inner" / "v.txt").read_text() == "a 1 2\n"


# ---------------------------------------------------------------- --from, --convert


def test_from_registers_a_hand_downloaded_file(tmp_path, home):
    words = cjk_words(50, seed=3)
    x = np.random.default_rng(3).standard_normal((50, 8)).astype(np.float32)
    raw = write_w2v_text(tmp_path / "raw.txt", words, x)
    packed = tmp_path / "sgns.test.word.bz2"
    packed.write_bytes(bz2.compress(raw.read_bytes()))
    e = Entry(name="t.manual", kind="static", format="word2vec", filename="t.manual.bz2",
              sha256=sha(packed.read_bytes()))
    path = fetch(e, convert=False, from_file=packed)
    assert path == home / "t.manual" / "t.manual.bz2" and path.read_bytes() == packed.read_bytes()
    assert packed.exists()  # the user's file stays where it was
    assert catalog.resolve_local(e) == path
    vecdir = fetch(e, convert=True)  # already cached: only the conversion happens
    assert vecdir == home / "t.manual" / "vecdir"
    assert catalog.resolve_local(e) == vecdir
    np.testing.assert_array_equal(read_vectors(vecdir).vectors, x)
    assert read_vectors(vecdir).words == words


def test_from_with_the_wrong_file_is_refused(tmp_path, home):
    wrong = tmp_path / "wrong.bz2"
    wrong.write_bytes(bz2.compress(b"a 1 2\n"))
    e = Entry(name="t.wrong", kind="static", format="glove", sha256=sha(b"something else"))
    with pytest.raises(DataError, match="sha256 mismatch.*left as it is"):
        register_file(e, wrong)
    assert wrong.exists() and cache_files(home) == []


def test_from_without_checksum_checks_the_stream(tmp_path, home):
    e = Entry(name="t.nosum", kind="static", format="glove", filename="t.nosum.bz2")
    whole = bz2.compress(b"".join(f"w{i} 1 2 3\n".encode() for i in range(5000)))
    cut = tmp_path / "cut.bz2"
    cut.write_bytes(whole[:-40])
    with pytest.raises(DataError, match="truncated"):
        register_file(e, cut)
    assert cache_files(home) == []
    plain = tmp_path / "plain.txt"
    plain.write_text("一 1 2\n二 3 4\n", encoding="utf-8")
    path = register_file(e, plain)
    assert path.name == "t.nosum"  # named after what it is: not compressed
    assert read_vectors(path).words == ["一", "二"]


# ---------------------------------------------------------------- resolve_local for hub models


def _fake_snapshot(tmp_path, hf_id, commit, files=("config.json", "modules.json"), ref=None):
    repo = tmp_path / "hfcache" / f"models--{hf_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in files:
        (snap / f).write_text("{}")
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


def test_resolve_local_finds_hub_snapshots(tmp_path, home):
    e = catalog.get("bge-small-zh-v1.5")
    assert catalog.resolve_local("bge-small-zh-v1.5") is None
    msg = catalog.missing_message("bge-small-zh-v1.5")
    assert "run: vecpipe fetch bge-small-zh-v1.5" in msg and "\n" not in msg
    _fake_snapshot(tmp_path, e.hf_id, "0" * 40)  # another revision does not count
    assert catalog.resolve_local(e) is None
    snap = _fake_snapshot(tmp_path, e.hf_id, e.revision)
    assert catalog.resolve_local("bge-small-zh-v1.5") == snap
    # unpinned entries follow the cache's main ref
    un = catalog.get("text2vec-base-chinese-sentence")
    assert un.revision is None
    snap2 = _fake_snapshot(tmp_path, un.hf_id, "a" * 40, ref="main")
    assert catalog.resolve_local(un) == snap2
    # and fetch answers from the cache without the network
    assert fetch("bge-small-zh-v1.5", FetchOptions(offline=True)) == snap


def test_hub_fetch_offline_and_endpoint(server, home, monkeypatch):
    """HF_ENDPOINT is honoured (the mirror is asked, at the pinned revision); HF_HUB_OFFLINE
    gives a clear error. (huggingface_hub reads its own settings once, at import: the
    endpoint case runs first, while the process is still online.)"""
    import huggingface_hub.constants

    # other tests of this session may have imported huggingface_hub while offline
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    e = catalog.get("m3e-small")
    monkeypatch.setenv("HF_ENDPOINT", server.base)  # a "mirror" that has nothing
    with pytest.raises(UnavailableError, match="HF_ENDPOINT"):
        fetch_hub(e, FAST)
    asked = [p for p, _ in server.requests]
    assert any("moka-ai/m3e-small" in p and e.revision in p for p in asked), asked
    with pytest.raises(UsageError, match="allow-http"):
        fetch_hub(e, FetchOptions())
    monkeypatch.delenv("HF_ENDPOINT")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UnavailableError, match="offline mode"):
        fetch_hub(e, FAST)


def test_resolve_local_ignores_incomplete_downloads(home):
    e = Entry(name="t.partial", kind="dataset", format="text", urls=("https://example.org/f",), filename="f")
    folder = home / "t.partial"
    folder.mkdir(parents=True)
    (folder / "f").write_text("complete-looking but no manifest")
    assert catalog.resolve_local(e) is None


# ---------------------------------------------------------------- the command


def _overlay(tmp_path, entries):
    path = tmp_path / "extra-catalog.json"
    path.write_text(json.dumps({"entries": entries}, ensure_ascii=False), encoding="utf-8")
    return path


def test_cli_prints_the_path_for_command_substitution(server, tmp_path, home, monkeypatch):
    words = cjk_words(30, seed=5)
    x = np.random.default_rng(5).standard_normal((30, 4)).astype(np.float32)
    text = write_w2v_text(tmp_path / "v.txt", words, x, header=False).read_bytes()
    server.files["/v.txt"] = text
    overlay = _overlay(tmp_path, [
        {"name": "t.vectors", "kind": "static", "format": "glove", "urls": [server.base + "/v.txt"], "filename": "v.txt",
         "size": len(text), "sha256": sha(text), "licence": "test", "citation": "test", "notes": "test"},
    ])
    monkeypatch.setenv("VECPIPE_CATALOG", str(overlay))  # the subprocesses inherit the environment
    r = run_vecpipe("fetch", "t.vectors", "--allow-http", "--retries", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{home / 't.vectors' / 'v.txt'}\n".encode()
    n = len(server.requests)
    r = run_vecpipe("fetch", "t.vectors", "--convert")  # cached: no network, no --allow-http needed
    assert r.returncode == 0, r.stderr
    vecdir = Path(r.stdout.decode().strip())
    assert vecdir == home / "t.vectors" / "vecdir" and len(server.requests) == n
    np.testing.assert_array_equal(read_vectors(vecdir).vectors, x)
    # the path composes: $(vecpipe fetch NAME) fed to another command
    r = run_vecpipe("convert", vecdir, "--to", "jsonl", "--limit", "1")
    assert json.loads(r.stdout)["word"] == words[0]
    r = run_vecpipe("fetch", "--list", "--json")
    listed = {json.loads(line)["name"]: json.loads(line) for line in r.stdout.splitlines()}
    assert listed["t.vectors"]["local"] == str(vecdir) and "sgns.zhihu.word" in listed


def test_cli_exit_codes(server, tmp_path, home, monkeypatch):
    server.files["/bad.txt"] = b"not what the catalog says\n"
    whole = bz2.compress(b"x 1 2\n" * 5000)
    server.files["/cut.bz2"] = whole[: len(whole) // 3]
    overlay = _overlay(tmp_path, [
        {"name": "t.bad", "kind": "dataset", "format": "text", "urls": [server.base + "/bad.txt"],
         "size": None, "sha256": sha(b"expected\n"), "licence": "", "citation": "", "notes": ""},
        {"name": "t.cut", "kind": "static", "format": "glove", "urls": [server.base + "/cut.bz2"], "filename": "cut.bz2",
         "size": None, "sha256": None, "licence": "", "citation": "", "notes": ""},
        {"name": "t.gone", "kind": "dataset", "format": "text", "urls": ["http://127.0.0.1:1/x"],
         "size": None, "sha256": None, "licence": "", "citation": "", "notes": ""},
    ])
    monkeypatch.setenv("VECPIPE_CATALOG", str(overlay))  # the subprocesses inherit the environment
    r = run_vecpipe("fetch", "t.bad", "--allow-http", "--retries", "0")
    assert r.returncode == 65 and "sha256 mismatch" in r.stderr and "Traceback" not in r.stderr
    r = run_vecpipe("fetch", "t.cut", "--allow-http", "--retries", "0")
    assert r.returncode == 65 and "truncated" in r.stderr
    assert cache_files(home) == []
    r = run_vecpipe("fetch", "t.gone", "--allow-http", "--retries", "0")
    assert r.returncode == 69 and "offline?" in r.stderr
    r = run_vecpipe("fetch", "t.bad")  # plain http without permission
    assert r.returncode == 64 and "--allow-http" in r.stderr
    r = run_vecpipe("fetch", "sgns.zhihu.wrod")
    assert r.returncode == 64 and "sgns.zhihu.word" in r.stderr
    r = run_vecpipe("fetch", "sgns.zhihu.word")  # Baidu Netdisk only
    assert r.returncode == 69
    assert "pan.baidu.com/s/1VGOs0RH7DXE5vRrtw6boQA" in r.stderr and "--from" in r.stderr
    assert r.stdout == b""
    r = run_vecpipe("fetch", "ppmi.merge.word")  # in the table, never released
    assert r.returncode == 69 and "never released" in r.stderr
    r = run_vecpipe("fetch")
    assert r.returncode == 64


def test_cli_from_and_info(tmp_path, home):
    f = tmp_path / "my-download.txt"
    f.write_text("你 0.1 0.2\n好 0.3 0.4\n", encoding="utf-8")
    r = run_vecpipe("fetch", "sgns.weibo.word", "--from", f, "--convert")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == str(home / "sgns.weibo.word" / "vecdir")
    assert "no checksum is known" in r.stderr
    r = run_vecpipe("fetch", "--info", "sgns.weibo.word")
    assert r.returncode == 0 and f"local: {home / 'sgns.weibo.word' / 'vecdir'}" in r.stdout.decode()
    r = run_vecpipe("fetch", "--info", "bge-small-zh", "--json")
    info = json.loads(r.stdout)
    assert info["query_instruction"] == "为这个句子生成表示以用于检索相关文章：" and info["local"] is None
    assert info["missing_message"].endswith("run: vecpipe fetch bge-small-zh")
    r = run_vecpipe("fetch", "--list", "--kind", "dataset")
    lines = r.stdout.decode().splitlines()
    assert lines[0].split()[:2] == ["NAME", "KIND"] and all(" dataset " in ln for ln in lines[1:])
    assert any(ln.startswith("ca8.morphological ") for ln in lines)
    r = run_vecpipe("fetch", "--list", "--corpus", "zhihu", "--json")
    names = [json.loads(line)["name"] for line in r.stdout.splitlines()]
    assert "sgns.zhihu.bigram-char" in names and "ppmi.zhihu.word" in names and all(".zhihu." in n for n in names)


def test_fetch_command_stays_light():
    """--list and --info read JSON only: no numpy-heavy or network libraries."""
    import subprocess
    import sys

    code = ("import sys; from vecpipe.cli.main import main\n"
            "rc = main(['fetch', '--info', 'bge-small-zh'])\n"
            "print(rc, [m for m in ('torch', 'huggingface_hub', 'sentence_transformers', 'scipy', 'polars') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("0 []")
