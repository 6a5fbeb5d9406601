"""What a served trace measured: per-request latencies, their percentiles, goodput, power and queue over time.

Glossary (SI units):
- TTFT: first output token time − arrival (queueing + prefill, including any re-prefill after preemption);
- TPOT: (finish − first token) / (T − 1), the mean time per output token after the first (T > 1);
- E2E: finish − arrival;
- goodput: requests per second that met every given SLO (TTFT ≤ slo_ttft_s and TPOT ≤ slo_tpot_s),
  over the makespan (first arrival → last finish), the DistServe definition (arXiv 2401.09670);
- power and queue over time: time-weighted means in bins of ``bin_s`` (energy per bin / bin_s), exact for
  the piecewise-constant power of the iterations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PERCENTILES = (50, 90, 99)


def request_frame(per_req: dict) -> pd.DataFrame:
    df = pd.DataFrame(per_req)
    df["ttft_s"] = df.first_token_s - df.arrival_s
    df["e2e_s"] = df.finish_s - df.arrival_s
    steps = (df.output_tokens - 1).where(df.output_tokens > 1)
    df["tpot_s"] = (df.finish_s - df.first_token_s) / steps
    return df


def summary(req: pd.DataFrame, timeline: pd.DataFrame, slo_ttft_s=None, slo_tpot_s=None) -> dict:
    """Headline figures (one flat dict, SI units)."""
    start, end = float(req.arrival_s.min()), float(req.finish_s.max())
    span = max(end - start, 1e-12)
    out = {"n_requests": len(req), "makespan_s": span, "throughput_requests_per_s": len(req) / span,
           "output_tokens_per_s": float(req.output_tokens.sum()) / span,
           "total_tokens_per_s": float((req.output_tokens + req.prompt_tokens).sum()) / span}
    for col in ("ttft_s", "tpot_s", "e2e_s"):
        x = req[col].dropna().to_numpy()
        out[f"mean_{col}"] = float(x.mean()) if x.size else float("nan")
        for p in PERCENTILES:
            out[f"p{p}_{col}"] = float(np.percentile(x, p)) if x.size else float("nan")
    ok = np.ones(len(req), bool)
    if slo_ttft_s is not None:
        ok &= req.ttft_s.to_numpy() <= slo_ttft_s
    if slo_tpot_s is not None:
        ok &= ~(req.tpot_s.to_numpy() > slo_tpot_s)  # one-token requests have no TPOT: they pass
    out["slo_attainment_frac"] = float(ok.mean())
    out["goodput_requests_per_s"] = float(ok.sum()) / span
    energy = float(timeline.energy_j.sum())
    busy = timeline.dt_s.to_numpy()
    out.update(energy_j=energy, mean_power_w=energy / float(busy.sum()), iterations=int((timeline.decode_seqs
               + timeline.prefill_tokens > 0).sum()), preemptions=int(req.n_preemptions.sum()),
               peak_kv_blocks=int(timeline.kv_blocks.max()),
               energy_per_output_token_j=energy / float(req.output_tokens.sum()))
    return out


def over_time(timeline: pd.DataFrame, bin_s: float = 1.0) -> pd.DataFrame:
    """Per bin: mean instance power (W), energy (J), mean queue length and running sequences, tokens."""
    t_end = timeline.t_s.to_numpy()
    t0 = np.concatenate([[t_end[0] - timeline.dt_s.iloc[0]], t_end])
    edges = np.arange(t0[0], t0[-1] + bin_s, bin_s)
    if edges[-1] < t0[-1]:
        edges = np.append(edges, edges[-1] + bin_s)

    def integral(rate):  # ∫ rate dt over each bin, rate constant within an iteration
        cum = np.concatenate([[0.0], np.cumsum(rate * timeline.dt_s.to_numpy())])
        return np.diff(np.interp(edges, t0, cum))

    width = np.diff(edges)
    power = timeline.energy_j.to_numpy() / timeline.dt_s.to_numpy()
    tokens = np.concatenate([[0.0], np.cumsum(timeline.decode_seqs.to_numpy())])
    return pd.DataFrame({"t_s": edges[:-1], "power_w": integral(power) / width, "energy_j": integral(power),
                         "waiting": integral(timeline.waiting.to_numpy()) / width,
                         "running": integral(timeline.running.to_numpy()) / width,
                         "decode_tokens": np.diff(np.interp(edges, t0, tokens))})
