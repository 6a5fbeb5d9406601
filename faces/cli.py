"""The ``hwperf`` command line: a thin shell over the public Python API.

Bad input prints one line naming the field and what is allowed, and exits with code 2 (no traceback).
``--json`` prints machine-readable output (SI units, unit-suffixed keys).
"""

from __future__ import annotations

import functools
import json
import math
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

import hwspecs
import simulator
import workloads
from faces import display
from simulator.lazy import lazy_module
from faces.compare_commands import register as register_compare_commands
from faces.serving_commands import register as register_serving_commands
from faces.validate_commands import register as register_validate_commands

power_report = lazy_module("faces.power_report")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="hwperf: LLM inference performance on described hardware, checked against real kernels.")
out = Console()
err = Console(stderr=True)

DEFAULT_HARDWARE = "h100-sxm5-80gb"
DEFAULT_MODEL = "llama-3-8b"


class UserError(Exception):
    """Raised for bad input inside a command; printed as one line, exit code 2."""


def friendly(fn):
    """Run a command; bad input becomes one line on stderr and exit code 2, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, ValueError, KeyError, OSError) as e:
            err.print(f"error: {display.error_line(e)}", highlight=False, markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper


def _calibration_arg(value: str):
    return None if value.lower() in ("none", "datasheet") else value


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


def _hz(mhz: float | None) -> float | None:
    """--sm-clock is given in MHz; the API takes Hz."""
    return None if mhz is None else mhz * 1e6


def _json_default(x):
    if hasattr(x, "item"):
        return x.item()
    return str(x)


def _print_json(obj) -> None:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    if isinstance(obj, dict):
        obj = {k: clean(v) for k, v in obj.items()}
    out.print_json(json.dumps(obj, default=_json_default))


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


@app.command()
@friendly
def predict(
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", "-H", help="hardware id or spec YAML path"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="model id or model YAML path"),
    batch: int = typer.Option(16, help="sequences decoded together"),
    prompt_tokens: int = typer.Option(2048, help="prompt length per sequence"),
    output_tokens: int = typer.Option(256, help="generated tokens per sequence"),
    weight_dtype: str = typer.Option("bf16"),
    activation_dtype: str = typer.Option("bf16"),
    kv_dtype: str = typer.Option("bf16"),
    cuda_graph: bool = typer.Option(True, "--cuda-graph/--eager", help="decode from CUDA graphs or eagerly"),
    tensor_parallel: int = typer.Option(1, help="GPUs sharing each layer (attention heads, FFN columns)"),
    pipeline_parallel: int = typer.Option(1, help="pipeline stages (consecutive layers per stage), e.g. 2"),
    expert_parallel: int = typer.Option(1, help="GPUs the MoE experts are split over, e.g. 8"),
    data_parallel_attention: bool = typer.Option(False, "--data-parallel-attention",
                                                 help="attention data-parallel over expert_parallel/tensor_parallel "
                                                      "groups, all-to-all to the experts (DeepSeek layout)"),
    micro_batches: Optional[int] = typer.Option(None, help="pipeline micro-batches (default: pipeline_parallel)"),
    overlap_comm: bool = typer.Option(False, "--overlap-comm", help="overlap collectives with the next block"),
    collective_algorithm: str = typer.Option("ring", help="ring | tree"),
    calibration: str = typer.Option("auto", help="auto | none | path to a calibration YAML"),
    state: str = typer.Option("sustained", help="sustained (continuous load, power-limited clock) | burst"),
    power_cap: Optional[float] = typer.Option(None, "--power-cap", help="power limit in W (what-if)"),
    sm_clock: Optional[float] = typer.Option(None, "--sm-clock", help="locked SM clock in MHz (what-if)"),
    ops: bool = typer.Option(False, "--ops", help="also print the per-op table"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
):
    """Predict TTFT, TPOT, throughput, power, energy, memory and concurrency for one serving scenario."""
    sc = workloads.Scenario(batch=batch, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                            weight_dtype=weight_dtype, activation_dtype=activation_dtype, kv_dtype=kv_dtype,
                            cuda_graph=cuda_graph, tensor_parallel=tensor_parallel, state=state,
                            power_cap_w=power_cap, sm_clock_hz=_hz(sm_clock), pipeline_parallel=pipeline_parallel,
                            expert_parallel=expert_parallel, data_parallel_attention=data_parallel_attention,
                            micro_batches=micro_batches, overlap_comm=overlap_comm,
                            collective_algorithm=collective_algorithm)
    p = simulator.predict(hardware, model, sc, calibration=_calibration_arg(calibration))
    if as_json:
        d = p.summary()
        if ops:
            d["ops"] = p.ops.to_dict(orient="records")
        _print_json(d)
        return
    t = Table(title=f"{p.model_id} on {p.hardware_id}  (calibration: {p.calibration})", show_header=False)
    rows = [
        ("scenario", f"batch {sc.batch} × ({sc.prompt_tokens} prompt + {sc.output_tokens} output) tokens; "
                     f"weights {sc.weight_dtype}, act {sc.activation_dtype}, KV {sc.kv_dtype}; "
                     f"{'CUDA graph' if sc.cuda_graph else 'eager'}; {sc.parallel.describe()} ({sc.n_gpus} GPUs)"),
        ("calibration", p.trust.label()),
        ("TTFT (prefill)", f"{display.seconds(p.ttft_s)}  ({p.prefill_bound}-bound)"),
        ("TPOT (per decode step)", f"{display.seconds(p.tpot_s)}  ({p.decode_bound}-bound)"),
        ("end-to-end", display.seconds(p.e2e_s)),
        ("decode throughput", f"{p.decode_tokens_per_s:,.0f} tokens/s ({p.decode_tokens_per_s / sc.n_gpus:,.0f} per GPU)"),
        ("HBM traffic", display.size(p.hbm_bytes)),
        ("peak memory / GPU", f"{display.size(p.peak_memory_bytes)}  (weights {display.size(p.memory['weights_bytes'])}, "
                              f"KV {display.size(p.memory['kv_cache_bytes'])}, activations "
                              f"{display.size(p.memory['activation_bytes'])}, reserve {display.size(p.memory['workspace_bytes'])})"),
        ("max concurrency", f"{p.max_concurrency} requests of {sc.context_tokens} tokens (memory share "
                            f"{sc.memory_utilization_frac:g}, prefill {'in one pass' if sc.prefill_chunk_tokens is None else f'in {sc.prefill_chunk_tokens}-token chunks'})"),
        (f"power ({p.state})", f"prefill {p.prefill_power_w:.0f} W at {p.prefill_clock_hz / 1e6:.0f} MHz, "
                               f"decode {p.decode_power_w:.0f} W at {p.decode_clock_hz / 1e6:.0f} MHz"),
        ("energy", f"{p.energy_per_request_j:,.1f} J per request, {p.energy_per_output_token_j:.3f} J per output "
                   f"token ({p.output_tokens_per_j:.2f} tokens/J)"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    out.print(t)
    if ops:
        df = p.ops
        ot = Table(title="per-op (time per execution; total = × repeats)")
        for c in ("phase", "op", "kind", "n_repeats", "flops", "hbm_bytes", "time_s", "total_time_s", "bound",
                  "power", "clock"):
            ot.add_column(c)
        for r in df.itertuples():
            ot.add_row(r.phase, r.op, r.kind, str(r.n_repeats), f"{r.flops:.3g}", display.size(r.hbm_bytes),
                       display.seconds(r.time_s), display.seconds(r.total_time_s), r.bound, f"{r.power_w:.0f} W",
                       f"{r.clock_hz / 1e6:.0f} MHz")
        out.print(ot)


class ListWhat(str, Enum):
    hardware = "hardware"
    models = "models"
    all = "all"


@app.command("list")
@friendly
def list_(what: ListWhat = typer.Argument(ListWhat.hardware, help="hardware | models | all"),
          as_json: bool = typer.Option(False, "--json")):
    """List the built-in hardware specs or model presets."""
    if what in (ListWhat.models,):
        items = [{"id": i, "name": workloads.load_model(i).name,
                  "params": workloads.load_model(i).total_params} for i in workloads.available_models()]
    else:
        items = [{"id": i, "kind": hwspecs.load(i).kind, "name": hwspecs.load(i).name} for i in hwspecs.available()
                 if what == ListWhat.all or hwspecs.load(i).kind == "gpu"]
    if as_json:
        out.print_json(json.dumps(items))
        return
    t = Table(title=what.value)
    for c in items[0]:
        t.add_column(c)
    for it in items:
        t.add_row(*(f"{v / 1e9:.2f} B" if k == "params" else str(v) for k, v in it.items()))
    out.print(t)


@app.command()
@friendly
def sweep(
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", "-H"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    batch: str = typer.Option("1,2,4,8,16,32,64,128", help="list, e.g. 1,8,64 or 1:256:8"),
    prompt_tokens: str = typer.Option("2048"),
    output_tokens: str = typer.Option("256"),
    weight_dtype: str = typer.Option("bf16", help="comma-separated dtypes"),
    kv_dtype: str = typer.Option("bf16", help="comma-separated dtypes"),
    activation_dtype: str = typer.Option("bf16"),
    tensor_parallel: str = typer.Option("1"),
    cuda_graph: bool = typer.Option(True, "--cuda-graph/--eager"),
    calibration: str = typer.Option("auto"),
    state: str = typer.Option("sustained", help="comma-separated: sustained, burst"),
    power_cap: Optional[str] = typer.Option(None, "--power-cap", help="comma-separated power caps in W"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="write all rows to this CSV file (atomically)"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Cartesian sweep over scenario fields; one row per point."""
    args = dict(batch=_ints("batch", batch), prompt_tokens=_ints("prompt_tokens", prompt_tokens),
                output_tokens=_ints("output_tokens", output_tokens),
                weight_dtype=weight_dtype.split(","), kv_dtype=kv_dtype.split(","),
                activation_dtype=activation_dtype.split(","),
                tensor_parallel=_ints("tensor_parallel", tensor_parallel), cuda_graph=cuda_graph,
                state=state.split(","),
                power_cap_w=[float(c) for c in _ints("power_cap", power_cap)] if power_cap else None)
    if csv is not None and not as_json:  # streamed chunk by chunk: any size fits in memory
        n = _stream_csv(csv, simulator.sweep_chunks(hardware, model, _calibration_arg(calibration), **args))
        err.print(f"wrote {n} rows to {csv}")
        return
    df = simulator.sweep(hardware, model, calibration=_calibration_arg(calibration), **args)
    if csv is not None:
        _write_csv(csv, df.to_csv(index=False))
        err.print(f"wrote {len(df)} rows to {csv}")
    if as_json:
        out.print_json(json.dumps(df.to_dict(orient="records"), default=_json_default))
    elif csv is None:
        t = Table(title=f"{model} on {hardware}: {len(df)} points")
        cols = ["batch", "prompt_tokens", "output_tokens", "weight_dtype", "kv_dtype", "ttft_s", "tpot_s",
                "decode_tokens_per_s", "peak_memory_bytes", "fits"]
        for c in cols:
            t.add_column(c)
        for r in df.head(200).itertuples():
            t.add_row(str(r.batch), str(r.prompt_tokens), str(r.output_tokens), str(r.weight_dtype),
                      str(r.kv_dtype), display.seconds(r.ttft_s), display.seconds(r.tpot_s),
                      f"{r.decode_tokens_per_s:,.0f}", display.size(r.peak_memory_bytes), str(r.fits))
        out.print(t)


