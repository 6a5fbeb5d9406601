"""Link parameters from ``multi_gpu.csv``, and the held-out comparison (``python3 -m validate.multi_gpu_fit``).

Collective time in the model (``simulator.kinds.collective``): floor L₀ (``link.collective_latency_s``)
+ steps·α (α = the link spec's ``latency_s``) + link bytes / (rate · η) (η = ``link.collective_efficiency_frac``),
or the HBM side when slower. L₀ and 1/η enter linearly, so they are fitted by least squares on relative
error over the fitting sizes (every other size, smallest first); the other sizes are held out and scored:
MAPE per collective over sizes ≥ 1 MB and below. The tensor-parallel layer steps are then predicted with
the fitted parameters (eager launches, the same topology) and scored as well.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import hwspecs
from simulator import engine, parallel
from simulator.kinds import collective
from validate.cases.multi_gpu import COLLECTIVES, LAYERS_IN_STACK, LLAMA3_8B
from workloads.model import ModelSpec
from workloads.parallel import Parallel

# measurement kind → simulator collective kind
KIND = {"all_reduce": collective.ALL_REDUCE, "all_gather": collective.ALL_GATHER,
        "reduce_scatter": collective.REDUCE_SCATTER, "all_to_all": collective.ALL_TO_ALL}
LARGE_BYTES = 1 << 20


def _link(hardware: str, n_ranks: int) -> dict:
    return parallel.group_link(parallel.topology(hardware), n_ranks)


def predict_collective(hardware: str, prm, kind: str, n_bytes, n_ranks: int) -> float:
    """Model time of one collective on ``hardware`` (a system id gives its links) with effect params ``prm``."""
    hw = hwspecs.resolve_hardware(hardware)
    op = collective.collective_op(KIND[kind], kind, n_bytes / 2.0, n_ranks, act_dtype="bf16",
                                  link=_link(hardware, n_ranks))
    _, tm, lat, tl = collective.time(op, hw, prm, None, hw.scaleup_bandwidth_bytes_per_s, None)
    return lat + max(tm, tl)


def fit_links(rows: pd.DataFrame, hardware: str) -> tuple[float, float]:
    """(collective_latency_s, collective_efficiency_frac) by least squares on relative error."""
    link = _link(hardware, int(rows.n_ranks.iloc[0]))
    rate, alpha = link["link_bytes_per_s"], link["hop_latency_s"]
    t = rows.median_s.to_numpy(float)
    steps = np.array([collective.steps(KIND[k], n) for k, n in zip(rows.kind, rows.n_ranks)])
    sent = np.array([collective.link_bytes(KIND[k], b, n) for k, b, n in zip(rows.kind, rows.bytes, rows.n_ranks)])
    a = np.stack([1.0 / t, sent / rate / t], axis=1)
    (l0, inv_eff), *_ = np.linalg.lstsq(a, 1.0 - alpha * steps / t, rcond=None)
    return float(max(l0, 0.0)), float(1.0 / max(inv_eff, 1e-3))


def split(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, held-out): alternate sizes of each collective."""
    rank = rows.groupby("kind")["bytes"].rank(method="dense").astype(int)
    return rows[rank % 2 == 1], rows[rank % 2 == 0]


def layer_model(n_layers: int = LAYERS_IN_STACK) -> ModelSpec:
    d = LLAMA3_8B
    return ModelSpec(id="tp-layers", name="Llama-3-8B-shaped layers", n_layers=n_layers, hidden=d.hidden,
                     n_q_heads=d.n_q_heads, n_kv_heads=d.n_kv_heads, head_dim=d.head_dim, ffn_hidden=d.ffn_hidden,
                     vocab_size=1)


def predict_layers(hardware: str, prm, row) -> float:
    """The measured TP layer stack's step: eager, the layer ops only."""
    hw = hwspecs.resolve_hardware(hardware)
    t = int(row.n_ranks)
    s = engine.make_setup(hw, layer_model(int(row.n_layers)), prm, tp=t)
    s = parallel.attach(s, hardware, Parallel(tensor_parallel=t))
    if row.kind == "tp_layers_prefill":
        return float(engine.prefill(s, int(row.batch), int(row.seq), layer_only=True).time_s)
    return float(engine.decode_step(s, int(row.batch), int(row.context), cuda_graph=False, layer_only=True).time_s)


def compare(rows: pd.DataFrame, hardware: str, calibration="auto") -> tuple[pd.DataFrame, dict]:
    """Fit on half the collective sizes, predict everything; returns (per-case table, fitted params)."""
    coll = rows[rows.kind.isin(COLLECTIVES)]
    fit_rows, _ = split(coll)
    l0, eff = fit_links(fit_rows, hardware)
    prm = hwspecs.calibration_for(hwspecs.resolve_hardware(hardware), calibration).params("vendor")
    prm = prm.with_values({"link.collective_latency_s": l0, "link.collective_efficiency_frac": eff})
    fitted = set(fit_rows.case_id)
    out = []
    for r in rows.itertuples():
        pred = (predict_collective(hardware, prm, r.kind, r.bytes, int(r.n_ranks)) if r.kind in COLLECTIVES
                else predict_layers(hardware, prm, r))
        out.append({"case_id": r.case_id, "kind": r.kind, "bytes": r.bytes, "measured_s": r.median_s,
                    "predicted_s": pred, "error_frac": pred / r.median_s - 1.0, "held_out": r.case_id not in fitted})
    return pd.DataFrame(out), {"collective_latency_s": l0, "collective_efficiency_frac": eff}


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Held-out MAPE per collective (≥ 1 MB and below) and per layer mode."""
    held = table[table.held_out].copy()
    held["size"] = np.where(held.kind.isin(COLLECTIVES), np.where(held.bytes >= LARGE_BYTES, "≥1MB", "<1MB"), "")
    return (held.assign(abs_err=held.error_frac.abs()).groupby(["kind", "size"])
            .abs_err.agg(mape="mean", n="size").reset_index())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m validate.multi_gpu_fit", description=__doc__.split("\n")[0])
    p.add_argument("csv", help="multi_gpu.csv")
    p.add_argument("--hardware", required=True, help="the system or GPU id the CSV was measured on")
    a = p.parse_args(argv)
    rows = pd.read_csv(a.csv)
    table, params = compare(rows, a.hardware)
    out = Path(a.csv).with_name("multi_gpu_comparison.csv")
    from hwspecs.atomic import write_all
    write_all([(out, lambda fh: table.to_csv(fh, index=False), False)])
    print(f"fitted link: {params}")
    print(summary(table).to_string(index=False))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
