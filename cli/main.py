"""The `vecpipe` click group: global options, lazily loaded subcommands, and
the one place where exceptions become messages and exit codes."""
from __future__ import annotations

import contextlib
import errno
import importlib
import io
import logging
import os
import signal
import stat
import sys
import threading

import click

from vecpipe import __version__
from vecpipe.core import errors
from vecpipe.core.io.env import Environment

# name -> ("module:attribute", short help). A command's module (and what it
# imports) loads only when that command runs or its own help is asked for;
# `vecpipe --help` lists the short help from here (a test keeps them in step).
COMMANDS = {
    "convert": ("vecpipe.cli.convert:convert", "Convert word vectors between formats."),
    "doctor": ("vecpipe.cli.doctor:doctor", "Show versions, devices and the cache, for bug reports."),
    "fetch": ("vecpipe.cli.fetch:fetch", "Download catalog models and data into the cache, verified."),
    "train-w2v": ("vecpipe.cli.train_w2v:train_w2v", "Train word vectors from a corpus."),
    "encode": ("vecpipe.cli.encode:encode", "Encode texts into vectors."),
    "eval": ("vecpipe.cli.eval:eval_group",
             "Score models on the benchmarks of the field: analogy, similarity, STS, retrieval, classification."),
    "finetune": ("vecpipe.cli.finetune:finetune", "Fine-tune a sentence-embedding model on pairs, triplets or scored pairs."),
    "knn": ("vecpipe.cli.knn:knn", "Find nearest neighbours."),
    "mine": ("vecpipe.cli.mine:mine", "Mine hard negatives for training from a rank window of a model's search."),
    "sim": ("vecpipe.cli.sim:sim", "Score the similarity of pairs."),
}

class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:
            # click turns EPIPE into exit 1; we want the quiet 0 of `| head`
            raise _PipeClosed() from exc
        except (errors.NoInputError, errors.UnavailableError, errors.DataError) as exc:
            _say_where_the_model_came_from(ctx, exc)
            raise


def _say_where_the_model_came_from(ctx, exc: errors.VecpipeError) -> None:
    """An error about a model the user did not type (from $VECPIPE_MODEL, or the
    default) says where it came from, so a forgotten variable is not a mystery."""
    from vecpipe.cli.options import MODEL_SOURCE

    how, spec = ctx.meta.get(MODEL_SOURCE, (None, None))
    if how == "env":
        note = "-m taken from $VECPIPE_MODEL"
    elif how == "default":
        from vecpipe.core.models.resolve import DEFAULT_MODEL

        spec, note = DEFAULT_MODEL, f"{DEFAULT_MODEL} is the default model: choose one with -m or $VECPIPE_MODEL"
    else:
        return
    if spec and str(exc).startswith(spec):
        exc.args = (f"{exc} ({note})",)


class _PipeClosed(Exception):
    pass


class _StderrFormatter(logging.Formatter):
    def format(self, record):
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"vecpipe: {level}{record.getMessage()}"


@contextlib.contextmanager
def _logging_to(env: Environment):
    """The "vecpipe" logger writes to env.stderr at env's verbosity for one
    invocation, and is put back as it was afterwards."""
    log = logging.getLogger("vecpipe")
    saved = log.handlers[:], log.level, log.propagate
    handler = logging.StreamHandler(env.stderr)
    handler.setFormatter(_StderrFormatter())
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.ERROR if env.quiet else logging.DEBUG if env.verbosity > 1
                 else logging.INFO if env.verbosity else logging.WARNING)
    try:
        yield
    finally:
        log.handlers[:], log.level, log.propagate = saved


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="vecpipe")
@click.option("-v", "--verbose", count=True, help="More messages on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr; no progress bars.")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error.")
@click.pass_context
def cli(ctx, verbose, quiet, debug):
    """Composable commands for word vectors and sentence embeddings.

    Every command reads files or stdin and writes to stdout, so experiments
    are shell pipelines:

    \b
      vecpipe knn -m builtin:zh-classic 悟空 黛玉 -k 5        # try it offline
      vecpipe fetch bge-small-zh                              # download once, verified
      vecpipe convert sgns.zhihu.word.bz2 -o zhihu.vecdir     # any format -> vecdir
      vecpipe train-w2v corpus.txt -o mine.vecdir
      vecpipe encode -m bge-small-zh docs.jsonl -o docs.npy --ids-out docs.ids
      cat q.txt | vecpipe encode -m bge-small-zh --query --to npy | vecpipe knn --index docs.npy --ids docs.ids
      vecpipe eval analogy -m zhihu.vecdir CA8/morphological.txt

    Exit codes: 0 ok (also when the reader of stdout goes away, as with
    `| head`), 64 usage, 65 bad input data, 66 missing input, 69 unavailable,
    70 internal error, 73 cannot create (an output would replace a folder or
    file vecpipe did not make), 74 I/O error, 75 output locked by another run
    (try again later), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM),
    129 hangup (SIGHUP: the terminal closed); all clean up first.
    """
    # main() passes the invocation's Environment; `cli` driven directly (a
    # CliRunner on the group) gets a fresh one, current until the context closes
    env = ctx.ensure_object(Environment)
    env.verbosity, env.quiet, env.debug = verbose, quiet, debug or env.debug
    ctx.with_resource(env.activate())
    ctx.with_resource(_logging_to(env))


def _error(env: Environment, message: str) -> None:
    try:
        click.echo(f"vecpipe: error: {message}", file=env.stderr)
    except OSError:
        pass


