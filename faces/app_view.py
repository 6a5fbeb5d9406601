"""What the Streamlit page shows, built from the public API: headline metrics, caption, figures and the
batch sweep. No Streamlit here, so the content is testable without a browser; app.py only lays it out.
"""

from __future__ import annotations

from typing import NamedTuple

import plotly.express as px

import hwspecs
import simulator
import workloads
from faces import display, power_report

# Stable colours and labels: the same use has the same colour in every view and every run.
MEMORY_LABELS = {"weights_bytes": "Weights", "kv_cache_bytes": "KV cache", "activation_bytes": "Activations",
                 "workspace_bytes": "Reserve (outside the engine's share)", "free_bytes": "Free"}
MEMORY_COLOURS = {"weights_bytes": "#1f77b4", "kv_cache_bytes": "#ff7f0e", "activation_bytes": "#2ca02c",
                  "workspace_bytes": "#7f7f7f", "free_bytes": "#dddddd"}
BOUND_COLOURS = {"compute": "#1f77b4", "memory": "#ff7f0e", "latency": "#9467bd", "link": "#8c564b",
                 "power": "#d62728", "launch": "#7f7f7f"}
PHASE_COLOURS = {"prefill": "#1f77b4", "decode": "#ff7f0e"}

# Batch sizes of the sweep tab: powers of two up to where most models stop fitting on one GPU.
SWEEP_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metric(NamedTuple):
    label: str
    value: str
    help: str | None = None


def headline_metrics(p: simulator.Prediction, scenario: workloads.Scenario) -> list[Metric]:
    """The headline figures, formatted for people (prefixed units; short values, units in the label where
    needed, so a metric card never truncates)."""
    return [
        Metric("TTFT", display.seconds_short(p.ttft_s), f"prefill of the static batch, {p.prefill_bound}-bound"),
        Metric("TPOT", display.seconds_short(p.tpot_s), f"mean decode step, {p.decode_bound}-bound"),
        Metric("End-to-end", display.seconds_short(p.e2e_s)),
        Metric("Decode tok/s", f"{p.decode_tokens_per_s:,.0f}", "generated tokens per second across the batch"),
        Metric("Max concurrency", f"{p.max_concurrency}", f"requests of {scenario.context_tokens} tokens"),
        Metric("Power (W)", f"{p.prefill_power_w:.0f} / {p.decode_power_w:.0f}",
               f"prefill / decode, {p.state}; clocks {p.prefill_clock_hz / 1e6:.0f} / {p.decode_clock_hz / 1e6:.0f} MHz"),
        Metric("J / token", f"{p.energy_per_output_token_j:.3f}", f"{p.output_tokens_per_j:.2f} output tokens per J"),
        Metric("Calibration", p.trust.source.replace("datasheet-only", "datasheet"), p.trust.label()),
    ]


def caption(p: simulator.Prediction) -> str:
    return (f"Calibration: {p.trust.label()} · peak memory per GPU {display.gib(p.peak_memory_bytes)} · "
            f"HBM traffic {display.size(p.hbm_bytes)}")


def ops_with_launch(p: simulator.Prediction):
    """The per-op table plus one "launch + gaps" row per pass: the pass time the user sees minus the sum
    of its kernels (eager launch rate, CUDA-graph gaps), so the bars add up to TTFT and to the decode step."""
    import pandas as pd

    ops = p.ops
    rows = []
    for phase, pass_s in p.pass_times_s.items():
        gap = pass_s - ops.loc[ops.phase == phase, "total_time_s"].sum()
        rows.append({"phase": phase, "op": "launch + gaps", "kind": "launch", "n_repeats": 1, "total_time_s": gap,
                     "time_s": gap, "bound": "launch"})
    return pd.concat([ops, pd.DataFrame(rows)], ignore_index=True)


def ops_figure(ops):
    """Time per pass by op, one facet per phase, coloured by what bounds each op (launch + gaps included)."""
    df = ops.assign(time_ms=ops.total_time_s * 1e3)
    fig = px.bar(df, x="time_ms", y="op", color="bound", facet_col="phase", orientation="h",
                 color_discrete_map=BOUND_COLOURS, labels={"time_ms": "time per pass (ms)", "op": ""},
                 hover_data={"n_repeats": True, "time_ms": ":.3f"})
    # Prefill and decode differ by orders of magnitude: each facet gets its own time axis.
    fig.update_xaxes(matches=None)
    return fig


