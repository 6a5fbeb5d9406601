"""``hwperf serve | oversubscribe | calibrate-engine``: serving over time and the row power planner.

Registered on the main CLI by ``faces.cli``. Only the command line lives here (reading traces, writing
files atomically, printing); the work is in ``simulator.serving``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import hwspecs
from faces import display
from simulator.lazy import lazy_module

pd = lazy_module("pandas")
serving = lazy_module("simulator.serving")

out = Console()

ARRIVALS = ("poisson", "gamma", "diurnal", "trace")
# Column names accepted for a trace CSV: hwperf's own, or the Azure LLM inference trace's
# (https://github.com/Azure/AzurePublicDataset: TIMESTAMP, ContextTokens, GeneratedTokens).
TRACE_COLUMNS = {"arrival_s": ("arrival_s", "TIMESTAMP"), "prompt_tokens": ("prompt_tokens", "ContextTokens"),
                 "output_tokens": ("output_tokens", "GeneratedTokens")}


def read_trace(path: Path) -> serving.Requests:
    """A request trace from CSV: arrival_s, prompt_tokens, output_tokens (or the Azure trace's columns)."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise serving.TraceError(f"trace {path} is empty") from None
    if df.empty:
        raise serving.TraceError(f"trace {path} is empty: it has a header but no requests")
    cols = {}
    for key, names in TRACE_COLUMNS.items():
        hit = [n for n in names if n in df.columns]
        if not hit:
            raise serving.TraceError(f"trace {path} needs a column {' or '.join(names)}; it has {', '.join(df.columns)}")
        cols[key] = df[hit[0]]
    t = cols["arrival_s"]
    if not pd.api.types.is_numeric_dtype(t):  # Azure timestamps: seconds from the first request
        t = pd.to_datetime(t, errors="coerce")
        if t.isna().any():
            raise serving.TraceError(f"trace {path}: arrival times must be seconds or timestamps")
        t = (t - t.iloc[0]).dt.total_seconds()
    return serving.from_arrays(t.to_numpy(float), cols["prompt_tokens"].to_numpy(), cols["output_tokens"].to_numpy())


def make_requests(arrival, rate, duration, cv, prompt, output, prompt_cv, output_cv, trace, seed):
    if arrival not in ARRIVALS:
        raise ValueError(f"--arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
    if arrival == "trace":
        if trace is None:
            raise ValueError("--arrival trace needs --trace FILE.csv")
        return read_trace(trace)
    kw = dict(prompt_tokens=prompt, output_tokens=output, prompt_cv=prompt_cv, output_cv=output_cv, seed=seed)
    if arrival == "poisson":
        return serving.poisson(rate, duration, **kw)
    if arrival == "gamma":
        return serving.gamma(rate, duration, cv, **kw)
    return serving.diurnal(rate, duration, **kw)


def write_csv(path: Path, df: pd.DataFrame, flag: str) -> None:
    path = path.resolve()
    if not path.parent.is_dir():
        raise ValueError(f"{flag}: folder {path.parent} does not exist")
    hwspecs.write_atomic(path, lambda fh: df.to_csv(fh, index=False))


def _serve_table(r: serving.ServingResult, title: str) -> Table:
    s = r.summary
    t = Table(title=title)
    for c in ("metric", "P50", "P90", "P99", "mean"):
        t.add_column(c)
    for col, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "E2E")):
        t.add_row(name, *(display.seconds(s[f"{p}_{col}"]) for p in ("p50", "p90", "p99", "mean")))
    return t


