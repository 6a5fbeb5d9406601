"""A row of servers over time, vectorised over servers × time: fluid queues, power, and the capping policy.

Each server holds ``instances`` model copies; its offered load per 1-s sample (arrivals, requests) is
spread evenly over them. At clock level ℓ an instance serves at most λ_max(ℓ) requests/s
(``loadcurve``); what it cannot serve waits in the server's backlog, a Lindley recursion
q_n = max(0, q_{n−1} + a_n − μ·dt), solved for a whole block of samples at once with cumulative sums
(q_n = S_n − min(−q_0, min_{k≤n} S_k), S the cumulative a − μ·dt). A sample's load x = served/(μ·dt)
sets its power and latency through the curves; queued requests wait backlog/μ more.

Time advances in blocks during which every server's clock level is fixed. The policy (``policy.Controller``)
observes the row power at each telemetry tick inside the block; when one of its decisions lands
(after the capping latency) inside the block, the block is cut there and the next one starts with the
new levels — so the clock caps feed back into every server's load, latency and power. Latency
distributions are kept as histograms (log-spaced bins, 0.25% wide), which partitions can add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simulator.serving.loadcurve import N_POINTS, X_MAX, LoadCurves
from simulator.serving.policy import BRAKE_LEVEL, STAGE_LEVELS, Controller, Policy

HIST_MIN_S, HIST_STEP = 1e-3, math.log(1.0025)  # log-spaced bins 0.25% wide from 1 ms ...
HIST_BINS = int(math.log(1e5 / HIST_MIN_S) / HIST_STEP) + 1  # ... to ~1 day
HIST_EDGES_S = HIST_MIN_S * np.exp(HIST_STEP * np.arange(HIST_BINS + 1))
MAX_BLOCK_CELLS = 2_000_000  # servers × samples per block: bounds the block's working memory


@dataclass
class RowStats:
    """What a row run accumulated; ``merge`` adds partitions (power is summed sample by sample)."""

    row_power_w: np.ndarray  # (n_t,)
    stage: np.ndarray  # (n_t,) int8, policy stage in force
    brake: np.ndarray  # (n_t,) bool
    e2e_hist: np.ndarray  # (2 priorities, bins) request counts
    served_requests: float = 0.0
    energy_j: float = 0.0
    events: dict = field(default_factory=dict)
    final_backlog: float = 0.0

    def merge(self, other: "RowStats") -> "RowStats":
        return RowStats(self.row_power_w + other.row_power_w, np.maximum(self.stage, other.stage),
                        self.brake | other.brake, self.e2e_hist + other.e2e_hist,
                        self.served_requests + other.served_requests, self.energy_j + other.energy_j,
                        {k: self.events.get(k, 0) + other.events.get(k, 0) for k in {**self.events, **other.events}},
                        self.final_backlog + other.final_backlog)


def levels_for(stage: int, brake: bool, priority: np.ndarray) -> np.ndarray:
    """Clock level of each server (priority 0 high, 1 low) in a policy stage."""
    if brake:
        return np.full(priority.shape, BRAKE_LEVEL)
    return np.asarray(STAGE_LEVELS[stage])[priority]


def hist_percentile(hist: np.ndarray, q: float) -> float:
    """The q-th percentile (0-100) of a histogram over HIST_EDGES_S (geometric bin centre)."""
    total = hist.sum()
    if total <= 0:
        return math.nan
    k = int(np.searchsorted(np.cumsum(hist), q / 100.0 * total))
    k = min(k, len(hist) - 1)
    return float(math.sqrt(HIST_EDGES_S[k] * HIST_EDGES_S[k + 1]))


def _bins(x_s: np.ndarray) -> np.ndarray:
    """Index of each latency's HIST_EDGES_S bin (clipped into the first/last bin; float32 log: 0.25% bins
    need ~3 digits)."""
    x = np.maximum(x_s, HIST_MIN_S).astype(np.float32)
    k = (np.log(x) - np.float32(math.log(HIST_MIN_S))) * np.float32(1.0 / HIST_STEP)
    return np.minimum(k.astype(np.int64), HIST_BINS - 1)


class _Block:
    """One block at fixed levels ``lv``: fluid queue, load, power; latencies on demand for the kept part."""

    def __init__(self, flat, lv, max_rate, a, q0, inst_per_server, non_gpu_w, dt_s):
        mu = max_rate[lv] * (inst_per_server * dt_s)  # requests a server can serve per sample
        S = np.cumsum(a - mu[:, None], axis=1)
        q = S - np.minimum(-q0[:, None], np.minimum.accumulate(S, axis=1))
        q_prev = np.concatenate([q0[:, None], q[:, :-1]], axis=1)
        served = q_prev + a - q
        pos = np.minimum(served / mu[:, None], X_MAX) * ((N_POINTS - 1) / X_MAX)
        k = np.minimum(pos.astype(np.int64), N_POINTS - 2)
        self.w, self.i = pos - k, k + (lv * N_POINTS)[:, None]
        self.flat, self.slope, self.q, self.served, self.a = flat[0], flat[1], q, served, a
        self.q_both, self.wait_per_request = q_prev + q, 0.5 * dt_s / mu  # mean wait = (q_prev + q)/2 / μ
        self.power = inst_per_server * self.curve(0, self.i, self.w) + non_gpu_w

    def curve(self, which, i, w):
        """Curve ``which`` (0 power, 1 e2e) at grid index i + w: value + slope·w."""
        return self.flat[which].take(i) + self.slope[which].take(i) * w

    def e2e_hist(self, m, offset):
        """Request-weighted histogram (2 priorities × HIST_BINS) of end-to-end latency, first m samples."""
        lat = self.curve(1, self.i[:, :m], self.w[:, :m]) + self.q_both[:, :m] * self.wait_per_request[:, None]
        k = _bins(lat) + offset[:, None]
        return np.bincount(k.ravel(), weights=self.a[:, :m].ravel(), minlength=2 * HIST_BINS).reshape(2, HIST_BINS)


def _walk_ticks(ctrl: Controller, hist_w, t0, t1, period_n, dt_s):
    """Observe the telemetry ticks in (t0, t1]; the sample where the next decision lands (≤ t1)."""
    def landing():
        nxt = ctrl.next_change_s()
        return t1 if nxt == math.inf else min(t1, math.ceil(nxt / dt_s - 1e-9))

    k = ((t0 // period_n) + 1) * period_n
    end = landing()
    if k > end:
        return max(end, t0 + 1)
    lo = max(k - period_n, 0)
    cum = np.concatenate([[0.0], np.cumsum(hist_w[lo:t1])]).tolist()
    while k <= end:
        ctrl.observe(k * dt_s, (cum[k - lo] - cum[k - period_n - lo]) / period_n)
        end = min(end, landing())
        k += period_n
    return max(end, t0 + 1)


def simulate_row(curves: LoadCurves, arrivals: np.ndarray, priority: np.ndarray, *, budget_w: float,
                 policy: Policy | None, inst_per_server: int, non_gpu_w: float, dt_s: float = 1.0) -> RowStats:
    """Run a row: ``arrivals`` (servers, samples) request counts per sample, ``priority`` (servers,) 0/1.
    ``policy`` None: no capping (the baseline). Returns the accumulated ``RowStats``."""
    n, n_t = arrivals.shape
    period_n = max(1, int(round(policy.telemetry_period_s / dt_s))) if policy else n_t
    block_n = max(period_n, min(4096, MAX_BLOCK_CELLS // max(n, 1)))
    ctrl = Controller(policy, budget_w) if policy else None
    hist_w, stage_t, brake_t = np.zeros(n_t), np.zeros(n_t, np.int8), np.zeros(n_t, bool)
    e2e_h = np.zeros((2, HIST_BINS))
    flat = np.stack([c.reshape(-1) for c in (curves.power_w, curves.e2e_s)])
    slope = np.concatenate([np.diff(flat, axis=1), np.zeros((2, 1))], axis=1)  # to the next point
    offset = priority.astype(np.int64) * HIST_BINS
    q, t, served_total, size = np.zeros(n), 0, 0.0, block_n
    while t < n_t:
        stage, brake = 0, False
        t1 = min(n_t, t + size)
        if ctrl:
            ctrl.apply_until(t * dt_s)
            stage, brake = ctrl.stage, ctrl.brake
        lv = levels_for(stage, brake, priority)
        b = _Block((flat, slope), lv, curves.max_rate_per_s, arrivals[:, t:t1], q, inst_per_server, non_gpu_w, dt_s)
        hist_w[t:t1] = b.power.sum(axis=0)
        end = _walk_ticks(ctrl, hist_w, t, t1, period_n, dt_s) if ctrl else t1
        m = end - t
        stage_t[t:end], brake_t[t:end] = stage, brake
        e2e_h += b.e2e_hist(m, offset)
        served_total += float(b.served[:, :m].sum())
        q, t = b.q[:, m - 1].copy(), end
        # speculate less after a cut (decisions come in runs), more after a block that held
        size = min(block_n, 2 * size) if end == t1 else max(period_n, min(block_n, 2 * m))
    return RowStats(hist_w, stage_t, brake_t, e2e_h, served_total, float(hist_w.sum() * dt_s),
                    dict(ctrl.events) if ctrl else {"cap": 0, "uncap": 0, "brake": 0}, float(q.sum()))
