"""What every hwperf command shares: the consoles, the one-line error rule, list parsing and the writers
of --json / --csv output. Its own module so that command modules (faces/compare_commands.py, …) and
faces/cli.py both import it, and neither imports the other."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import typer
from rich.console import Console

import hwspecs
from faces import display

out = Console()
err = Console(stderr=True)


class UserError(Exception):
    """Raised for bad input inside a command; printed as one line, exit code 2."""


def friendly(fn):
    """Run a command; bad input becomes one line on stderr and exit code 2, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, ValueError, KeyError, OSError, OverflowError) as e:
            err.print(f"error: {display.error_line(e)}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper


MAX_LIST_VALUES = 10_000_000  # values one --batch/--context … option may expand to


def _ints(name: str, text: str) -> list[int]:
    vals = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:  # start:stop:step, inclusive of stop
                a, b, *c = (int(x) for x in part.split(":"))
                r = range(a, b + 1, c[0] if c else 1)
                if len(vals) + len(r) > MAX_LIST_VALUES:
                    raise UserError(f"{name}: {len(r):,} values; at most {MAX_LIST_VALUES:,} per option")
                vals.extend(r)
            else:
                vals.append(int(part))
        except ValueError:
            raise UserError(f"{name} must be comma-separated integers or start:stop:step ranges, got {text!r}") from None
    return vals


def _json_default(x):
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def _print_json(obj) -> None:
    """JSON with every non-finite number (NaN, ±inf), at any depth, as null: json.dumps would print NaN."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    out.print_json(json.dumps(clean(obj), default=_json_default, allow_nan=False))


def _write_csv(path: Path, text: str) -> None:
    """The --csv file, written atomically (hwspecs.write_atomic); its folder must exist."""
    path = path.resolve()
    if not path.parent.is_dir():
        raise UserError(f"--csv: folder {path.parent} does not exist")
    hwspecs.write_atomic(path, lambda fh: fh.write(text))


def _stream_csv(path: Path, chunks) -> int:
    """Write DataFrame chunks as one CSV (atomically: the file appears whole or not at all); rows written."""
    path = path.resolve()
    if not path.parent.is_dir():
        raise UserError(f"--csv: folder {path.parent} does not exist")
    rows = [0]

    def write(fh):
        for i, chunk in enumerate(chunks):
            chunk.to_csv(fh, header=i == 0, index=False)
            rows[0] += len(chunk)
    hwspecs.write_atomic(path, write)
    return rows[0]
