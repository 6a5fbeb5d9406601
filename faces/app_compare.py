"""The app's comparison page: several deployments side by side (``simulator.compare_grid``), their table in
human units, bar charts of the figures a capacity planner compares, and a PNG report. No Streamlit here."""

from __future__ import annotations

import io

import simulator
from faces import display

DEFAULT_GPUS = ("h100-sxm5-80gb", "h200-sxm-141gb", "mi300x")
# (column, label, unit scale, better) for the charts and the PNG report
FIGURES = (("ttft_s", "TTFT (s)", 1.0), ("tpot_s", "TPOT (ms)", 1e3),
           ("output_tokens_per_s_per_gpu", "output tok/s per GPU", 1.0),
           ("output_tokens_per_usd", "M output tokens per USD", 1e-6))


def compare_frame(hardware, model, tensor_parallel, weight_dtype, scenario: dict, calibration="auto",
                  prices_usd_per_gpu_hour=None):
    return simulator.compare_grid(list(hardware), model, calibration=calibration,
                                  prices_usd_per_gpu_hour=prices_usd_per_gpu_hour,
                                  tensor_parallel=list(tensor_parallel), weight_dtype=list(weight_dtype), **scenario)


def label(r) -> str:
    return f"{r.hardware} TP{r.tensor_parallel} {r.weight_dtype}"


def compare_table(df):
    """One row per configuration in human units; a configuration that cannot run shows why."""
    import pandas as pd

    def fmt(fn):
        return lambda x: "—" if x != x else fn(x)

    return pd.DataFrame({
        "configuration": [label(r) for r in df.itertuples()],
        "fits": df.fits.map({True: "✓", False: "✗"}),
        "TTFT": df.ttft_s.map(fmt(display.seconds)), "TPOT": df.tpot_s.map(fmt(display.seconds)),
        "tok/s per GPU": df.output_tokens_per_s_per_gpu.map(fmt(lambda x: f"{x:,.0f}")),
        "tok per $": df.output_tokens_per_usd.map(fmt(lambda x: f"{x:,.0f}")),
        "$/GPU-h": df.usd_per_gpu_hour.map(fmt(lambda x: f"{x:.2f}")),
        "memory / GPU": df.peak_memory_bytes.map(fmt(display.gib)),
        "max concurrency": df.max_concurrency.map(fmt(lambda x: f"{x:,.0f}")),
        "J/token": df.energy_per_output_token_j.map(fmt(lambda x: f"{x:.3f}")),
        "calibration": [f"{r.calibration_source} ({r.ttft_error_frac:.0%} / {r.tpot_error_frac:.0%})"
                        if r.fits else "" for r in df.itertuples()],
        "why not": df.limit})


def compare_figure(df):
    """Four bar panels (feasible configurations only), one colour per hardware in every panel."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    ok = df[df.fits]
    fig = make_subplots(rows=1, cols=len(FIGURES), subplot_titles=[f[1] for f in FIGURES])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    colours = {hw: palette[i % len(palette)] for i, hw in enumerate(dict.fromkeys(df.hardware))}
    for col, (name, _, scale) in enumerate(FIGURES, 1):
        for hw, g in ok.groupby("hardware", sort=False):
            fig.add_trace(go.Bar(x=[label(r) for r in g.itertuples()], y=g[name] * scale, name=hw,
                                 marker_color=colours[hw], showlegend=col == 1, legendgroup=hw), row=1, col=col)
    fig.update_xaxes(showticklabels=False)
    fig.update_layout(height=380, legend={"orientation": "h", "y": -0.1}, margin={"t": 60})
    return fig


def report_png(df, title: str) -> bytes:
    """The comparison as a PNG (matplotlib, no browser needed): the four panels of compare_figure."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[df.fits]
    fig, axes = plt.subplots(1, len(FIGURES), figsize=(16, 4.2))
    labels = [label(r) for r in ok.itertuples()]
    for ax, (name, text, scale) in zip(axes, FIGURES):
        ax.barh(labels, ok[name] * scale, color="#1f77b4")
        ax.set_title(text, fontsize=10)
        ax.invert_yaxis()
        ax.tick_params(labelsize=8)
    for ax in axes[1:]:
        ax.set_yticklabels([])
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
