"""``python -m local run``'s arguments, checked before anything starts: one line for each mistake.

Each check returns the line to print, or None. They run before the moto server and the emulator
start, so a mistake costs no time and loses no results (an --output that is a file used to fail
only after the whole run, when the results were copied).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from cutouts import settings_table as t

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# What a previous run leaves in --output: the top folders of the output and failure prefixes, the
# run's completion events and the demo's contact sheet.
RESULT_FOLDERS = frozenset(
    prefix.split("/", 1)[0] for prefix in (t.DEFAULTS["output_prefix"], t.DEFAULTS["failure_prefix"])
) | {"events.jsonl", "index.html"}


def check_input(source: Path) -> str | None:
    if not source.exists():
        return f"--input {source} does not exist"
    if not source.is_dir():
        return f"--input {source} is not a folder; give the folder that holds the images"
    return None


def input_files(source: Path) -> list[Path]:
    return sorted(p for p in source.rglob("*") if p.is_file())


def check_output(output: Path, replace: bool) -> str | None:
    """A file is refused; a folder is replaced when it holds only a previous run's results (or
    when --replace-output says so): mixing two runs' results would hide which run wrote what."""
    if output.exists() and not output.is_dir():
        return f"--output {output} is a file; give a folder (it receives cutouts/ and failed/)"
    if output.is_dir() and not replace:
        others = sorted(p.name for p in output.iterdir() if p.name not in RESULT_FOLDERS)
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            return (
                f"--output {output} already holds files this command did not write ({shown}); "
                "choose an empty or new folder, or pass --replace-output to delete it first"
            )
    for parent in output.resolve().parents:
        if parent.exists():
            if not parent.is_dir():
                return f"--output {output}: {parent} is a file, so the folder cannot be made"
            break
    return None


def check_folders_apart(source: Path, output: Path) -> str | None:
    """Neither folder inside the other, nor --output a folder that holds the user's work.

    Results inside the input would be uploaded by the next run; replacing an output that holds
    the input, the current folder or the home folder would delete them.
    """
    src, out = source.resolve(), output.resolve()
    if out == src or out.is_relative_to(src):
        return f"--output {output} is inside --input {source}: the next run would upload these results; choose another"
    protected = {Path.home().resolve(), Path.cwd().resolve(), Path(out.anchor)}
    if src.is_relative_to(out) or any(p.is_relative_to(out) for p in protected):
        return f"--output {output} holds --input, the current folder or your home folder; choose a folder of its own"
    return None


def has_previous_results(output: Path) -> bool:
    return output.is_dir() and any(output.iterdir())


def check_timeout(timeout: float) -> str | None:
    if not timeout > 0:  # also refuses NaN
        return f"--timeout must be a positive number of seconds, got {timeout:g}"
    return None


def check_gateway_url(url: str | None) -> str | None:
    """http or https with a host; plain http only for a gateway on this machine, as the README's
    emulator example (the API key travels in every request)."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            f"--gateway-url {url!r} needs a scheme and a host: http://127.0.0.1:PORT for a gateway on "
            "this machine (such as python -m local gateway), https://HOST for any other"
        )
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return (
            f"--gateway-url {url!r}: plain http is accepted only for this machine (localhost, 127.0.0.1), "
            f"as the API key is sent with every request; use https://{parts.netloc}{parts.path}"
        )
    return None
