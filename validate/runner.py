"""The one measurement runner: times the case catalogue (:mod:`validate.cases`) on the attached GPU.

What a case is (:class:`Group` of :class:`Variant` implementations on shared input sets), how a
sweep is configured (:class:`SweepConfig`: per-case and per-section time budgets), the order the
sections run in (:func:`validate.cases.kernel_sections`: vendor references first, Triton GEMM and prefill last,
interleaved), how one group is timed (:class:`Runner`, through :mod:`validate.timing`), which cases
are timed again (:func:`measure_repeats`) and how rows are written (:func:`write_csv_atomic`,
:func:`write_json_atomic`, columns :data:`KERNEL_COLUMNS` and :data:`FAILURE_COLUMNS`).

Users: :func:`validate.run.run_all` (``hwperf validate``, ``python3 -m validate``; also reachable as
``validate.measure.run_all``) and ``benchmarks/bench_kernels.py`` (a report over the same sections).

Timing method: :mod:`validate.timing` (CUDA events, warm-up, fixed time budget per case, inputs
rotated so L2 is not measured; kernels faster than :data:`GRAPH_BELOW_S` get a second row timed
inside a CUDA graph, ``graph=True``, case_id suffix ``-graph``). Variants declared ``repeat=True``
are timed twice, once early and once at the end; their relative spread is in
``repeat_spread_frac``. A section that runs out of its budget lists the rest in ``failures.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import math
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import hwspecs
from simulator.kinds import KINDS, shape_columns
from validate.env import Environment, Nvml
from validate.timing import bench, bench_graph, n_rotation_sets

KERNELS: tuple[str, ...] = (
    "gemm", "attention_prefill", "attention_decode", "copy", "h2d", "d2h", "kv_gather", "kv_scatter",
)
# The header order the committed kernels.csv files have; the registry lists its kinds copies first,
# so the shape columns are placed by this rule. A shape field of a measured kind that it does not
# name goes after the named ones, in registry order (and the header test then asks for a decision).
SHAPE_COLUMN_ORDER: tuple[str, ...] = (
    "dtype", "m", "n", "k", "batch", "seq", "context", "n_q_heads", "n_kv_heads", "head_dim",
    "causal", "paged", "pinned", "bytes",
)


def measured_shape_columns() -> tuple[str, ...]:
    """The registry's shape columns that the measured kinds (those of :data:`KERNELS` the registry
    models; kv_gather/kv_scatter are not) declare, in :data:`SHAPE_COLUMN_ORDER`."""
    used = {f.name for name in KERNELS if name in KINDS for f in KINDS[name].shape}
    rank = {name: i for i, name in enumerate(SHAPE_COLUMN_ORDER)}
    return tuple(sorted((c for c in shape_columns() if c in used), key=lambda c: rank.get(c, len(rank))))


KERNEL_COLUMNS: tuple[str, ...] = (
    "case_id", "kernel", "impl", *measured_shape_columns(),
    "median_s", "p10_s", "p90_s", "n_reps",
    "flops", "hbm_bytes", "achieved_flops_per_s", "achieved_bytes_per_s",
    "sm_clock_hz", "power_w", "energy_j", "graph", "gpu_name", "hardware_id",
    "repeat_spread_frac",
)
FAILURE_COLUMNS: tuple[str, ...] = ("case_id", "kernel", "impl", "stage", "error")
DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "measurements"

# Kernels whose eager time is below this also get a CUDA-graph row: launch gaps dominate there
# (Triton's Python launch path alone costs ~50-100 µs on the H100 machine).
GRAPH_BELOW_S = 300e-6
CHECK_REL_TOL = 2e-2  # Triton vs vendor on the same bf16/fp16/fp8 inputs, ‖Δ‖/‖ref‖
MAX_SET_BYTES = 10e9  # skip shapes whose one input set exceeds this (keeps H100 80 GB safe)


# --------------------------------------------------------------------------------------------- CSV

def _cell(value: Any) -> str:
    """CSV text of one value: '' for None, True/False for bools, full-precision repr for floats."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def write_csv_atomic(path: Path | str, rows: Iterable[dict], columns: Sequence[str]) -> Path:
    """Write ``rows`` to ``path`` with exactly ``columns``, atomically (temp file + os.replace).

    Missing keys are written empty; an unknown key raises ``ValueError`` naming it (and leaves any
    existing file untouched), so a typo in a column name cannot silently add or drop data.
    """
    allowed = set(columns)

    def write(fh):
        writer = csv.writer(fh)
        writer.writerow(columns)
        for i, row in enumerate(rows):
            unknown = set(row) - allowed
            if unknown:
                raise ValueError(
                    f"row {i} of {Path(path).name} has unknown column(s) {sorted(unknown)}; "
                    f"allowed: {list(columns)}"
                )
            writer.writerow([_cell(row.get(c)) for c in columns])

    return hwspecs.write_atomic(path, write)


