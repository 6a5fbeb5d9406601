"""``hwperf compare-configs``: several hardware ids, models, precisions and parallel settings side by side.

Registered on the main CLI by ``faces.cli``; the work is ``simulator.compare_grid``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from faces import display

EXAMPLE = "hwperf compare-configs -H h100-sxm5-80gb,h200-sxm-141gb,mi300x -m llama-3-70b --tensor-parallel 4,8"


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _prices(items: list[str], UserError) -> dict:
    prices = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            prices[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise UserError(f"--price takes HARDWARE=USD_PER_GPU_HOUR, e.g. h100-sxm5-80gb=2.5, got {item!r}")
    return prices


def config_label(row, varying: list[str]) -> str:
    """The configuration in a few words: only the fields that differ between rows."""
    short = {"tensor_parallel": "TP", "weight_dtype": "W", "kv_dtype": "KV", "batch": "batch",
             "prompt_tokens": "prompt", "output_tokens": "out"}
    parts = [str(getattr(row, f)) if f in ("hardware", "model") else f"{short.get(f, f)} {getattr(row, f)}"
             for f in varying]
    return " ".join(parts) or f"{row.hardware} {row.model}"


def table(df, wide: bool):
    """A rich Table of the comparison; 80 columns by default, trust and cost detail with ``wide``."""
    from rich import box
    from rich.table import Table

    axes = ["hardware", "model", "tensor_parallel", "weight_dtype", "kv_dtype", "batch", "prompt_tokens",
            "output_tokens"]
    varying = [a for a in axes if df[a].nunique() > 1] or ["hardware", "model"]
    t = Table(title="per GPU; tok = output tokens; Mtok/$ at the GPU-hour price", box=box.SIMPLE_HEAD,
              pad_edge=False, collapse_padding=True, title_justify="left")
    cols = ["config", "TTFT", "TPOT", "tok/s", "Mtok/$", "memory", "conc", "J/tok"]
    if wide:
        cols += ["$/GPU-h", "calibration", "error TTFT/TPOT"]
    labels = [f"{i}. {config_label(r, varying)}" for i, r in enumerate(df.itertuples(), 1)]
    for c in cols:
        t.add_column(c, overflow="fold", justify="left" if c in ("config", "calibration") else "right",
                     min_width=min(max(map(len, labels)), 30) if c == "config" else None)
    notes = []
    for i, (label, r) in enumerate(zip(labels, df.itertuples()), 1):
        if not r.fits:
            t.add_row(label, *(["—"] * 7), *(["", "", ""] if wide else []))
            notes.append(f"{i}. {r.limit}")
            continue
        cells = [label, display.seconds_short(r.ttft_s), display.seconds_short(r.tpot_s),
                 f"{r.output_tokens_per_s_per_gpu:,.0f}",
                 "—" if r.output_tokens_per_usd != r.output_tokens_per_usd else f"{r.output_tokens_per_usd / 1e6:.2f}",
                 display.gib(r.peak_memory_bytes), f"{r.max_concurrency:.0f}", f"{r.energy_per_output_token_j:.3f}"]
        if wide:
            cells += [f"{r.usd_per_gpu_hour:.2f}", f"{r.calibration_source} {r.calibration_from}".strip(),
                      f"{r.ttft_error_frac:.1%} / {r.tpot_error_frac:.1%}"]
        t.add_row(*cells)
    return t, notes


def register(app: typer.Typer, friendly, UserError) -> None:
    @app.command("compare-configs", help=f"Compare deployments side by side: every combination of the "
                 f"comma-separated values. Example: {EXAMPLE}")
    @friendly
    def compare_configs(
        hardware: str = typer.Option("h100-sxm5-80gb,h200-sxm-141gb,mi300x", "--hardware", "-H",
                                     help="comma-separated hardware ids or system ids (hwperf list hardware)"),
        model: str = typer.Option("llama-3-70b", "--model", "-m", help="comma-separated model ids (hwperf list models)"),
        batch: str = typer.Option("32", help="comma-separated batch sizes (requests decoded together)"),
        prompt_tokens: str = typer.Option("2048", help="comma-separated prompt lengths, tokens"),
        output_tokens: str = typer.Option("256", help="comma-separated output lengths, tokens"),
        weight_dtype: str = typer.Option("bf16", help="comma-separated: fp32, bf16, fp16, fp8, int8, int4"),
        kv_dtype: str = typer.Option("bf16", help="comma-separated: fp32, bf16, fp16, fp8, int8, int4"),
        tensor_parallel: str = typer.Option("8", help="comma-separated GPUs per replica, e.g. 4,8"),
        calibration: str = typer.Option("auto", help="auto | none (datasheet peaks with default efficiencies)"),
        price: list[str] = typer.Option([], "--price", help="USD per GPU-hour, HARDWARE=USD (repeatable), e.g. "
                                        "--price mi300x=2.1; defaults: hwspecs/prices.yaml"),
        wide: bool = typer.Option(False, "--wide", help="also price, calibration source and error band columns"),
        csv: Optional[Path] = typer.Option(None, "--csv", help="write every column to this CSV file (atomically)"),
        as_json: bool = typer.Option(False, "--json", help="machine-readable output (SI units)"),
    ):
        import simulator
        from faces.cli_io import _ints, _print_json, _write_csv, err, out

        df = simulator.compare_grid(
            _list(hardware), _list(model), calibration=None if calibration.lower() in ("none", "datasheet") else calibration,
            prices_usd_per_gpu_hour=_prices(price, UserError), batch=_ints("batch", batch),
            prompt_tokens=_ints("prompt_tokens", prompt_tokens), output_tokens=_ints("output_tokens", output_tokens),
            weight_dtype=_list(weight_dtype), kv_dtype=_list(kv_dtype),
            tensor_parallel=_ints("tensor_parallel", tensor_parallel))
        if csv is not None:
            _write_csv(csv, df.to_csv(index=False))
            err.print(f"wrote {len(df)} rows to {csv.resolve()}", highlight=False)
        if as_json:
            _print_json(df.to_dict(orient="records"))  # non-finite numbers as null
            return
        t, notes = table(df, wide)
        if wide:
            from rich.console import Console
            Console(width=max(out.width, 160)).print(t)
        else:
            out.print(t)
        for n in notes:
            out.print(f"does not run: {n}", highlight=False, soft_wrap=True)
