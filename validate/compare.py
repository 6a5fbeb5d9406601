"""Predicted vs measured, per case and per kernel class, for datasheet-only and calibrated predictions.

Errors are signed relative errors (predicted − measured) / measured; summaries report the absolute
error's mean (MAPE), median, p90 and max over the held-out (``score``) split unless asked otherwise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import hwspecs
from hwspecs.calibration import DEFAULT_CALIBRATION, Calibration
from simulator.kinds import KINDS
from validate.rows import as_flag, predict_layer, predict_rows, select_gpu_time_rows


def _cases(part: pd.DataFrame, kernel, impl: str, label: str, predicted_s) -> pd.DataFrame:
    """Tidy per-case rows of one prediction source."""
    return pd.DataFrame({
        "case_id": part["case_id"].values, "kernel": kernel, "impl": impl,
        "split": part["split"].values if "split" in part else "score", "source": label,
        "measured_s": part["median_s"].values, "predicted_s": predicted_s,
    })


def _with_error(frames: list[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(frames, ignore_index=True)
    out["error_frac"] = (out["predicted_s"] - out["measured_s"]) / out["measured_s"]
    return out


def _kernel_class(row) -> str:
    """The scoring class of a row, as its op kind declares it (e.g. host copies split pinned/pageable)."""
    kind = KINDS[row["kernel"]]
    return kind.case_class(kind, row)


def _layer_class(row) -> str:
    if row["mode"] != "decode":
        return "layer_prefill"
    return f"layer_decode_{'graph' if as_flag(row.get('graph')) else 'eager'}"


def compare_kernels(hardware_id: str, kernels: pd.DataFrame, calibrations: dict[str, Calibration | None]) -> pd.DataFrame:
    """One row per (case, prediction source). ``calibrations`` maps a label ("datasheet", "calibrated",
    "transfer") to a Calibration (None = datasheet peaks with public defaults)."""
    hw = hwspecs.resolve_hardware(hardware_id)
    frames = []
    for label, cal in calibrations.items():
        for impl, part in kernels.groupby("impl"):
            rows = part.to_dict("records")
            pred = predict_rows(hw, rows, cal if cal is not None else DEFAULT_CALIBRATION, impl)
            frames.append(_cases(part, [_kernel_class(r) for r in rows], impl, label, pred))
    return _with_error(frames)


def compare_layers(hardware_id: str, layers: pd.DataFrame, calibrations: dict[str, Calibration | None]) -> pd.DataFrame:
    """Whole decoder blocks, labelled layer_prefill / layer_decode_graph / layer_decode_eager."""
    hw = hwspecs.resolve_hardware(hardware_id)
    rows = layers.to_dict("records")
    kind = [_layer_class(r) for r in rows]
    frames = [_cases(layers, kind, "vendor", label, [predict_layer(hw, r, (cal or DEFAULT_CALIBRATION).params("vendor"))
                                                      for r in rows])
              for label, cal in calibrations.items()]
    return _with_error(frames)


def summarize(cases: pd.DataFrame, split: str | None = "score") -> pd.DataFrame:
    """MAPE, median, p90 and max absolute relative error per (kernel, impl, source)."""
    df = cases if split is None else cases[cases["split"] == split]
    df = df[np.isfinite(df["error_frac"])]  # a case with no finite error is not scored (nor counted)
    g = df.assign(abs_err=df["error_frac"].abs()).groupby(["kernel", "impl", "source"])["abs_err"]
    out = pd.DataFrame({
        "n_cases": g.size(), "mape_frac": g.mean(), "median_abs_err_frac": g.median(),
        "p90_abs_err_frac": g.quantile(0.9), "max_abs_err_frac": g.max(),
    }).reset_index()
    return out


def plot(cases: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Log-log scatter of predicted vs measured, one panel per source; written atomically."""
    png = render_plot(cases, title)
    return hwspecs.write_atomic(path, lambda fh: fh.write(png), binary=True)


def render_plot(cases: pd.DataFrame, title: str) -> bytes:
    """The PNG of ``plot`` as bytes (a command writes it together with its other outputs)."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(cases["source"]))
    fig, axes = plt.subplots(1, len(sources), figsize=(5.5 * len(sources), 5), squeeze=False)
    lo, hi = cases[["measured_s", "predicted_s"]].min().min() / 2, cases[["measured_s", "predicted_s"]].max().max() * 2
    for ax, src in zip(axes[0], sources):
        part = cases[cases["source"] == src]
        for kernel, k in part.groupby("kernel"):
            ax.scatter(k["measured_s"], k["predicted_s"], s=10, label=kernel, alpha=0.7)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.15)
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured (s)",
               ylabel="predicted (s)", title=f"{src}: MAPE {np.mean(np.abs(part['error_frac'])):.1%}")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    plt.close(fig)
    return buf.getvalue()


def rerun_difference(first: tuple[pd.DataFrame, pd.DataFrame | None],
                     second: tuple[pd.DataFrame, pd.DataFrame | None]) -> pd.DataFrame:
    """How much two measurement runs of the same GPU model disagree, per case class: |t₂ / t₁ − 1| over
    the cases both ran (kernel rows as calibration uses them: CUDA-graph twins where measured) — a floor
    under any model's error for that class. Arguments: the (kernels, layers) frames of each run."""
    parts = [_run_diff(select_gpu_time_rows(first[0]), select_gpu_time_rows(second[0]), _kernel_class)]
    if first[1] is not None and second[1] is not None:
        parts.append(_run_diff(first[1].assign(impl="vendor"), second[1].assign(impl="vendor"), _layer_class))
    g = pd.concat(parts, ignore_index=True).groupby(["kernel", "impl"])["diff_frac"]
    return pd.DataFrame({"n_cases": g.size(), "mean_abs_diff_frac": g.mean(), "median_abs_diff_frac": g.median(),
                         "max_abs_diff_frac": g.max()}).reset_index()


def _run_diff(a: pd.DataFrame, b: pd.DataFrame, label) -> pd.DataFrame:
    both = a.merge(b[["case_id", "median_s"]], on="case_id", suffixes=("", "_second"))
    return pd.DataFrame({"kernel": [label(r) for r in both.to_dict("records")], "impl": both["impl"].values,
                         "diff_frac": (both["median_s_second"] / both["median_s"] - 1.0).abs().values})