def write_json_atomic(path: Path | str, obj: Any) -> Path:
    def write(fh):
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")

    return hwspecs.write_atomic(path, write)


# ------------------------------------------------------------------------------------ case model

@dataclasses.dataclass
class Variant:
    """One implementation of a group's work: ``make(input_set)`` returns a zero-argument closure."""

    impl: str  # vendor | triton
    make: Callable[[Any], Callable[[], Any]]
    module: str | None = None  # kernels.<module> that must import for this variant to run
    graph_ok: bool = True
    repeat: bool = False  # timed again at the end of the sweep (repeat_spread_frac)


@dataclasses.dataclass
class Group:
    """One shape of one kernel, with the variants that compute it on shared rotating input sets."""

    kernel: str
    label: str  # shape part of the case id, e.g. "m4096-n4096-k4096"
    dtype: str | None
    shape: dict  # shape columns (m, n, k / batch, seq, ... / bytes, pinned, paged)
    set_bytes: int  # device bytes one input set (inputs + outputs) occupies, for L2 rotation
    make_set: Callable[[], Any]
    variants: list[Variant]
    counts: Callable[[], tuple[int | None, int | None]]  # (flops, hbm_bytes)
    # check(input_set, closure) -> relative error against the vendor/torch result, for triton
    check: Callable[[Any, Callable[[], Any]], float] | None = None
    rotate: bool = True
    extra_id: str = ""  # e.g. "-paged"
    # Headline key of each variant's eager row, "{impl}" filled in, ending in _flops_per_s or
    # _bytes_per_s (the achieved rate it reports); "" for a case that is not a headline.
    headline: str = ""

    def case_id(self, impl: str, graph: bool = False) -> str:
        parts = [self.kernel, impl] + ([self.dtype] if self.dtype else []) + [self.label]
        return "-".join(parts) + self.extra_id + ("-graph" if graph else "")


def rel_err(out, ref) -> float:
    out, ref = out.float(), ref.float()
    denom = ref.norm().item()
    diff = (out - ref).norm().item()
    return diff / denom if denom > 0 else diff


class Kernels:
    """Lazy import of ``kernels.<name>``; a failure is remembered and reported once."""

    def __init__(self):
        self.modules: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def get(self, name: str):
        if name in self.modules:
            return self.modules[name]
        if name in self.errors:
            return None
        try:
            self.modules[name] = importlib.import_module(f"kernels.{name}")
        except Exception as exc:  # any import-time failure: syntax, missing triton, driver
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            return None
        return self.modules[name]

    def count(self, name: str, fn: str, *args):
        mod = self.get(name)
        if mod is None or not hasattr(mod, fn):
            return None
        return int(getattr(mod, fn)(*args))


# ------------------------------------------------------------------------- sections and ordering

SECTIONS: tuple[str, ...] = (
    "gemm", "attention_prefill", "attention_decode", "copy", "host", "kv", "gemm_fp8",
    "gemm_triton", "attention_prefill_triton",
)


def only_impl(groups: list[Group], impl: str) -> list[Group]:
    """The groups that have an ``impl`` variant, reduced to that variant alone."""
    out = []
    for g in groups:
        kept = [v for v in g.variants if v.impl == impl]
        if kept:
            out.append(dataclasses.replace(g, variants=kept))
    return out


def interleave(groups: list[Group], key: str, values: Sequence[int]) -> list[Group]:
    """Order groups so a prefix covers the ``key`` range evenly (bisection order of ``values``).

    Groups whose ``key`` is not among ``values`` (e.g. square GEMMs) keep their place in front.
    """
    order = _bisection_order(sorted(values))
    rank = {v: i for i, v in enumerate(order)}
    return sorted(groups, key=lambda g: rank.get(g.shape.get(key), -1))  # stable


