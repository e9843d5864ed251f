"""Options shared by several commands, as decorators (one definition each)."""
from __future__ import annotations

import click

from vecpipe.core.formats import ALIASES, FORMATS

FORMAT_CHOICE = click.Choice(list(FORMATS) + list(ALIASES), case_sensitive=False)
FORMAT_NAMES = ", ".join(FORMATS) + " (aliases: " + ", ".join(f"{a}={t}" for a, t in ALIASES.items()) + ")"


def output_option(help_text="Write here instead of stdout (atomically: a temporary name, renamed when complete)."):
    return click.option("-o", "--output", "output", type=click.Path(dir_okay=True, allow_dash=True), default=None, help=help_text)


def on_error_option(f):
    return click.option(
        "--on-error",
        type=click.Choice(["stop", "skip"]),
        default="stop",
        show_default=True,
        help="On a bad record: stop with an error, or report it, skip it and count it.",
    )(f)


def unicode_errors_option(f):
    return click.option(
        "--unicode-errors",
        type=click.Choice(["strict", "replace", "ignore"]),
        default="strict",
        show_default=True,
        help="What to do with bytes that are not valid UTF-8.",
    )(f)