def ops_table(ops):
    """The per-op table in human units (what the app shows; the CSV download keeps SI columns)."""
    import pandas as pd

    return pd.DataFrame({
        "phase": ops.phase, "op": ops.op, "×": ops.n_repeats, "time": ops.time_s.map(display.seconds),
        "total": ops.total_time_s.map(display.seconds), "bound": ops.bound,
        "FLOPs": ops.flops.map(lambda x: "" if x != x else display.rate(x, "FLOP").removesuffix("/s")),
        "HBM bytes": ops.hbm_bytes.map(lambda x: "" if x != x else display.size(x)),
        "FLOP/byte": ops.intensity_flops_per_byte.map(lambda x: "" if x != x else f"{x:,.1f}"),
        "power": ops.power_w.map(lambda x: "" if x != x else f"{x:.0f} W")})


def roofline_points(p: simulator.Prediction):
    """Each op of both passes at its arithmetic intensity (FLOP per HBM byte) and achieved FLOP/s."""
    ops = p.ops
    ops = ops[(ops.flops > 0) & (ops.hbm_bytes > 0) & (ops.time_s > 0)]
    return ops.assign(achieved_flops_per_s=ops.flops / ops.time_s)


def roofline_figure(p: simulator.Prediction, hw_id: str, calibration):
    """Ops against the device's ceilings: datasheet (dense peak of the activation dtype, HBM bandwidth) and
    calibrated (× the fitted GEMM and copy efficiencies of the profile in use), log-log."""
    import numpy as np
    import plotly.graph_objects as go

    from simulator.api import resolve

    hw, _, prm, _ = resolve(hw_id, None, calibration)
    peak, bw = hw.peak(p.scenario.activation_dtype), hw.memory_bandwidth_bytes_per_s
    pts = roofline_points(p)
    lo = max(min(pts.intensity_flops_per_byte.min(), peak / bw) / 10, 1e-2) if len(pts) else 1e-2
    hi = max(pts.intensity_flops_per_byte.max() * 10 if len(pts) else 1e4, peak / bw * 10)
    x = np.geomspace(lo, hi, 200)
    fig = go.Figure()
    for name, c_peak, c_bw, dash in (("datasheet", peak, bw, "dash"),
                                     ("calibrated", peak * prm.gemm.efficiency_frac,
                                      bw * prm.memory.copy_efficiency_frac, "solid")):
        fig.add_trace(go.Scatter(x=x, y=np.minimum(c_peak, x * c_bw) / 1e12, mode="lines", name=f"{name} ceiling",
                                 line={"dash": dash, "color": "#444" if name == "datasheet" else "#d62728"}))
    for phase, g in pts.groupby("phase", sort=False):
        fig.add_trace(go.Scatter(
            x=g.intensity_flops_per_byte, y=g.achieved_flops_per_s / 1e12, mode="markers", name=f"{phase} ops",
            text=g.op, marker={"size": 9, "color": PHASE_COLOURS[phase]},
            hovertemplate="%{text}: %{x:,.1f} FLOP/B, %{y:,.2f} TFLOP/s<extra>" + phase + "</extra>"))
    fig.update_xaxes(type="log", title="arithmetic intensity (FLOP per HBM byte)")
    fig.update_yaxes(type="log", title="achieved TFLOP/s")
    fig.update_layout(title=f"Roofline: {hw.id}, {p.scenario.activation_dtype} peak {peak / 1e12:,.0f} TFLOP/s, "
                            f"HBM {bw / 1e12:.2f} TB/s", legend={"orientation": "h", "y": -0.2})
    return fig


def batch_sweep(hw_id: str, model_id: str, scenario: workloads.Scenario, calibration):
    """The scenario at every batch in SWEEP_BATCHES (one row each, with whether it fits and its limit)."""
    sc = scenario
    return simulator.sweep(hw_id, model_id, calibration=calibration, batch=list(SWEEP_BATCHES),
                           prompt_tokens=[sc.prompt_tokens], output_tokens=[sc.output_tokens],
                           weight_dtype=[sc.weight_dtype], kv_dtype=[sc.kv_dtype],
                           activation_dtype=[sc.activation_dtype], tensor_parallel=[sc.tensor_parallel],
                           cuda_graph=[sc.cuda_graph], memory_utilization_frac=[sc.memory_utilization_frac],
                           prefill_chunk_tokens=[sc.prefill_chunk_tokens])