def _bisection_order(values: list[int]) -> list[int]:
    """Ends first, then midpoints: [1, 8, 32, 128, 512] → [1, 512, 32, 8, 128]."""
    if len(values) <= 2:
        return list(values)
    out, queue = [values[0], values[-1]], [(0, len(values) - 1)]
    while queue:
        lo, hi = queue.pop(0)
        if hi - lo < 2:
            continue
        mid = (lo + hi) // 2
        out.append(values[mid])
        queue += [(lo, mid), (mid, hi)]
    return out


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What to sweep and how long to spend (seconds, per case and per section)."""

    quick: bool = False
    case_budget_s: float = 0.05
    section_budget_s: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def full(cls) -> "SweepConfig":
        return cls(
            quick=False,
            case_budget_s=0.04,
            section_budget_s={
                "gemm": 40.0, "attention_prefill": 20.0, "attention_decode": 130.0, "copy": 15.0,
                "host": 25.0, "kv": 15.0, "gemm_fp8": 25.0, "gemm_triton": 90.0,
                "attention_prefill_triton": 90.0, "layers": 45.0,
            },
        )

    @classmethod
    def quick_mode(cls) -> "SweepConfig":
        return cls(
            quick=True,
            case_budget_s=0.01,
            section_budget_s={k: 30.0 for k in SECTIONS + ("layers",)},
        )


Section = tuple[str, Callable[[], list[Group]]]


# ---------------------------------------------------------------------------------------- runner

class Runner:
    """Runs groups, collects kernel rows and failure rows, keeps the per-section time budgets."""

    def __init__(self, torch, env: Environment, nvml: Nvml, cfg: SweepConfig, kern: Kernels):
        self.torch, self.env, self.nvml, self.cfg, self.kern = torch, env, nvml, cfg, kern
        self.rows: list[dict] = []
        self.failures: list[dict] = []
        self.section_s: dict[str, float] = {}
        self._import_reported: set[str] = set()

    def fail(self, case_id, kernel, impl, stage, error):
        self.failures.append({"case_id": case_id, "kernel": kernel, "impl": impl, "stage": stage,
                              "error": " ".join(str(error).split())[:600]})

    def _row(self, group: Group, impl: str, timing, flops, hbm, graph: bool) -> dict:
        row = {
            "case_id": group.case_id(impl, graph), "kernel": group.kernel, "impl": impl,
            "dtype": group.dtype, **group.shape,
            "median_s": timing.median_s, "p10_s": timing.p10_s, "p90_s": timing.p90_s,
            "n_reps": timing.n_reps, "flops": flops, "hbm_bytes": hbm,
            "achieved_flops_per_s": None if flops is None else flops / timing.median_s,
            "achieved_bytes_per_s": None if hbm is None else hbm / timing.median_s,
            "sm_clock_hz": timing.sm_clock_hz, "power_w": timing.power_w,
            "energy_j": timing.energy_j, "graph": graph,
            "gpu_name": self.env.gpu_name, "hardware_id": self.env.hardware_id,
        }
        if group.kernel == "attention_decode" and "paged" not in group.shape:
            row["paged"] = False
        return row

    def _runnable(self, group: Group, only_impl: str | None) -> list[Variant]:
        """The variants to time; one whose kernels module does not import is reported once."""
        runnable = []
        for v in group.variants:
            if only_impl not in (None, v.impl):
                continue
            if v.module and self.kern.get(v.module) is None:
                if (v.module, group.kernel) not in self._import_reported:
                    self._import_reported.add((v.module, group.kernel))
                    self.fail(f"{group.kernel}-{v.impl}-*", group.kernel, v.impl, "import",
                              f"kernels.{v.module}: {self.kern.errors[v.module]}")
                continue
            runnable.append(v)
        return runnable

    def _counts(self, group: Group) -> tuple[int | None, int | None]:
        try:
            return group.counts()
        except Exception as exc:
            self.fail(group.case_id("*"), group.kernel, "*", "counts", repr(exc))
            return None, None

    def run_group(self, group: Group, only_impl: str | None = None, graph: bool = True,
                  check: bool = True) -> list[dict]:
        """Time every variant of ``group``; returns (and stores) the rows it produced."""
        torch = self.torch
        out_rows: list[dict] = []
        if group.set_bytes > MAX_SET_BYTES:
            self.fail(group.case_id("*"), group.kernel, "*", "skipped",
                      f"input set {group.set_bytes} bytes > MAX_SET_BYTES {MAX_SET_BYTES:.0f}")
            return out_rows
        runnable = self._runnable(group, only_impl)
        if not runnable:
            return out_rows
        sets = []
        try:
            n_sets = n_rotation_sets(group.set_bytes, self.env.l2_bytes) if group.rotate else 1
            counts = self._counts(group)
            try:
                sets = [group.make_set() for _ in range(n_sets)]
            except torch.cuda.OutOfMemoryError as exc:
                self.fail(group.case_id("*"), group.kernel, "*", "setup", f"OutOfMemoryError: {exc}")
                return out_rows
            for v in runnable:
                out_rows += self._time_variant(group, v, sets, counts, graph, check)
        finally:
            big = group.set_bytes * max(len(sets), 1) > 1e9
            del sets
            if big:
                torch.cuda.empty_cache()
        self.rows.extend(out_rows)
        return out_rows

    def _time_variant(self, group: Group, v: Variant, sets: list, counts: tuple, graph: bool,
                      check: bool) -> list[dict]:
        """Check (Triton), time eagerly, and in a CUDA graph when short; failures become rows."""
        torch = self.torch
        rows: list[dict] = []
        cid = group.case_id(v.impl)
        try:
            fns = [v.make(s) for s in sets]
            if check and v.impl == "triton" and group.check is not None:
                err = group.check(sets[0], fns[0])
                if not err <= CHECK_REL_TOL:
                    self.fail(cid, group.kernel, v.impl, "check",
                              f"relative error {err:.3g} vs vendor > {CHECK_REL_TOL}")
            t = bench(fns, budget_s=self.cfg.case_budget_s, nvml=self.nvml)
            rows.append(self._row(group, v.impl, t, *counts, graph=False))
            if graph and v.graph_ok and t.median_s < GRAPH_BELOW_S:
                try:
                    tg = bench_graph(fns, budget_s=self.cfg.case_budget_s, nvml=self.nvml)
                    rows.append(self._row(group, v.impl, tg, *counts, graph=True))
                except Exception as exc:
                    self.fail(group.case_id(v.impl, True), group.kernel, v.impl, "graph",
                              f"{type(exc).__name__}: {exc}")
                    torch.cuda.synchronize()
        except Exception as exc:
            self.fail(cid, group.kernel, v.impl, "run", f"{type(exc).__name__}: {exc}"
                      + ("" if isinstance(exc, torch.cuda.OutOfMemoryError)
                         else " | " + traceback.format_exc(limit=3).splitlines()[-3]))
            try:
                torch.cuda.synchronize()
            except Exception:  # a sticky CUDA error; later cases will report it too
                pass
        finally:
            fns = None  # noqa: F841  drop the closures (and their input sets) before the next variant
        return rows

    def run_section(self, name: str, groups: list[Group], progress=None) -> None:
        budget_s = self.cfg.section_budget_s.get(name, 60.0)
        t0 = time.perf_counter()
        task = progress.add_task(name, total=len(groups)) if progress is not None else None
        for i, group in enumerate(groups):
            if time.perf_counter() - t0 > budget_s:
                for g in groups[i:]:
                    self.fail(g.case_id("*"), g.kernel, "*", "skipped",
                              f"section {name!r} time budget {budget_s:.0f} s spent")
                break
            self.run_group(group)
            if task is not None:
                progress.advance(task)
        self.section_s[name] = time.perf_counter() - t0
        if task is not None:
            progress.update(task, completed=len(groups))


def run_sections(runner: Runner, sections: Iterable[Section], progress=None,
                 after: Callable[[str, list[Group]], None] | None = None) -> None:
    """Build and run each section in turn; ``after(name, groups)`` follows each one."""
    for name, build in sections:
        groups = build()
        runner.run_section(name, groups, progress)
        if after is not None:
            after(name, groups)
        del groups  # a section's groups may hold large inputs (the KV cache): let them go


def repeat_groups(groups: Iterable[Group]) -> list[Group]:
    """The groups with a variant declared ``repeat=True``."""
    return [g for g in groups if any(v.repeat for v in g.variants)]


def measure_repeats(runner: Runner, groups: list[Group]) -> None:
    """Re-time the variants declared ``repeat=True`` that produced a row; store |t2 − t1| /
    min(t1, t2) on the first row."""
    by_id = {r["case_id"]: r for r in runner.rows}
    for group in groups:
        for v in group.variants:
            cid = group.case_id(v.impl)
            if not v.repeat or cid not in by_id:
                continue
            n_before = len(runner.rows)
            again = runner.run_group(group, only_impl=v.impl, check=False)
            del runner.rows[n_before:]  # keep one row per case; the repeat only feeds the spread
            for row in again:  # the eager row, and the graph row where the kernel has one
                first = by_id.get(row["case_id"])
                if first is not None:
                    t1, t2 = first["median_s"], row["median_s"]
                    first["repeat_spread_frac"] = abs(t2 - t1) / min(t1, t2)


def make_runner(hardware_id: str | None = None, quick: bool = False) -> Runner:
    """A :class:`Runner` for the attached GPU, refusing before any GPU work: :class:`NoGPUError`
    without CUDA, :class:`HardwareMismatchError` when ``hardware_id`` is not the attached GPU."""
    from validate.env import detect_environment, require_cuda

    torch = require_cuda()  # NoGPUError before anything else
    nvml = Nvml(0)
    env = detect_environment(hardware_id, nvml=nvml)  # HardwareMismatchError before any GPU work
    cfg = SweepConfig.quick_mode() if quick else SweepConfig.full()
    torch.backends.cuda.matmul.allow_tf32 = False  # bf16/fp8 only; keep fp32 paths honest
    return Runner(torch, env, nvml, cfg, Kernels())

