"""vecpipe doctor: versions, devices, cache: paste it into a bug report."""
from __future__ import annotations

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.option("--no-devices", is_flag=True, help="Do not import torch to look for GPUs (faster).")
def doctor(as_json, no_devices):
    """Show versions, devices and the cache, for bug reports.

    \b
    Examples:
      vecpipe doctor
      vecpipe doctor --json | jq .devices
    """
    import orjson

    from vecpipe.core.doctor import report

    info = report(devices=not no_devices)
    if as_json:
        click.echo(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(f"vecpipe {info['vecpipe']} on Python {info['python']} ({info['platform']})")
    for name, version in info["packages"].items():
        click.echo(f"  {name:24s} {version or 'not installed'}")
    click.echo("extras:")
    for name, version in info["extras"].items():
        click.echo(f"  {name:24s} {version or 'not installed'}")
    if "devices" in info and "error" in info["devices"]:
        click.echo(f"devices: torch failed: {info['devices']['error']}")
    elif "devices" in info:
        d = info["devices"]
        click.echo(f"devices: cuda {', '.join(d['cuda']) or 'none'} (CUDA {d['cuda_version'] or '-'}); "
                   f"mps {'yes' if d['mps'] else 'no'}; cpu threads {d['cpu_threads']}")
    c = info["cache"]
    click.echo(f"cache: {c['path']} ({c['bytes'] / 1e6:.1f} MB)" if c["exists"] else f"cache: {c['path']} (empty)")
    click.echo(f"hugging face cache: {info['hf_cache']['path']}")
    for k, v in info["env"].items():
        click.echo(f"  {k}={v}")