@app.command()
@friendly
def bounds(
    hardware: str = typer.Option("a100-sxm4-80gb", "--hardware", "-H"),
    model: str = typer.Option("yi-34b", "--model", "-m"),
    context: str = typer.Option("4096,50000", help="context lengths"),
    kv_dtype: str = typer.Option("bf16"),
    tensor_parallel: int = typer.Option(1, help="GPUs sharing the model (adds their HBM)"),
    calibration: str = typer.Option("auto"),
    as_json: bool = typer.Option(False, "--json"),
):
    """Fu's four long-context bounds (arXiv 2405.08944): prefill, decode, concurrency, context switch."""
    df = simulator.long_context_bounds(hardware, model, _ints("context", context),
                                       calibration=_calibration_arg(calibration), kv_dtype=kv_dtype,
                                       tensor_parallel=tensor_parallel)
    if as_json:
        out.print_json(json.dumps(df.to_dict(orient="records"), default=_json_default))
        return
    t = Table(title=f"{model} on {tensor_parallel}× {hardware}: long-context bounds (KV {kv_dtype}, "
                    f"{df.kv_bytes_per_token.iloc[0]:,.0f} bytes/token)")
    for c in ("context", "KV / user", "concurrency", "prefill", "decode step (all users)", "context switch",
              "recompute", "cheaper"):
        t.add_column(c)
    for r in df.itertuples():
        t.add_row(f"{r.context_tokens:,}", display.size(r.kv_bytes_per_user), str(r.max_concurrency),
                  display.seconds(r.prefill_s),
                  f"{display.seconds(r.decode_step_s)} ({r.decode_users} users)" if r.decode_users else "none fit",
                  display.seconds(r.context_switch_s), display.seconds(r.recompute_s), r.cheaper_switch)
    out.print(t)


