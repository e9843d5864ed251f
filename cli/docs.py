"""Generate man pages and shell completion scripts from the click commands,
so they cannot drift from --help. `make docs` writes them; a test compares."""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click
from click.shell_completion import get_completion_class

from vecpipe import __version__
from vecpipe.cli.main import cli

SHELLS = {"bash": "vecpipe.bash", "zsh": "_vecpipe", "fish": "vecpipe.fish"}


def _roff(text: str) -> str:
    out = []
    for line in text.replace("\\", "\\e").split("\n"):
        line = line.replace("-", "\\-")
        if line.startswith((".", "'")):
            line = "\\&" + line
        out.append(line)
    return "\n".join(out)


def _help_paragraphs(help_text: str) -> str:
    """click's `\\b` marks a block kept as typed; other paragraphs are reflowed."""
    parts = []
    for para in inspect.cleandoc(help_text or "").split("\n\n"):
        if para.startswith("\b"):
            parts.append(".PP\n.nf\n" + _roff(para[1:].strip("\n")) + "\n.fi")
        else:
            parts.append(".PP\n" + _roff(" ".join(line.strip() for line in para.splitlines())))
    return "\n".join(parts)


def man_page(name: str, command: click.Command, parent: click.Context | None) -> str:
    ctx = command.make_context(name, [], parent=parent, resilient_parsing=True)
    title = ctx.command_path.replace(" ", "-")
    lines = [
        f'.TH "{title.upper()}" "1" "" "vecpipe {__version__}" "vecpipe manual"',
        ".SH NAME",
        f"{_roff(title)} \\- {_roff(command.get_short_help_str(limit=200))}",
        ".SH SYNOPSIS",
        f".B {_roff(ctx.command_path)}",
        _roff(" ".join(command.collect_usage_pieces(ctx))),
        ".SH DESCRIPTION",
        _help_paragraphs(command.help),
        ".SH OPTIONS",
    ]
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record and record[1]:  # arguments (no help text) are in the SYNOPSIS
            lines += [".TP", f"\\fB{_roff(record[0])}\\fR", _roff(record[1])]
    if isinstance(command, click.Group):
        lines.append(".SH COMMANDS")
        for sub in command.list_commands(ctx):
            subcmd = command.get_command(ctx, sub)
            lines += [".TP", f"\\fB{sub}\\fR", _roff(subcmd.get_short_help_str(limit=200)) + f" See \\fB{_roff(title)}\\-{sub}\\fR(1)."]
    if parent is None:
        see_also = "https://github.com/vecpipe/vecpipe"
    elif parent.parent is None:
        see_also = "\\fBvecpipe\\fR(1)"
    else:  # a subcommand of a group: its group's page first
        see_also = f"\\fB{_roff(parent.command_path.replace(' ', '-'))}\\fR(1), \\fBvecpipe\\fR(1)"
    lines += [".SH SEE ALSO", see_also]
    return "\n".join(lines) + "\n"


def _pages(command: click.Command, ctx: click.Context) -> dict[str, str]:
    """The pages of a group's subcommands, recursively: vecpipe-eval-analogy.1, ..."""
    files = {}
    if isinstance(command, click.Group):
        for sub in command.list_commands(ctx):
            subcmd = command.get_command(ctx, sub)
            files[f"man/{ctx.command_path.replace(' ', '-')}-{sub}.1"] = man_page(sub, subcmd, ctx)
            files.update(_pages(subcmd, subcmd.make_context(sub, [], parent=ctx, resilient_parsing=True)))
    return files


def render_all() -> dict[str, str]:
    """Relative path -> contents, for every generated file."""
    files = {}
    root = cli.make_context("vecpipe", [], resilient_parsing=True)
    files["man/vecpipe.1"] = man_page("vecpipe", cli, None)
    files.update(_pages(cli, root))
    for shell, filename in SHELLS.items():
        comp = get_completion_class(shell)(cli, {}, "vecpipe", "_VECPIPE_COMPLETE")
        files[f"completions/{filename}"] = comp.source()
    return files


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path.cwd()
    for rel, text in render_all().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(rel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
