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

# Batch sizes of the sweep tab: powers of two up to where most models stop fitting on one GPU.
SWEEP_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metric(NamedTuple):
    label: str
    value: str
    help: str | None = None


def headline_metrics(p: simulator.Prediction, scenario: workloads.Scenario) -> list[Metric]:
    """The five headline figures, formatted for people (prefixed units)."""
    return [
        Metric("TTFT", display.seconds(p.ttft_s), f"prefill, {p.prefill_bound}-bound"),
        Metric("TPOT", display.seconds(p.tpot_s), f"mean decode step, {p.decode_bound}-bound"),
        Metric("End-to-end", display.seconds(p.e2e_s)),
        Metric("Decode throughput", f"{p.decode_tokens_per_s:,.0f} tok/s"),
        Metric("Max concurrency", f"{p.max_concurrency}", f"requests of {scenario.context_tokens} tokens"),
        Metric("Power", f"{p.prefill_power_w:.0f} / {p.decode_power_w:.0f} W",
               f"prefill / decode, {p.state}; clocks {p.prefill_clock_hz / 1e6:.0f} / {p.decode_clock_hz / 1e6:.0f} MHz"),
        Metric("Energy", f"{p.energy_per_output_token_j:.3f} J/token", f"{p.output_tokens_per_j:.2f} output tokens per J"),
    ]


def caption(p: simulator.Prediction) -> str:
    return (f"Calibration: {p.trust.label()} · peak memory per GPU {display.size(p.peak_memory_bytes)} · "
            f"HBM traffic {display.size(p.hbm_bytes)}")


def ops_figure(ops):
    """Per-op time per pass, one facet per phase, coloured by what bounds each op."""
    fig = px.bar(ops, x="total_time_s", y="op", color="bound", facet_col="phase", orientation="h",
                 labels={"total_time_s": "time per pass (s)"})
    # Prefill and decode differ by orders of magnitude: each facet gets its own time axis.
    fig.update_xaxes(matches=None)
    return fig


def batch_sweep(hw_id: str, model_id: str, scenario: workloads.Scenario, calibration):
    """The scenario at every batch in SWEEP_BATCHES (one row each, with whether it fits)."""
    sc = scenario
    return simulator.sweep(hw_id, model_id, calibration=calibration, batch=list(SWEEP_BATCHES),
                           prompt_tokens=[sc.prompt_tokens], output_tokens=[sc.output_tokens],
                           weight_dtype=[sc.weight_dtype], kv_dtype=[sc.kv_dtype],
                           activation_dtype=[sc.activation_dtype], tensor_parallel=[sc.tensor_parallel],
                           cuda_graph=[sc.cuda_graph])


def sweep_figure(df):
    """Throughput against latency per token: the serving trade-off the batch size moves along."""
    return px.line(df, x="tpot_s", y="decode_tokens_per_s", markers=True, hover_data=["batch", "fits"],
                   labels={"tpot_s": "TPOT (s)", "decode_tokens_per_s": "decode tokens/s"})


def power_sweep(hw_id: str, model_id: str, scenario: workloads.Scenario, calibration):
    """The scenario under power caps from 100% to 50% of the device's limit (sustained operation)."""
    fields = scenario.model_dump(exclude={"power_cap_w", "state"})
    return power_report.power_table(hw_id, model_id, power_report.default_caps_w(hw_id), calibration, **fields)


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
    return px.pie(names=list(mem_bytes), values=list(mem_bytes.values()), title="Device memory per GPU")