def _kernel_help() -> str:
    """One line per op kind, from the registry: name and shape arguments (defaults in brackets)."""
    def arg(f):
        return f.name if f.default is None else f"{f.name}[={str(f.default).lower()}]"
    return "; ".join(f"{k.name}: {' '.join(arg(f) for f in k.shape)}" for k in simulator.KINDS.values())


def _shape_args(name: str, items: list[str]) -> dict:
    """-s key=value pairs as the kind's typed shape arguments (the kind checks ranges and names)."""
    fields = {f.name: f for f in simulator.KINDS[name].shape} if name in simulator.KINDS else {}
    kw = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--shape takes key=value, got {item!r}")
        k, v = item.split("=", 1)
        kind = fields[k].type if k in fields else "int"
        if kind == "bool":
            if v.lower() not in ("true", "false"):
                raise UserError(f"--shape {k} must be true or false, got {v!r}")
            kw[k] = v.lower() == "true"
        elif kind == "dtype":
            kw[k] = v
        else:
            try:
                kw[k] = float(v) if any(ch in v for ch in ".e") else int(v)
            except ValueError:
                raise UserError(f"--shape {k} must be a number, got {v!r}") from None
    return kw


@app.command(help=f"Predict one kernel's GPU time. Kernels and their -s shape arguments: {_kernel_help()}.")
@friendly
def kernel(
    name: str = typer.Argument(..., help=" | ".join(simulator.KINDS)),
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", "-H"),
    shape: list[str] = typer.Option([], "--shape", "-s", help="key=value, e.g. -s m=4096 -s n=4096 -s k=4096"),
    impl: str = typer.Option("vendor", help="vendor | triton"),
    calibration: str = typer.Option("auto"),
    state: str = typer.Option("sustained", help="sustained (run back to back, power-limited) | burst (after idle)"),
    launch: str = typer.Option("graph", help="graph (GPU time) | eager (one call timed alone, host launch included)"),
    power_cap: Optional[float] = typer.Option(None, "--power-cap", help="power limit in W (what-if)"),
    sm_clock: Optional[float] = typer.Option(None, "--sm-clock", help="locked SM clock in MHz (what-if)"),
    as_json: bool = typer.Option(False, "--json"),
):
    kw = _shape_args(name, shape)
    kp = simulator.predict_kernel(hardware, name, calibration=_calibration_arg(calibration), impl=impl, state=state,
                                  launch=launch, power_cap_w=power_cap, sm_clock_hz=_hz(sm_clock), **kw)
    d = {"kernel": name, "hardware": hardware, "impl": impl, "state": state, "launch": launch, **kw,
         "time_s": kp.time_s, "gpu_s": kp.gpu_s, "flops": kp.flops, "hbm_bytes": kp.hbm_bytes,
         "dram_bytes": kp.dram_bytes, "bound": kp.bound, "power_w": kp.power_w, "energy_j": kp.energy_j,
         "clock_hz": kp.clock_hz}
    if as_json:
        _print_json(d)
        return
    out.print(f"{name} on {hardware} ({impl}, {state}, {launch}): {display.seconds(kp.time_s)} ({kp.bound}-bound), "
              f"{display.rate(kp.flops / kp.gpu_s, 'FLOP')}, {display.rate(kp.hbm_bytes / kp.gpu_s, 'B')}, "
              f"{kp.power_w:.0f} W at {kp.clock_hz / 1e6:.0f} MHz")


