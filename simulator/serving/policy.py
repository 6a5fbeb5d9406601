"""POLCA's row power-capping policy (Patel et al., "POLCA: Power Oversubscription in LLM Cloud Providers",
arXiv 2308.12908, ASPLOS 2024), as a state machine over row-power telemetry.

Every ``telemetry_period_s`` the row's mean power over the last period is compared with the budget:

- stage 0 → 1 above T1 (80%): low-priority servers capped to ``low_t1_clock_hz`` (1275 MHz on A100);
- stage 1 → 2 above T2 (89%): low priority capped further to ``low_t2_clock_hz`` (1110 MHz);
- stage 2 → 3 still above T2 once stage 2 is in force: high priority capped to ``high_t2_clock_hz`` (1305 MHz);
- each stage is released when power falls below its threshold minus the hysteresis (5% of the budget);
- above 100% the power brake drops every GPU to ``brake_clock_hz`` (a few hundred MHz) within
  ``brake_latency_s`` and holds until power is below T1 − hysteresis; the stage caps are set to the
  deepest stage with it, so the row comes back capped and steps down through the hysteresis bands.

Caps are set out of band and take ``capping_latency_s`` (up to ~40 s) to apply; decisions wait for the
previous one to land. T2 leaves room for the worst ~40-s inference spike (~11.8% of provisioned power).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# (stage, priority) → clock level; priority 0 = high, 1 = low. Levels: 0 uncapped, 1 low@T1, 2 low@T2,
# 3 high@T2, 4 brake.
STAGE_LEVELS = ((0, 0), (0, 1), (0, 2), (3, 2))
BRAKE_LEVEL = 4
N_LEVELS = 5


class PolicyError(ValueError):
    """A capping policy that cannot work (thresholds out of order, negative times); names the field."""


@dataclass(frozen=True)
class Policy:
    t1_frac: float = 0.80
    t2_frac: float = 0.89
    brake_frac: float = 1.0
    hysteresis_frac: float = 0.05
    low_t1_clock_hz: float = 1.275e9
    low_t2_clock_hz: float = 1.110e9
    high_t2_clock_hz: float = 1.305e9
    brake_clock_hz: float = 0.4e9
    telemetry_period_s: float = 2.0
    capping_latency_s: float = 40.0
    brake_latency_s: float = 5.0

    def __post_init__(self):
        for name, v in self.__dict__.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise PolicyError(f"policy {name} must be a finite number ≥ 0, got {v!r}")
        if not 0 < self.t1_frac < self.t2_frac < self.brake_frac:
            raise PolicyError(f"policy thresholds must satisfy 0 < t1_frac < t2_frac < brake_frac, got "
                              f"{self.t1_frac}, {self.t2_frac}, {self.brake_frac}")
        if not self.hysteresis_frac < self.t1_frac:
            raise PolicyError(f"policy hysteresis_frac must be below t1_frac, got {self.hysteresis_frac}")
        if self.telemetry_period_s <= 0:
            raise PolicyError("policy telemetry_period_s must be > 0")
        for name in ("low_t1_clock_hz", "low_t2_clock_hz", "high_t2_clock_hz", "brake_clock_hz"):
            if getattr(self, name) <= 0:
                raise PolicyError(f"policy {name} must be > 0")

    @property
    def clocks_hz(self) -> tuple:
        """Clock per level (None = uncapped), in STAGE_LEVELS / BRAKE_LEVEL order."""
        return (None, self.low_t1_clock_hz, self.low_t2_clock_hz, self.high_t2_clock_hz, self.brake_clock_hz)


class Controller:
    """The policy's decisions over time. ``observe(t_s, power_w)`` at each telemetry tick (mean row power
    over the period ending at t_s); ``applied(t_s)`` → (stage, brake) in force at t_s."""

    def __init__(self, policy: Policy, budget_w: float):
        self.p, self.budget = policy, budget_w
        self.stage = self.target = 0  # in force / decided
        self.brake = self.brake_target = False
        self.pending = []  # (effect time, stage or None, brake or None)
        self.events = {"cap": 0, "uncap": 0, "brake": 0}

    def next_change_s(self) -> float:
        return min((e[0] for e in self.pending), default=math.inf)

    def apply_until(self, t_s: float) -> None:
        """Put in force every decision whose latency has elapsed by ``t_s``."""
        keep = []
        for when, stage, brake in sorted(self.pending, key=lambda e: e[0]):
            if when <= t_s:
                self.stage = self.stage if stage is None else stage
                self.brake = self.brake if brake is None else brake
            else:
                keep.append((when, stage, brake))
        self.pending = keep

    def observe(self, t_s: float, power_w: float) -> None:
        p, frac = self.p, power_w / self.budget
        if frac > p.brake_frac and not self.brake_target:
            # the brake, and every cap behind it: when the brake lifts, the row comes back fully capped
            self.brake_target, self.target = True, 3
            self.events["brake"] += 1
            self.pending.append((t_s + p.brake_latency_s, 3, True))
            return
        if self.brake_target:
            if frac < p.t1_frac - p.hysteresis_frac:
                self.brake_target = False
                self.pending.append((t_s + p.brake_latency_s, None, False))
            return
        if self.target != self.stage:  # the last decision has not landed yet
            return
        up = {0: p.t1_frac, 1: p.t2_frac, 2: p.t2_frac}.get(self.stage)
        down = {1: p.t1_frac, 2: p.t2_frac, 3: p.t2_frac}.get(self.stage)
        if up is not None and frac > up:
            self.target = self.stage + 1
            self.events["cap"] += 1
        elif down is not None and frac < down - p.hysteresis_frac:
            self.target = self.stage - 1
            self.events["uncap"] += 1
        else:
            return
        self.pending.append((t_s + p.capping_latency_s, self.target, None))
