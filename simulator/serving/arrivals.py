"""Request streams: when requests arrive and how long their prompts and outputs are.

A stream is a ``Requests``: three aligned arrays, sorted by arrival time (seconds from the start), whole
prompt and output token counts ≥ 1. Generators (all seeded, all numpy):

- ``poisson``: exponential inter-arrival times at ``rate_per_s``;
- ``gamma``: Gamma inter-arrival times of mean 1/rate and coefficient of variation ``cv`` (cv > 1:
  bursty; cv = 1 is Poisson), the usual burstiness knob of serving benchmarks;
- ``diurnal``: a non-homogeneous Poisson process whose rate follows a day — a cosine between
  ``trough_frac``·peak and the peak, highest at ``peak_hour`` — sampled by thinning (Lewis & Shedler 1979);
- ``from_arrays``: a user trace (e.g. a CSV of arrival_s, prompt_tokens, output_tokens, the shape of the
  public Azure LLM inference traces, https://github.com/Azure/AzurePublicDataset).

Lengths: a fixed number, or a log-normal of given mean and coefficient of variation (production prompt
and output lengths are heavy-tailed; Splitwise, arXiv 2311.18677, Fig. 3), clipped to [1, max].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class TraceError(ValueError):
    """A request stream that cannot be served: empty, unsorted, or with a bad value (the message names it)."""


@dataclass(frozen=True)
class Requests:
    arrival_s: np.ndarray  # (n,) seconds from the start, non-decreasing
    prompt_tokens: np.ndarray  # (n,) int64 ≥ 1
    output_tokens: np.ndarray  # (n,) int64 ≥ 1

    def __len__(self) -> int:
        return len(self.arrival_s)


def from_arrays(arrival_s, prompt_tokens, output_tokens) -> Requests:
    """A checked trace: non-empty, arrivals finite, ≥ 0 and sorted, token counts whole and ≥ 1."""
    a = np.asarray(arrival_s, dtype=float)
    if a.ndim != 1 or a.size == 0:
        raise TraceError("trace is empty: it needs at least one request (arrival_s, prompt_tokens, output_tokens)")
    cols = {"prompt_tokens": prompt_tokens, "output_tokens": output_tokens}
    out = {}
    for name, v in cols.items():
        v = np.asarray(v, dtype=float)
        if v.shape != a.shape:
            raise TraceError(f"{name} has {v.size} values but arrival_s has {a.size}")
        bad = ~np.isfinite(v) | (v < 1) | (v != np.round(v))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TraceError(f"{name} must be whole numbers ≥ 1; request {i} has {v[i]!r}")
        out[name] = v.astype(np.int64)
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TraceError(f"arrival_s must be finite and ≥ 0; request {i} has {a[i]!r}")
    if np.any(np.diff(a) < 0):
        i = int(np.flatnonzero(np.diff(a) < 0)[0]) + 1
        raise TraceError(f"arrival_s must be sorted (non-decreasing); request {i} arrives at {a[i]} s, "
                         f"before request {i - 1} at {a[i - 1]} s")
    return Requests(a, out["prompt_tokens"], out["output_tokens"])


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise TraceError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def lengths(rng: np.random.Generator, n: int, mean_tokens, cv=0.0, max_tokens=None) -> np.ndarray:
    """n token counts: ``mean_tokens`` each (cv = 0), or log-normal with that mean and coefficient of variation."""
    mean = _positive("mean tokens", mean_tokens)
    if cv < 0 or not math.isfinite(cv):
        raise TraceError(f"length cv must be ≥ 0, got {cv!r}")
    if cv == 0:
        x = np.full(n, mean)
    else:
        sigma2 = math.log1p(cv * cv)
        x = rng.lognormal(math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2), n)
    hi = np.inf if max_tokens is None else max_tokens
    return np.clip(np.round(x), 1, hi).astype(np.int64)


def _with_lengths(rng, a, prompt_tokens, output_tokens, prompt_cv, output_cv, max_tokens) -> Requests:
    n = len(a)
    if n == 0:
        raise TraceError("the arrival process produced no request in the duration; raise the rate or duration")
    return from_arrays(a, lengths(rng, n, prompt_tokens, prompt_cv, max_tokens),
                       lengths(rng, n, output_tokens, output_cv, max_tokens))


def poisson(rate_per_s, duration_s, prompt_tokens=1024, output_tokens=256, *, prompt_cv=0.0, output_cv=0.0,
            max_tokens=None, seed=0) -> Requests:
    return gamma(rate_per_s, duration_s, 1.0, prompt_tokens, output_tokens, prompt_cv=prompt_cv,
                 output_cv=output_cv, max_tokens=max_tokens, seed=seed)


def gamma(rate_per_s, duration_s, cv, prompt_tokens=1024, output_tokens=256, *, prompt_cv=0.0, output_cv=0.0,
          max_tokens=None, seed=0) -> Requests:
    """Renewal process with Gamma gaps: mean 1/rate, coefficient of variation ``cv`` (1 = Poisson)."""
    rate, dur, cv = _positive("rate_per_s", rate_per_s), _positive("duration_s", duration_s), _positive("cv", cv)
    rng = np.random.default_rng(seed)
    shape = 1.0 / (cv * cv)
    n = int(rate * dur * 1.2 + 10 * math.sqrt(rate * dur) * max(cv, 1.0) + 10)
    a = np.cumsum(rng.gamma(shape, 1.0 / (rate * shape), n))
    while a[-1] < dur:  # rare: draw more gaps
        a = np.concatenate([a, a[-1] + np.cumsum(rng.gamma(shape, 1.0 / (rate * shape), n))])
    return _with_lengths(rng, a[a < dur], prompt_tokens, output_tokens, prompt_cv, output_cv, max_tokens)


def diurnal_rate(t_s, peak_rate_per_s, trough_frac=0.35, peak_hour=14.0):
    """Rate (requests/s) at times ``t_s`` (seconds from midnight): a 24-h cosine from trough to peak."""
    phase = 2.0 * np.pi * (np.asarray(t_s, dtype=float) / 3600.0 - peak_hour) / 24.0
    return peak_rate_per_s * (trough_frac + (1.0 - trough_frac) * 0.5 * (1.0 + np.cos(phase)))


def diurnal(peak_rate_per_s, duration_s, prompt_tokens=1024, output_tokens=256, *, trough_frac=0.35,
            peak_hour=14.0, start_s=0.0, prompt_cv=0.0, output_cv=0.0, max_tokens=None, seed=0) -> Requests:
    """Non-homogeneous Poisson arrivals with ``diurnal_rate`` (thinning a Poisson stream at the peak rate)."""
    peak, dur = _positive("peak_rate_per_s", peak_rate_per_s), _positive("duration_s", duration_s)
    if not 0.0 <= trough_frac <= 1.0:
        raise TraceError(f"trough_frac must be in [0, 1], got {trough_frac!r}")
    rng = np.random.default_rng(seed)
    n = rng.poisson(peak * dur)
    t = np.sort(rng.uniform(0.0, dur, n))
    keep = rng.uniform(0.0, 1.0, n) < diurnal_rate(start_s + t, 1.0, trough_frac, peak_hour)
    return _with_lengths(rng, t[keep], prompt_tokens, output_tokens, prompt_cv, output_cv, max_tokens)
