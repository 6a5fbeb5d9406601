"""The ``hwperf`` command line: a thin shell over the public Python API.

Bad input prints one line naming the field and what is allowed, and exits with code 2 (no traceback).
``--json`` prints machine-readable output (SI units, unit-suffixed keys).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

import hwspecs
import simulator
import workloads
from faces import display
from faces.cli_io import UserError, _ints, _print_json, _stream_csv, _write_csv, err, friendly, out
from simulator.lazy import lazy_module
from faces.compare_commands import register as register_compare_commands
from faces.long_context_commands import register as register_long_context_commands
from faces.serving_commands import register as register_serving_commands
from faces.validate_commands import register as register_validate_commands

power_report = lazy_module("faces.power_report")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="hwperf: LLM inference performance on described hardware, checked against real kernels.")

DEFAULT_HARDWARE = "h100-sxm5-80gb"
DEFAULT_MODEL = "llama-3-8b"


# Help shared by the commands' options: choices, units and where to look.
H_HW = "hardware id, system id (e.g. dgx-h100) or spec YAML path; ids: hwperf list hardware"
H_MODEL = "model id or model YAML path; ids: hwperf list models"
H_W = "weight storage dtype: fp32, bf16, fp16, fp8, int8, int4 (int4: fp16 scale per 128 weights)"
H_A = "activation / matmul dtype: fp32, tf32, bf16, fp16, fp8, or int8 with --weight-dtype int8 (W8A8) (the device needs that unit)"
H_KV = "KV-cache storage dtype: fp32, bf16, fp16, fp8, int8, int4"
H_CAL = ("auto (the device's profile, else a same-architecture transfer, else defaults) | none (datasheet "
         "peaks) | path to a calibration YAML")
H_TP = "tensor-parallel GPUs per model replica; must divide the query heads (and KV heads, or be a multiple)"
H_JSON = "machine-readable output (SI units, unit-suffixed keys)"
H_LIST = "comma-separated; integers also as start:stop:step, e.g. "


def _calibration_arg(value: str):
    return None if value.lower() in ("none", "datasheet") else value


def _hz(mhz: float | None) -> float | None:
    """--sm-clock is given in MHz; the API takes Hz."""
    return None if mhz is None else mhz * 1e6


def _print_ops(p, wide: bool) -> None:
    """The per-op table, one row per op and a launch/gap row per pass (pass time − Σ op times); 80 columns
    unless ``wide``."""
    df = p.ops
    cols = ["op", "×", "time", "total", "share", "bound", "FLOP/B"]
    if wide:
        cols += ["kind", "FLOPs", "bytes", "power", "clock"]
    t = Table(title="per-op: time per execution, total = × repeats, share of the pass", box=box.SIMPLE_HEAD,
              pad_edge=False, collapse_padding=True, title_justify="left")
    for c in cols:
        t.add_column(c, justify="left" if c in ("op", "bound", "kind") else "right", no_wrap=c == "op")
    for phase, g in df.groupby("phase", sort=False):
        pass_s = p.pass_times_s[phase]
        t.add_row(f"[b]{phase}[/b] ({display.seconds_short(pass_s)})", *[""] * (len(cols) - 1))
        for r in g.itertuples():
            cells = [f"  {r.op}", str(r.n_repeats), display.seconds_short(r.time_s), display.seconds_short(r.total_time_s),
                     f"{r.total_time_s / pass_s:.0%}", r.bound, f"{r.intensity_flops_per_byte:,.0f}"]
            if wide:
                cells += [r.kind, f"{r.flops:.3g}", display.size(r.hbm_bytes), f"{r.power_w:.0f} W",
                          f"{r.clock_hz / 1e6:.0f} MHz"]
            t.add_row(*cells)
        gap = pass_s - g.total_time_s.sum()
        t.add_row("  launch + gaps", "", "", display.seconds_short(gap), f"{gap / pass_s:.0%}", "launch", "",
                  *([""] * 5 if wide else []))
    if wide:
        from rich.console import Console
        Console(width=max(out.width, 150)).print(t)
    else:
        out.print(t)


@app.command()
@friendly
def predict(
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", "-H", help=H_HW),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=H_MODEL),
    batch: int = typer.Option(16, help="requests decoded together (static batch)"),
    prompt_tokens: int = typer.Option(2048, help="prompt length per request, tokens"),
    output_tokens: int = typer.Option(256, help="generated tokens per request"),
    weight_dtype: str = typer.Option("bf16", help=H_W),
    activation_dtype: str = typer.Option("bf16", help=H_A),
    kv_dtype: str = typer.Option("bf16", help=H_KV),
    kv_method: Optional[str] = typer.Option(None, "--kv-method", help="KV compression: kivi-2 (8/4/3/2), kvquant-3, "
                                            "h2o, shadowkv, minicache (options: kivi-2:group=64,residual=32)"),
    cuda_graph: bool = typer.Option(True, "--cuda-graph/--eager", help="decode from CUDA graphs or eagerly"),
    tensor_parallel: int = typer.Option(1, help=H_TP),
    pipeline_parallel: int = typer.Option(1, help="pipeline stages (consecutive layers per stage), e.g. 2"),
    expert_parallel: int = typer.Option(1, help="GPUs the MoE experts are split over, e.g. 8"),
    data_parallel_attention: bool = typer.Option(False, "--data-parallel-attention",
                                                 help="attention data-parallel over expert_parallel/tensor_parallel "
                                                      "groups, all-to-all to the experts (DeepSeek layout)"),
    micro_batches: Optional[int] = typer.Option(None, help="pipeline micro-batches (default: pipeline_parallel)"),
    overlap_comm: bool = typer.Option(False, "--overlap-comm", help="overlap collectives with the next block"),
    collective_algorithm: str = typer.Option("ring", help="ring | tree"),
    calibration: str = typer.Option("auto", help=H_CAL),
    state: str = typer.Option("sustained", help="sustained (continuous load, power-limited clock) | burst"),
    power_cap: Optional[float] = typer.Option(None, "--power-cap", help="power limit in W (what-if)"),
    sm_clock: Optional[float] = typer.Option(None, "--sm-clock", help="locked SM clock in MHz (what-if)"),
    ops: bool = typer.Option(False, "--ops", help="also print the per-op table (80 columns; --wide for every column)"),
    wide: bool = typer.Option(False, "--wide", help="per-op table with every column (FLOPs, bytes, power, clock)"),
    as_json: bool = typer.Option(False, "--json", help=H_JSON),
):
    """Predict TTFT, TPOT, throughput, power, energy, memory and concurrency for one serving scenario."""
    sc = workloads.Scenario(batch=batch, prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                            weight_dtype=weight_dtype, activation_dtype=activation_dtype, kv_dtype=kv_dtype,
                            cuda_graph=cuda_graph, tensor_parallel=tensor_parallel, state=state,
                            power_cap_w=power_cap, sm_clock_hz=_hz(sm_clock), pipeline_parallel=pipeline_parallel,
                            expert_parallel=expert_parallel, data_parallel_attention=data_parallel_attention,
                            micro_batches=micro_batches, overlap_comm=overlap_comm,
                            collective_algorithm=collective_algorithm, kv_method=kv_method)
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
        _print_ops(p, wide)


LIST_WHAT = ("hardware", "models", "all")


def _hardware_rows(ids) -> list[dict]:
    """Key figures of each GPU: memory, bandwidth, dense bf16/fp8 FLOP/s, TDP and calibration source."""
    from simulator.trust import resolve_trust

    rows = []
    for i in ids:
        hw = hwspecs.load(i)
        rows.append({"id": i, "name": hw.name, "memory_bytes": hw.memory_bytes,
                     "memory_bandwidth_bytes_per_s": hw.memory_bandwidth_bytes_per_s,
                     "bf16_flops_per_s": hw.peak_flops_per_s.get("bf16"),
                     "fp8_flops_per_s": hw.peak_flops_per_s.get("fp8"), "tdp_w": hw.tdp_w,
                     "calibration": resolve_trust(hw, "auto").source})
    return rows


@app.command("list", help="List built-in specs: hardware (GPUs with memory, bandwidth, dense FLOP/s, TDP and "
             "calibration source), models, or all (also links, host memory, SSDs, systems). "
             "Example: hwperf list hardware --json")
@friendly
def list_(what: str = typer.Argument("hardware", help="hardware | models | all"),
          as_json: bool = typer.Option(False, "--json", help=H_JSON)):
    if what not in LIST_WHAT:
        raise UserError(f"list takes one of {', '.join(LIST_WHAT)}, got {what!r}")
    if what == "models":
        ms = [workloads.load_model(i) for i in workloads.available_models()]
        items = [{"id": m.id, "name": m.name, "params": m.total_params, "max_context_tokens": m.max_context_tokens}
                 for m in ms]
    elif what == "hardware":
        items = _hardware_rows(hwspecs.available("gpu"))
    else:
        items = [{"id": i, "kind": hwspecs.load(i).kind, "name": hwspecs.load(i).name} for i in hwspecs.available()]
    if as_json:
        out.print_json(json.dumps(items))
        return
    t = Table(title=what, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    if what == "hardware":
        t.title = "GPUs: memory (GiB), memory bandwidth (TB/s), dense tensor TFLOP/s, TDP (W)"
        for c in ("id", "memory", "TB/s", "bf16 TFLOP/s", "fp8 TFLOP/s", "TDP", "calibration"):
            t.add_column(c, justify="left" if c in ("id", "calibration") else "right",
                         no_wrap=c in ("id", "calibration"))
        for r in items:
            t.add_row(r["id"], f"{r['memory_bytes'] / 2**30:.0f} GiB", f"{r['memory_bandwidth_bytes_per_s'] / 1e12:.2f}",
                      f"{r['bf16_flops_per_s'] / 1e12:,.0f}" if r["bf16_flops_per_s"] else "—",
                      f"{r['fp8_flops_per_s'] / 1e12:,.0f}" if r["fp8_flops_per_s"] else "—",
                      f"{r['tdp_w']:.0f} W", r["calibration"])
    else:
        for c in items[0]:
            t.add_column(c)
        for it in items:
            t.add_row(*(f"{v / 1e9:.2f} B" if k == "params" else f"{v:,}" if isinstance(v, int) else str(v)
                        for k, v in it.items()))
    out.print(t)


SWEEP_AXES = ("batch", "prompt_tokens", "output_tokens", "weight_dtype", "kv_dtype", "activation_dtype",
              "tensor_parallel", "state", "power_cap_w")


def _sweep_table(df, title: str, max_rows: int = 200):
    """The swept axes (those with more than one value; batch if none), then the results; 80 columns.
    Points that cannot run show their limit (memory / context) instead of a ✓."""
    axes = [a for a in SWEEP_AXES if a in df and df[a].nunique() > 1] or ["batch"]
    t = Table(title=title + ("" if len(df) <= max_rows else f" (first {max_rows}; --csv for all)"),
              box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left")
    short = {"prompt_tokens": "prompt", "output_tokens": "output", "tensor_parallel": "TP",
             "weight_dtype": "W", "kv_dtype": "KV", "activation_dtype": "act", "power_cap_w": "cap W"}
    for a in axes:
        t.add_column(short.get(a, a), justify="right")
    for c in ("TTFT", "TPOT", "tok/s", "memory", "conc", "fits"):
        t.add_column(c, justify="right")
    for r in df.head(max_rows).itertuples():
        fits = "✓" if r.fits else f"✗ {getattr(r, 'limit', '')}".strip()
        t.add_row(*(str(getattr(r, a)) for a in axes), display.seconds_short(r.ttft_s), display.seconds_short(r.tpot_s),
                  f"{r.decode_tokens_per_s:,.0f}", display.gib(r.peak_memory_bytes), f"{r.max_concurrency:,}", fits)
    return t


@app.command()
@friendly
def sweep(
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", "-H", help=H_HW),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=H_MODEL),
    batch: str = typer.Option("1,2,4,8,16,32,64,128", help=H_LIST + "1,8,64 or 1:256:8 (requests per batch)"),
    prompt_tokens: str = typer.Option("2048", help=H_LIST + "512,2048,8192 (tokens)"),
    output_tokens: str = typer.Option("256", help=H_LIST + "128,256 (tokens)"),
    weight_dtype: str = typer.Option("bf16", help="comma-separated weight dtypes: fp32, bf16, fp16, fp8, int8, int4"),
    kv_dtype: str = typer.Option("bf16", help="comma-separated KV dtypes: fp32, bf16, fp16, fp8, int8, int4"),
    activation_dtype: str = typer.Option("bf16", help="comma-separated activation dtypes: fp32, tf32, bf16, fp16, "
                                                        "fp8, int8 (W8A8: with int8 weights)"),
    tensor_parallel: str = typer.Option("1", help=H_LIST + "1,2,4,8 (GPUs per replica)"),
    cuda_graph: bool = typer.Option(True, "--cuda-graph/--eager", help="decode from CUDA graphs or eagerly"),
    calibration: str = typer.Option("auto", help=H_CAL),
    state: str = typer.Option("sustained", help="comma-separated: sustained, burst"),
    power_cap: Optional[str] = typer.Option(None, "--power-cap", help="comma-separated power caps in W"),
    csv: Optional[Path] = typer.Option(None, "--csv", help="write all rows to this CSV file (atomically)"),
    as_json: bool = typer.Option(False, "--json", help=H_JSON),
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
        _print_json(df.to_dict(orient="records"))
    elif csv is None:
        out.print(_sweep_table(df, f"{model} on {hardware}: {len(df)} points"))


@app.command()
@friendly
def bounds(
    hardware: str = typer.Option("a100-sxm4-80gb", "--hardware", "-H", help=H_HW),
    model: str = typer.Option("yi-34b", "--model", "-m", help=H_MODEL),
    context: str = typer.Option("4096,50000", help=H_LIST + "4096,50000,200000 (tokens per request)"),
    kv_dtype: str = typer.Option("bf16", help=H_KV),
    tensor_parallel: int = typer.Option(1, help="GPUs sharing the model (their memory adds up); same rules as predict"),
    calibration: str = typer.Option("auto", help=H_CAL),
    as_json: bool = typer.Option(False, "--json", help=H_JSON),
):
    """Fu's four long-context bounds (arXiv 2405.08944): prefill, decode, concurrency, context switch."""
    df = simulator.long_context_bounds(hardware, model, _ints("context", context),
                                       calibration=_calibration_arg(calibration), kv_dtype=kv_dtype,
                                       tensor_parallel=tensor_parallel)
    if as_json:
        _print_json(df.to_dict(orient="records"))
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
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", "-H", help=H_HW),
    shape: list[str] = typer.Option([], "--shape", "-s", help="key=value, e.g. -s m=4096 -s n=4096 -s k=4096"),
    impl: str = typer.Option("vendor", help="vendor | triton"),
    calibration: str = typer.Option("auto", help=H_CAL),
    state: str = typer.Option("sustained", help="sustained (run back to back, power-limited) | burst (after idle)"),
    launch: str = typer.Option("graph", help="graph (GPU time) | eager (one call timed alone, host launch included)"),
    power_cap: Optional[float] = typer.Option(None, "--power-cap", help="power limit in W (what-if)"),
    sm_clock: Optional[float] = typer.Option(None, "--sm-clock", help="locked SM clock in MHz (what-if)"),
    as_json: bool = typer.Option(False, "--json", help=H_JSON),
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
    hardware: str = typer.Option(DEFAULT_HARDWARE, "--hardware", "-H", help=H_HW),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=H_MODEL),
    caps: Optional[str] = typer.Option(None, help="power caps in W, e.g. 700,560,420,350 (default 100-50% of TDP)"),
    batch: int = typer.Option(16, help="requests decoded together"),
    prompt_tokens: int = typer.Option(2048, help="prompt length per request, tokens"),
    output_tokens: int = typer.Option(256, help="generated tokens per request"),
    tensor_parallel: int = typer.Option(1, help=H_TP),
    weight_dtype: str = typer.Option("bf16", help=H_W),
    kv_dtype: str = typer.Option("bf16", help=H_KV),
    calibration: str = typer.Option("auto", help=H_CAL),
    chart: Optional[Path] = typer.Option(None, "--chart", help="also write a PNG chart here (atomically)"),
    as_json: bool = typer.Option(False, "--json", help=H_JSON),
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
        _print_json(df.to_dict(orient="records"))
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
register_long_context_commands(app, friendly, UserError)


def main() -> None:
    """The console script. A usage error (a malformed option value, an unknown option) is one line on
    stderr and exit code 2 like every other bad input, instead of the multi-line usage box."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        raise SystemExit(1) from None
    except Exception as e:  # click's UsageError (exit_code 2), vendored by typer: matched by its interface
        if getattr(e, "exit_code", None) != 2 or not hasattr(e, "format_message"):
            raise
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:  # bare `hwperf`: its help, as before
            out.print(ctx.get_help(), highlight=False, markup=False)
            raise SystemExit(2) from None
        where = f"{ctx.command_path.split(' ', 1)[-1]}: " if ctx is not None and " " in ctx.command_path else ""
        err.print(f"error: {where}{' '.join(e.format_message().split())}", highlight=False, markup=False,
                  soft_wrap=True)
        raise SystemExit(2) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
