"""``hwperf long-context``: Fu's four bounds per context length, for each KV-compression method and tier,
as a table and (``--plot``) a PNG. Registered on the main CLI by ``faces.cli``; the work is
``simulator.long_context_view.long_context_table``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import hwspecs
from faces import display

out = Console()
_SUFFIX = {"k": 1_000, "m": 1_000_000}


def parse_contexts(text: str) -> list[int]:
    """"4k,50k,1m" → [4000, 50000, 1000000] (k = 10³, m = 10⁶; plain numbers are tokens)."""
    vals = []
    for part in text.split(","):
        p = part.strip().lower()
        scale = _SUFFIX.get(p[-1:], 1)
        num = p[:-1] if scale > 1 else p
        try:
            v = float(num) * scale
        except ValueError:
            raise ValueError(f"--context takes token counts like 4096, 4k, 50k, 1m; got {part!r}") from None
        if v < 1 or v != int(v):
            raise ValueError(f"--context values must be whole token counts ≥ 1, got {part!r}")
        vals.append(int(v))
    return vals


def _table(df, title: str, tiers) -> Table:
    t = Table(title=title)
    for c in ("context", "method", "KV/user", "users", "prefill", "decode",
              *(f"swap {x}" for x in tiers), "cheaper"):
        t.add_column(c, justify="left" if c in ("method", "cheaper") else "right")
    for r in df.to_dict("records"):
        ctx = f"{r['context_tokens']:,}" + ("*" if r["beyond_trained_context"] else "")
        dec = display.seconds_short(r["decode_step_s"]) if r["decode_users"] else "none fit"
        t.add_row(ctx, r["kv_method"], display.size(r["kv_bytes_per_user"]), str(r["max_concurrency"]),
                  display.seconds_short(r["prefill_s"]), dec,
                  *(display.seconds_short(r[f"swap_{x}_s"]) for x in tiers), r["cheaper_switch"])
    return t


def write_plot(path: Path, df, tiers, title: str) -> Path:
    """Four panels against context (log-log): concurrency, prefill, decode step, swap per tier."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    panels = [("max_concurrency", "users that fit"), ("prefill_s", "prefill (s)"),
              ("decode_step_s", "decode step, all users (s)"), (f"swap_{tiers[0]}_s", f"swap via {tiers[0]} (s)")]
    for ax, (col, label) in zip(axes, panels):
        for method, g in df.groupby("kv_method", sort=False):
            ax.plot(g["context_tokens"], g[col], marker="o", label=method)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("context (tokens)")
        ax.set_title(label)
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return hwspecs.write_atomic(path, lambda fh: fig.savefig(fh, dpi=110, format="png"), binary=True)


def register(app: typer.Typer, friendly, UserError) -> None:
    @app.command("long-context")
    @friendly
    def long_context(
        model: str = typer.Option("yi-34b", "--model", "-m", help="model id or YAML path"),
        hardware: str = typer.Option("h200-sxm-141gb", "--hardware", "-H", help="GPU id"),
        context: str = typer.Option("4k,50k,200k", "--context", help="context lengths: 4096, 4k, 50k, 1m"),
        kv_method: str = typer.Option("none", "--kv-method",
                                      help="comma-separated: none, kivi-8/4/3/2, kvquant-4/3/2, h2o, shadowkv, "
                                           "minicache (options: kivi-2:group=64,residual=32; h2o:budget=2048)"),
        system: Optional[str] = typer.Option(None, "--system", help="system id for the tiers (its GPU is used)"),
        tier: str = typer.Option("ddr", "--tier", help="comma-separated swap tiers: ddr, nvme, csd"),
        kv_dtype: str = typer.Option("bf16", "--kv-dtype", help="KV-cache storage dtype: fp32, bf16, fp16, fp8, int8, int4"),
        tensor_parallel: int = typer.Option(1, "--tensor-parallel", help="tensor-parallel GPUs per model replica, e.g. 8"),
        plot: Optional[Path] = typer.Option(None, "--plot", help="write a PNG of the four bounds"),
        as_json: bool = typer.Option(False, "--json", help="rows as JSON (SI units)"),
    ):
        """Fu's long-context bounds (arXiv 2405.08944) per context, KV method and tier: KV per user, users
        that fit, prefill, one decode step of all of them, swap out and back per tier, and whether swap or
        recompute (prefill) is the cheaper switch (* = beyond the model's trained context, extrapolated)."""
        from simulator.long_context_view import long_context_table

        methods = [None if x.strip().lower() == "none" else x.strip() for x in kv_method.split(",") if x.strip()]
        tiers = [x.strip() for x in tier.split(",") if x.strip()]
        if not methods or not tiers:
            raise UserError("--kv-method and --tier need at least one value each")
        df = long_context_table(hardware, model, parse_contexts(context), kv_methods_=methods, system=system,
                                tiers=tiers, kv_dtype=kv_dtype, tensor_parallel=tensor_parallel)
        where = system or hardware
        if plot is not None:
            if not plot.resolve().parent.is_dir():
                raise UserError(f"--plot: folder {plot.resolve().parent} does not exist")
            write_plot(plot, df, tiers, f"{model} on {where}")
        if as_json:
            out.print_json(json.dumps(df.to_dict(orient="records"), default=float))
            return
        out.print(_table(df, f"{model} on {where}: long-context bounds (KV {kv_dtype})", tiers))
        if plot is not None:
            out.print(f"wrote {plot}")