@app.command()
@friendly
def power(
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", "-H"),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    caps: Optional[str] = typer.Option(None, help="power caps in W, e.g. 700,560,420,350 (default 100-50% of TDP)"),
    batch: int = typer.Option(16),
    prompt_tokens: int = typer.Option(2048),
    output_tokens: int = typer.Option(256),
    tensor_parallel: int = typer.Option(1),
    weight_dtype: str = typer.Option("bf16"),
    kv_dtype: str = typer.Option("bf16"),
    calibration: str = typer.Option("auto"),
    chart: Optional[Path] = typer.Option(None, "--chart", help="also write a PNG chart here (atomically)"),
    as_json: bool = typer.Option(False, "--json"),
):
    """TTFT, TPOT, throughput, power and J/token against the power cap (sustained operation)."""
    cap_list = [float(c) for c in _ints("caps", caps)] if caps else power_report.default_caps_w(hardware)
    df = power_report.power_table(hardware, model, cap_list, _calibration_arg(calibration), batch=batch,
                                  prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                                  tensor_parallel=tensor_parallel, weight_dtype=weight_dtype, kv_dtype=kv_dtype)
    if chart is not None:
        if not chart.resolve().parent.is_dir():
            raise UserError(f"--chart: folder {chart.resolve().parent} does not exist")
        power_report.chart(df, chart, f"{model} on {hardware} (TP {tensor_parallel}), batch {batch}")
        err.print(f"wrote {chart}")
    if as_json:
        out.print_json(json.dumps(df.to_dict(orient="records"), default=_json_default))
        return
    t = Table(title=f"{model} on {hardware} (TP {tensor_parallel}), batch {batch} × ({prompt_tokens} + "
                    f"{output_tokens}) tokens, sustained")
    for c in ("cap", "TTFT", "TPOT", "decode tok/s", "prefill W @ MHz", "decode W @ MHz", "J/token"):
        t.add_column(c)
    for r in df.itertuples():
        t.add_row(f"{r.power_cap_w:.0f} W", display.seconds(r.ttft_s), display.seconds(r.tpot_s),
                  f"{r.decode_tokens_per_s:,.0f}", f"{r.prefill_power_w:.0f} @ {r.prefill_clock_hz / 1e6:.0f}",
                  f"{r.decode_power_w:.0f} @ {r.decode_clock_hz / 1e6:.0f}", f"{r.energy_per_output_token_j:.3f}")
    out.print(t)


# validate / calibrate / compare: their work lives in validate/ and imports torch only when a command runs.
register_validate_commands(app, friendly, UserError)
# serve / oversubscribe / calibrate-engine: simulator.serving
register_serving_commands(app, friendly, UserError)
register_compare_commands(app, friendly, UserError)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