def _traceback(env: Environment) -> None:
    import traceback

    traceback.print_exc(file=env.stderr)


def _quiet_stdout(env: Environment) -> None:
    # Python would complain again when it flushes stdout at exit
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, env.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def _stdout_is_full(env: Environment) -> bool:
    """Whether stdout is the file or device that has no space left (`> /dev/full`,
    a redirect onto a full disk): an error without a file name is then stdout's."""
    try:
        fd = env.stdout.fileno()
        st = os.fstat(fd)
        if stat.S_ISCHR(st.st_mode):
            return (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 7)  # /dev/full
        if stat.S_ISREG(st.st_mode):
            vfs = os.fstatvfs(fd)
            return (vfs.f_bavail if os.geteuid() else vfs.f_bfree) == 0
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
    return False


class _Signals:
    """SIGINT, SIGTERM (what cron, systemd and `timeout` send) and SIGHUP all
    raise KeyboardInterrupt in the main thread, so every clean-up path a Ctrl-C
    takes runs for each (atomic outputs removed, locks released, temporary files
    removed, a --resume run's partial output and state kept). The first signal
    is remembered: it decides the exit status (128 + its number) even when the
    interrupt was swallowed on the way and turned into another error."""

    # SIGHUP: the terminal closed (an ssh session dropped): the same clean-up, exit 129
    HANDLED = (signal.SIGINT, signal.SIGTERM) + ((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def _handler(self, signum, frame):
        if self.received is None:
            self.received = signum
        raise KeyboardInterrupt

    def __enter__(self):
        self.received = None
        if threading.current_thread() is not threading.main_thread():
            return self  # handlers can only be set from the main thread
        for signum in self.HANDLED:
            current = signal.getsignal(signum)
            if current in (signal.SIG_IGN, None):
                continue  # ignored on purpose (nohup, a background job): leave it so
            self._previous[signum] = current
            signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        return False

    def exit_code(self, env: Environment) -> int:
        signum = self.received or signal.SIGINT
        _error(env, "interrupted" if signum == signal.SIGINT else f"terminated ({signal.Signals(signum).name})")
        return 128 + signum


_signals = _Signals()


class _ClosedStream(io.RawIOBase):
    """Stands in for stdin or stdout closed before vecpipe started (`>&-`, `<&-`;
    Python then has None there): using it fails as a closed descriptor does
    (EBADF, exit 74, naming the stream), once; later writes are dropped, so the
    flush at exit stays quiet."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.failed = name, False

    def _fail(self):
        self.failed = True
        raise OSError(errno.EBADF, os.strerror(errno.EBADF), self.name)

    def readable(self):
        return self.name == "stdin"

    def writable(self):
        return self.name != "stdin"

    def readinto(self, b):
        self._fail()

    def write(self, b):
        if self.failed:
            return len(b)
        self._fail()

    def fileno(self):
        raise OSError(errno.EBADF, os.strerror(errno.EBADF), self.name)


def _stand_in_for_closed_streams() -> None:
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(io.BufferedReader(_ClosedStream("stdin")))
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(_ClosedStream("stdout")))
    if sys.stderr is None:  # else click would send error messages to stdout, into the data
        sys.stderr = open(os.devnull, "w")


def main(argv=None, env: Environment | None = None) -> int:
    """Run one invocation; `env` (streams, terminal flags) defaults to this
    process's. Everything the invocation sets lives on `env` and ends with it."""
    if env is None:
        _stand_in_for_closed_streams()
    env = env if env is not None else Environment()
    with _signals, env.activate():
        try:
            return _main(argv, env)
        except KeyboardInterrupt:  # a signal while an error was being reported
            return _signals.exit_code(env)


def _main(argv, env: Environment) -> int:
    try:
        rv = cli.main(args=argv, prog_name="vecpipe", standalone_mode=False, obj=env)
        sys.stdout.flush()
        env.stdout.flush()
        return rv if isinstance(rv, int) else 0
    except (_PipeClosed, BrokenPipeError):
        _quiet_stdout(env)
        return 0
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        if _signals.received is None and isinstance(exc.__context__, EOFError):
            # click turns EOFError into Abort; no signal came: input ended early
            _error(env, f"unexpected end of input: {exc.__context__ or 'EOF'}")
            return errors.EX_DATAERR
        return _signals.exit_code(env)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        if _signals.received is not None:
            return _signals.exit_code(env)
        exc.show(file=env.stderr)
        return errors.EX_USAGE if isinstance(exc, click.UsageError) else exc.exit_code
    except errors.VecpipeError as exc:
        if _signals.received is not None:  # the error came after (and likely from) the interruption
            return _signals.exit_code(env)
        if env.debug:
            _traceback(env)
        _error(env, str(exc))
        return exc.exit_code
    except OSError as exc:
        if _signals.received is not None:
            return _signals.exit_code(env)
        if exc.errno == errno.EPIPE:  # a closed pipe that was not raised as BrokenPipeError
            _quiet_stdout(env)
            return 0
        if env.debug:
            _traceback(env)
        full = exc.errno == errno.ENOSPC and not exc.filename and _stdout_is_full(env)
        where = "stdout" if full else exc.filename
        _error(env, f"{str(where) + ': ' if where else ''}{exc.strerror or exc}")
        if full:
            _quiet_stdout(env)  # the bytes still buffered would fail again at exit
        return errors.EX_IOERR
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if _signals.received is not None:
            return _signals.exit_code(env)
        if env.debug:
            _traceback(env)
        else:
            _error(env, f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return errors.EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