def register(app: typer.Typer, friendly, UserError) -> None:
    @app.command()
    @friendly
    def serve(hardware: str = typer.Option("a100-sxm4-80gb", "--hardware", "-H", help="GPU id"),
              model: str = typer.Option("llama-3-8b", "--model", "-m", help="model id or YAML path"),
              tp: int = typer.Option(1, "--tp", help="tensor-parallel GPUs per instance"),
              engine: str = typer.Option("vllm-0.6", "--engine", help="engine profile id or YAML path"),
              arrival: str = typer.Option("poisson", "--arrival", help="poisson | gamma | diurnal | trace"),
              rate: float = typer.Option(2.0, "--rate", help="requests/s (diurnal: the peak rate)"),
              duration: float = typer.Option(300.0, "--duration", help="seconds of arrivals"),
              cv: float = typer.Option(2.0, "--cv", help="gamma: coefficient of variation of the gaps"),
              prompt: int = typer.Option(1024, "--prompt", help="mean prompt tokens"),
              output: int = typer.Option(256, "--output", help="mean output tokens"),
              prompt_cv: float = typer.Option(0.0, "--prompt-cv", help="log-normal spread of prompt lengths"),
              output_cv: float = typer.Option(0.0, "--output-cv", help="log-normal spread of output lengths"),
              trace: Optional[Path] = typer.Option(None, "--trace", help="CSV: arrival_s,prompt_tokens,output_tokens"),
              chunked: bool = typer.Option(False, "--chunked-prefill", help="Sarathi-style chunked prefill"),
              budget: int = typer.Option(8192, "--token-budget", help="max tokens per iteration"),
              max_seqs: int = typer.Option(256, "--max-seqs", help="max sequences per iteration"),
              preemption: str = typer.Option("recompute", "--preemption", help="recompute | swap"),
              slo_ttft_ms: Optional[float] = typer.Option(None, "--slo-ttft-ms", help="TTFT SLO (ms) for goodput"),
              slo_tpot_ms: Optional[float] = typer.Option(None, "--slo-tpot-ms", help="TPOT SLO (ms) for goodput"),
              sm_clock: Optional[float] = typer.Option(None, "--sm-clock", help="locked SM clock (MHz)"),
              seed: int = typer.Option(0, "--seed"),
              requests_csv: Optional[Path] = typer.Option(None, "--requests-csv", help="write per-request rows"),
              series_csv: Optional[Path] = typer.Option(None, "--series-csv", help="write 1-s power/queue series"),
              as_json: bool = typer.Option(False, "--json", help="print the summary as JSON (SI units)")):
        """Serve a request stream with continuous batching: latency percentiles, goodput, power over time."""
        req = make_requests(arrival, rate, duration, cv, prompt, output, prompt_cv, output_cv, trace, seed)
        cfg = serving.SchedulerConfig(budget, max_seqs, chunked, preemption)
        ms = lambda x: None if x is None else x / 1e3  # noqa: E731
        r = serving.serve(hardware, model, req, tensor_parallel=tp, engine=engine, scheduler_config=cfg,
                          sm_clock_hz=None if sm_clock is None else sm_clock * 1e6, slo_ttft_s=ms(slo_ttft_ms),
                          slo_tpot_s=ms(slo_tpot_ms))
        if requests_csv:
            write_csv(requests_csv, r.requests, "--requests-csv")
        if series_csv:
            write_csv(series_csv, r.over_time(1.0), "--series-csv")
        if as_json:
            import json
            out.print_json(json.dumps({k: (v if v == v else None) for k, v in r.summary.items()}))
            return
        s = r.summary
        out.print(_serve_table(r, f"{model} on {tp}× {hardware}, engine {r.engine}: {s['n_requests']} requests"))
        out.print(f"throughput {s['throughput_requests_per_s']:.2f} req/s, {s['output_tokens_per_s']:,.0f} output tok/s; "
                  f"goodput {s['goodput_requests_per_s']:.2f} req/s ({s['slo_attainment_frac']:.1%} within SLO); "
                  f"mean GPU power {s['mean_power_w']:,.0f} W, {s['energy_per_output_token_j']:.2f} J/token; "
                  f"{s['preemptions']} preemptions, peak KV {s['peak_kv_blocks']}/{r.capacity_blocks} blocks")
