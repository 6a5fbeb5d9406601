"""``hwperf power``: what a power cap costs — TTFT, TPOT, throughput, power and J/token against the cap."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import hwspecs
import simulator
import workloads

COLUMNS = ["power_cap_w", "ttft_s", "tpot_s", "decode_tokens_per_s", "prefill_power_w", "decode_power_w",
           "prefill_clock_hz", "decode_clock_hz", "energy_per_output_token_j", "output_tokens_per_j"]


def default_caps_w(hardware) -> list[float]:
    """100%, 80%, 60% and 50% of the device's power limit."""
    tdp = hwspecs.resolve_hardware(hardware).tdp_w
    return [round(tdp * f) for f in (1.0, 0.8, 0.6, 0.5)]


def power_table(hardware, model, caps_w, calibration="auto", **scenario) -> pd.DataFrame:
    """One row per cap: the scenario served in the sustained state under that power limit."""
    rows = []
    for cap in caps_w:
        p = simulator.predict(hardware, model, workloads.Scenario(**scenario, power_cap_w=cap), calibration)
        rows.append([cap, p.ttft_s, p.tpot_s, p.decode_tokens_per_s, p.prefill_power_w, p.decode_power_w,
                     p.prefill_clock_hz, p.decode_clock_hz, p.energy_per_output_token_j, p.output_tokens_per_j])
    return pd.DataFrame(rows, columns=COLUMNS)


def chart(df: pd.DataFrame, path: Path, title: str) -> Path:
    """Four panels against the cap (each relative to the uncapped value): TTFT and TPOT, throughput,
    mean power of each phase, J per output token. Written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    cap = df["power_cap_w"]
    panels = ((("ttft_s", "TTFT"), ("tpot_s", "TPOT")), (("decode_tokens_per_s", "decode tokens/s"),),
              (("prefill_power_w", "prefill"), ("decode_power_w", "decode")),
              (("energy_per_output_token_j", "J / output token"),))
    for ax, series in zip(axes, panels):
        for col, label in series:
            ax.plot(cap, df[col], marker="o", label=label)
        ax.set_xlabel("power cap (W)")
        ax.invert_xaxis()
        ax.legend(fontsize=8)
    axes[0].set_ylabel("s")
    axes[2].set_ylabel("W")
    fig.suptitle(title)
    fig.tight_layout()
    path = hwspecs.write_atomic(path, lambda fh: fig.savefig(fh, dpi=110, format="png"), binary=True)
    plt.close(fig)
    return path
