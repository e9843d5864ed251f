"""--engine ray: the shards of a sharded encode on a Ray cluster, through Ray
Data's map_batches with a callable class that loads the model once per actor
(spec.load(): the ModelSpec is plain data and travels pickled).

The unit of work is the shard: one row per input shard, one batch per row,
each actor reads its shard, encodes it window by window with the same
shards.encode_shard as the local engine (so the window cuts, and so the bytes,
are the same) and writes the output shard under a temporary name in the
output folder; the driver renames it and records it in the manifest as
results stream back (a killed driver loses the shards in flight only). Rows
never travel through Ray's object store: moving rows is what costs in
map_batches (the issue measured 8 s for 200,000 texts against 1.8 s in a
loop), and a shard-sized unit keeps batches as large as they get. The output
folder must be visible to every worker (one machine, or a shared file
system), as the inputs must."""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import orjson

from vecpipe.core.errors import UnavailableError, UsageError, VecpipeError

log = logging.getLogger("vecpipe")


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UnavailableError("--engine ray needs Ray: pip install 'vecpipe[ray]'") from None
    return ray


class RemoteError(VecpipeError):
    """An error a worker reported (its message and exit code kept)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class ShardWorker:
    """The map_batches callable: one model per actor, one shard per call."""

    def __init__(self, spec, opts, ranges, out_dir: str, to: str, cache: str | None = None):
        if cache:  # the driver's $VECPIPE_HOME: exports (--backend onnx) made once, found by every worker
            os.environ["VECPIPE_HOME"] = cache
        self.encoder = spec.load()
        self.opts, self.out_dir, self.to = opts, out_dir, to
        self.ranges = None if ranges is None else np.asarray(ranges, dtype=np.float32)
        from vecpipe.core.encode.pipeline import run_budget

        self.budget = run_budget(self.encoder, opts)  # the OOM backoff lives here, per worker

    def __call__(self, batch: dict) -> dict:
        from vecpipe.core.encode.shards import encode_shard

        out = []
        for shard in batch["shard"]:
            try:
                entry = encode_shard(str(shard), self.out_dir, self.encoder, self.opts, self.ranges, self.budget, self.to)
            except VecpipeError as exc:  # bad input: back to the driver as data, exit code kept
                entry = {"input": str(shard), "error": str(exc), "exit_code": exc.exit_code}
            out.append(orjson.dumps(entry, option=orjson.OPT_SERIALIZE_NUMPY).decode())
        return {"entry": np.array(out, dtype=object)}


def connect(ray, address: str) -> bool | None:
    """Join the cluster at `address` ("auto": the one running on this
    machine, else a local one started on 127.0.0.1 without a dashboard).
    True when this call started a cluster (stop it after), False when it
    joined one (leave it after), None when this process was connected already."""
    if ray.is_initialized():
        return None
    quiet = {"logging_level": logging.WARNING, "log_to_driver": True}
    if address != "auto":
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UnavailableError(f"--ray-address {address}: cannot join the Ray cluster ({exc})") from None
        return False
    try:
        ray.init(address="auto", **quiet)
        return False
    except ConnectionError:
        log.info("no Ray cluster running here: starting a local one on 127.0.0.1")
    start_local(ray, **quiet)
    return True


def start_local(ray, **init_args) -> None:
    """A one-machine cluster whose servers listen on 127.0.0.1 only, without
    a dashboard. Ray turns a node address of 127.0.0.1 into the machine's
    outward address (and binds there) unless clusters are off, as on macOS:
    switched off here, for this process and the Ray processes it starts."""
    import os

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # read once at import
    ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **init_args)


def disconnect(ray, started: bool | None) -> None:
    if started is None:
        return
    session = None
    if started:
        try:
            session = ray._private.worker._global_node.get_session_dir_path()
        except AttributeError:
            pass
    ray.shutdown()
    if session:  # the logs and sockets of the cluster this run started
        shutil.rmtree(session, ignore_errors=True)
        latest = Path(session).parent / "session_latest"
        if latest.is_symlink() and not latest.exists():  # it pointed at the session just removed
            latest.unlink()


def ray_encode(todo: list[str], out_dir: Path, spec, opts, ranges, to: str, ray_options):
    """Yield each shard's manifest entry as its worker finishes it."""
    if not todo:
        return
    if ray_options.workers < 1:
        raise UsageError("--workers must be >= 1")
    ray = import_ray()
    started = connect(ray, ray_options.address)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.verbose_progress = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        # its notice that the bars we turned off are off (the warnings that matter come from elsewhere)
        logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)
        ds = ray.data.from_items([{"shard": s} for s in todo], override_num_blocks=len(todo))
        ds = ds.map_batches(
            ShardWorker,
            fn_constructor_kwargs={"spec": spec, "opts": opts, "ranges": ranges, "out_dir": str(out_dir), "to": to,
                                   "cache": os.environ.get("VECPIPE_HOME")},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(ray_options.workers, len(todo))),
            num_cpus=ray_options.cpus_per_worker,
            num_gpus=ray_options.gpus_per_worker or None,
        )
        for row in ds.iter_rows():
            entry = orjson.loads(row["entry"])
            if "error" in entry:
                raise RemoteError(entry["error"], entry["exit_code"])
            yield entry
    finally:
        disconnect(ray, started)
