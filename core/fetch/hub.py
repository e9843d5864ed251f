"""Hugging Face models and data sets: snapshots fetched through huggingface_hub
into the standard Hugging Face cache, with a client that gives up on a dead
endpoint within the timeout."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from vecpipe.core.errors import UnavailableError, UsageError
from vecpipe.core.fetch import catalog
from vecpipe.core.fetch.catalog import Entry
from vecpipe.core.fetch.http import check_url

if TYPE_CHECKING:  # fetch.py imports this module
    from vecpipe.core.fetch.fetch import FetchOptions

log = logging.getLogger("vecpipe")

# what sentence-transformers never needs: other frameworks' weights and exports
HF_IGNORE = ["*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*", "*.onnx", "onnx/*",
             "openvino/*", "coreml/*", "*.tflite"]


class HubUnreachable(Exception):
    """The hub endpoint gave no answer (refused, reset, timed out): not retried."""


@contextlib.contextmanager
def bounded_hub_client(timeout: float):
    """For the time of one fetch, huggingface_hub's HTTP client waits at most
    `timeout` seconds on every request and does not retry a dead endpoint.
    (Its client has no timeout, some calls pass none, and it retries network
    errors five times with 1-8 s pauses: a closed port took 24 s whatever
    --timeout said, one that never answers took for ever.) A transport puts the
    timeout on every request and turns a network failure into HubUnreachable,
    which the hub client does not retry. Without the hooks this needs (another
    huggingface_hub), only etag_timeout applies."""
    try:
        import httpx2
        from huggingface_hub.utils import _http
    except ImportError:
        yield
        return
    hook = getattr(_http, "hf_request_event_hook", None)
    if hook is None or not hasattr(_http, "set_client_factory"):
        yield
        return

    class Bounded(httpx2.BaseTransport):
        def __init__(self):
            self.inner = httpx2.HTTPTransport()

        def handle_request(self, request):
            if request.url.path.endswith("/api/agent-harnesses"):
                # a best-effort side request of huggingface_hub (it ignores its failure): not
                # needed to fetch a model, and against a dead endpoint it costs one more timeout
                raise HubUnreachable("skipped")
            request.extensions["timeout"] = httpx2.Timeout(timeout).as_dict()
            try:
                return self.inner.handle_request(request)
            except (httpx2.TimeoutException, httpx2.NetworkError) as exc:
                reason = f"no answer within {timeout:g}s" if isinstance(exc, httpx2.TimeoutException) \
                    else (str(exc) or type(exc).__name__)
                raise HubUnreachable(reason) from None

        def close(self):
            self.inner.close()

    def factory():
        return httpx2.Client(event_hooks={"request": [hook]}, follow_redirects=True, timeout=timeout,
                             transport=Bounded())

    previous = getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) or _http.default_client_factory
    _http.set_client_factory(factory)
    try:
        yield
    finally:
        _http.set_client_factory(previous)


def fetch_hub(e: Entry, opts: FetchOptions) -> Path:
    """Download a model (or data set) snapshot into the standard Hugging Face
    cache at the catalog's pinned revision. HF_ENDPOINT (a mirror), HF_HOME /
    HF_HUB_CACHE and HF_HUB_OFFLINE are honoured; so is $VECPIPE_OFFLINE."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    except ImportError:  # pragma: no cover - installed with sentence-transformers
        raise UnavailableError("huggingface_hub is not installed (pip install huggingface_hub)") from None
    from vecpipe.core.io import progress as _progress

    offline = opts.is_offline("HF_HUB_OFFLINE")
    endpoint = os.environ.get("HF_ENDPOINT") or None
    if endpoint:
        try:
            check_url(endpoint, opts.allow_http)
        except UsageError as exc:  # the user may not remember setting it: name the variable
            raise UsageError(f"HF_ENDPOINT={exc}") from None
    kwargs = dict(repo_id=e.hf_id, repo_type=e.hf_repo_type, revision=e.revision, cache_dir=str(catalog.hf_cache_dir()),
                  local_files_only=offline, etag_timeout=opts.timeout)
    if endpoint:
        kwargs["endpoint"] = endpoint.rstrip("/")
    if e.hf_repo_type == "model":
        kwargs["ignore_patterns"] = HF_IGNORE
    quieted = not _progress.enabled() and not are_progress_bars_disabled()
    if quieted:
        disable_progress_bars()
    # its retry notices would interleave with ours; one clear error is enough (-vv shows them)
    hub_log = logging.getLogger("huggingface_hub")
    hub_level = hub_log.level
    if not log.isEnabledFor(logging.DEBUG):
        hub_log.setLevel(logging.ERROR)
    log.info("%s: fetching %s%s from %s", e.name, e.hf_id, f"@{e.revision}" if e.revision else "",
             endpoint or "https://huggingface.co")
    if not offline:
        _check_resolvable(endpoint or "https://huggingface.co", e.name)
    try:
        with bounded_hub_client(opts.timeout):
            path = Path(snapshot_download(**kwargs))
    except HubUnreachable as exc:
        raise UnavailableError(f"{e.name}: cannot reach {endpoint or 'https://huggingface.co'} ({exc}); offline? "
                               "HF_ENDPOINT selects a mirror") from None
    except Exception as exc:  # noqa: BLE001 - every failure of the hub client becomes one message
        top = type(exc).__module__.split(".")[0]
        if top not in ("huggingface_hub", "httpx", "requests", "urllib3", "httpcore") and not isinstance(exc, OSError):
            raise
        where = endpoint or "https://huggingface.co"
        if offline:
            raise UnavailableError(f"{e.name}: offline mode (HF_HUB_OFFLINE/VECPIPE_OFFLINE) and {e.hf_id}"
                                   f"{'@' + e.revision if e.revision else ''} is not in the Hugging Face cache "
                                   f"({catalog.hf_cache_dir()})") from None
        raise UnavailableError(f"{e.name}: cannot get {e.hf_id} from {where} ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'no details'}); offline? "
                               "HF_ENDPOINT selects a mirror") from None
    finally:
        hub_log.setLevel(hub_level)
        if quieted:
            enable_progress_bars()
    if e.revision is None:
        log.warning("%s: no pinned revision in the catalog; took %s at commit %s", e.name, e.hf_id, path.name)
    return path


def _check_resolvable(url: str, desc: str) -> None:
    """Fail at once, not after huggingface_hub's half-minute of retries, when the
    hub's host name cannot even be resolved (no network). Skipped behind a proxy."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return
    host = urllib.parse.urlsplit(url).hostname
    if not host:
        return
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror:
        raise UnavailableError(f"{desc}: cannot resolve {host}: offline? (HF_ENDPOINT selects a mirror; "
                               "models already in the Hugging Face cache need no network)") from None