def sweep_limit(df) -> str:
    """Where the sweep stops being feasible, in words ("" when every batch fits)."""
    bad = df[~df.fits]
    if bad.empty:
        return ""
    ok = df[df.fits]
    last = f"batch {ok.batch.max()} is the largest that fits" if len(ok) else "no batch fits"
    return f"{last}; from batch {bad.batch.min()} the limit is {bad.limit.iloc[0] or 'memory'}"


def sweep_figure(df):
    """Throughput against time per output token over the batches that fit (the serving trade-off the
    batch moves along); points past the limit are not drawn."""
    ok = df[df.fits].assign(tpot_ms=lambda d: d.tpot_s * 1e3)
    fig = px.line(ok, x="tpot_ms", y="decode_tokens_per_s", markers=True, text="batch",
                  labels={"tpot_ms": "TPOT (ms)", "decode_tokens_per_s": "decode tokens/s", "batch": "batch"})
    fig.update_traces(textposition="top left")
    limit = sweep_limit(df)
    if limit:
        fig.add_annotation(text=limit, xref="paper", yref="paper", x=1, y=0, showarrow=False, xanchor="right",
                           font={"color": "#d62728"})
    return fig


def sweep_table(df):
    import pandas as pd

    return pd.DataFrame({"batch": df.batch, "TTFT": df.ttft_s.map(display.seconds),
                         "TPOT": df.tpot_s.map(display.seconds),
                         "decode tok/s": df.decode_tokens_per_s.map(lambda x: f"{x:,.0f}"),
                         "memory / GPU": df.peak_memory_bytes.map(display.gib),
                         "fits": df.fits.map({True: "✓", False: "✗"}) + " " + df.limit.astype(str)})


def power_sweep(hw_id: str, model_id: str, scenario: workloads.Scenario, calibration):
    """The scenario under power caps from 100% to 50% of the device's limit (sustained operation)."""
    fields = scenario.model_dump(exclude={"power_cap_w", "state"})
    return power_report.power_table(hw_id, model_id, power_report.default_caps_w(hw_id), calibration, **fields)


def power_table(df):
    """The power-cap sweep in human units."""
    import pandas as pd

    return pd.DataFrame({"cap": df.power_cap_w.map(lambda x: f"{x:.0f} W"), "TTFT": df.ttft_s.map(display.seconds),
                         "TPOT": df.tpot_s.map(display.seconds),
                         "decode tok/s": df.decode_tokens_per_s.map(lambda x: f"{x:,.0f}"),
                         "prefill": [f"{w:.0f} W @ {c / 1e6:.0f} MHz" for w, c in zip(df.prefill_power_w, df.prefill_clock_hz)],
                         "decode": [f"{w:.0f} W @ {c / 1e6:.0f} MHz" for w, c in zip(df.decode_power_w, df.decode_clock_hz)],
                         "J/token": df.energy_per_output_token_j.map(lambda x: f"{x:.3f}")})


def power_figure(df):
    """TTFT and TPOT relative to the uncapped values, against the cap."""
    rel = df.assign(ttft=df.ttft_s / df.ttft_s.iloc[0], tpot=df.tpot_s / df.tpot_s.iloc[0],
                    j_per_token=df.energy_per_output_token_j / df.energy_per_output_token_j.iloc[0])
    return px.line(rel, x="power_cap_w", y=["ttft", "tpot", "j_per_token"], markers=True,
                   labels={"power_cap_w": "power cap (W)", "value": "relative to the uncapped value"})


def memory_breakdown_bytes(p: simulator.Prediction, hw_id: str) -> dict[str, float]:
    """Per-GPU memory by use, plus what is left free (never negative)."""
    free_bytes = max(hwspecs.resolve_hardware(hw_id).memory_bytes - p.peak_memory_bytes, 0.0)
    return {**p.memory, "free_bytes": free_bytes}


def memory_figure(mem_bytes: dict[str, float]):
    """Device memory per GPU in GiB, one bar segment per use, the same colour and label in every view."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for key, value in mem_bytes.items():
        label = MEMORY_LABELS.get(key, key)
        fig.add_trace(go.Bar(x=[value / 2**30], y=["per GPU"], orientation="h", name=label,
                             marker_color=MEMORY_COLOURS.get(key, "#999"),
                             hovertemplate=f"{label}: %{{x:.2f}} GiB<extra></extra>",
                             text=[f"{label} {value / 2**30:.1f} GiB"], textposition="inside"))
    fig.update_layout(barmode="stack", title="Device memory per GPU (GiB)", height=260,
                      xaxis_title="GiB", legend={"orientation": "h", "y": -0.4})
    return fig
