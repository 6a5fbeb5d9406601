"""One whole measurement run on the attached GPU: :func:`run_all` (``hwperf validate``,
``python3 -m validate``).

It runs the kernel sections of :mod:`validate.runner` over the catalogue :mod:`validate.cases`,
then the repeats, whole Llama layers (:mod:`validate.layers`), sustained power
(:mod:`validate.power`) and the operating states (:mod:`validate.states`, DRAM bytes through
:mod:`validate.dram` where Nsight Compute is installed), and writes, into ``out_dir`` (default
``validate/measurements/<hardware_id>/``), each file atomically and rewritten after every step so a
cut-off run keeps what it measured:

- ``kernels.csv``  one row per (kernel, impl, shape, graph) case, columns :data:`KERNEL_COLUMNS`;
- ``failures.csv`` cases that failed, mismatched the vendor result, or were skipped for time;
- ``layers.csv``   whole Llama decoder-layer timings;
- ``power.csv``, ``power_trace.csv`` sustained power runs;
- ``states.csv``, ``states_trace.csv``, ``dram_bytes.csv`` (``dram_kernels.csv``: per kernel, by name) burst / sustained / eager-call timings
  and DRAM bytes (:func:`run_states_only` runs this part alone, its environment in
  ``states_environment.json`` so a kernel run's ``environment.json`` is left as it is);
- ``environment.json`` GPU, driver, torch/triton/CUDA versions, git sha, and how it was measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Iterable

from validate.cases import kernel_sections
from validate.env import Environment
from validate.runner import (CHECK_REL_TOL, DEFAULT_OUT_DIR, FAILURE_COLUMNS, GRAPH_BELOW_S,
                             KERNEL_COLUMNS, Group, Runner, SweepConfig,
                             make_runner, measure_repeats, repeat_groups, run_sections,
                             write_csv_atomic, write_json_atomic)


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What :func:`run_all` wrote, and the headline numbers (SI units) for a summary."""

    out_dir: Path
    files: dict
    n_kernel_rows: int
    n_failures: int
    headline: dict


@dataclasses.dataclass
class _Session:
    """One :func:`run_all` call: the runner, where it writes, what it logs."""

    runner: Runner
    folder: Path
    files: dict
    meta: dict
    started: float
    console: Any = None
    bar: Any = None

    def flush(self, final: bool = False) -> None:
        runner = self.runner
        write_csv_atomic(self.files["kernels"], runner.rows, KERNEL_COLUMNS)
        write_csv_atomic(self.files["failures"], runner.failures, FAILURE_COLUMNS)
        self.meta.update(
            section_s=runner.section_s,
            kernel_import_errors=runner.kern.errors,
            n_kernel_rows=len(runner.rows),
            n_failures=len(runner.failures),
            finished=final,
            elapsed_s=time.time() - self.started,
        )
        write_json_atomic(self.files["environment"], self.meta)

    def log(self, message: str) -> None:
        if self.console is not None:
            self.console.log(message)


def run_all(
    out_dir: Path | str | None = None,
    hardware_id: str | None = None,
    quick: bool = False,
    progress: bool = True,
    *,
    layers: bool = True,
    power: bool = True,
    power_run_s: float | None = None,
    states: bool = True,
) -> RunResult:
    """Measure every kernel, a whole Llama layer and sustained power on the attached GPU.

    Args:
        out_dir: folder the files go to (default ``validate/measurements/<hardware_id>/``), each
            written atomically: ``kernels.csv``, ``failures.csv``, ``layers.csv``, ``power.csv``,
            ``power_trace.csv``, ``environment.json``.
        hardware_id: expected hwperf hardware id (``--hardware``); None accepts whatever GPU is
            attached (an unmapped one is filed under ``unknown-<name>``).
        quick: a tiny subset (a few shapes per kernel, 1 s power runs): seconds, for smoke tests.
        progress: show rich progress bars and a per-section log on stderr.
        layers, power, states: include the whole-layer, the sustained-power and the
            operating-state (+ DRAM bytes) measurements.
        power_run_s: seconds per sustained power run (default 5 s, quick 1 s).

    Returns:
        :class:`RunResult` with the folder, file paths, row counts and headline numbers.

    Raises:
        NoGPUError: torch sees no CUDA GPU (the message says so; no measurement is attempted).
        HardwareMismatchError: ``hardware_id`` is unknown or is not the attached GPU.

    A full run takes about 6-7 minutes on an H100, plus about 5 for the states (per-section time budgets skip what does not fit;
    skipped and failed cases are listed in ``failures.csv``); Triton kernels that fail to import or
    run are recorded there while the vendor references still run.
    """
    session = _start(out_dir, hardware_id, quick, progress)
    with session.bar or contextlib.nullcontext():
        headline_ids = _sweep_kernels(session)
        layer_rows = _measure_layers(session) if layers else []
        power_rows = _measure_power(session, power_run_s) if power else []
        if states:
            _measure_states(session)
    session.flush(final=True)
    runner = session.runner
    return RunResult(
        out_dir=session.folder,
        files={k: Path(v) for k, v in session.files.items()},
        n_kernel_rows=len(runner.rows),
        n_failures=len(runner.failures),
        headline=headline(runner.rows, layer_rows, power_rows, headline_ids),
    )


def _start(out_dir, hardware_id: str | None, quick: bool, progress: bool) -> _Session:
    """Refuse early (no GPU, wrong GPU), then set up the folder, the runner and the metadata."""
    runner = make_runner(hardware_id, quick)
    env = runner.env
    folder = Path(out_dir) if out_dir is not None else DEFAULT_OUT_DIR / env.hardware_id
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "kernels": folder / "kernels.csv", "failures": folder / "failures.csv",
        "environment": folder / "environment.json",
    }
    started = time.time()
    console, bar = _progress(progress)
    return _Session(runner, folder, files, _meta(env, runner.cfg, started), started, console, bar)


def _meta(env: Environment, cfg: SweepConfig, started: float) -> dict:
    """environment.json: the environment and how it was measured (run totals are added later)."""
    return {
        "environment": env.to_dict(),
        "quick": cfg.quick,
        "started_unix_s": started,
        "case_budget_s": cfg.case_budget_s,
        "section_budget_s": cfg.section_budget_s,
        "graph_below_s": GRAPH_BELOW_S,
        "check_rel_tol": CHECK_REL_TOL,
        "method": {
            "timing": "eager: batches of back-to-back calls (~1 ms, >= one pass over the input "
                      "sets), one CUDA event pair per batch, per-call = batch time / calls; graph: "
                      "per replay / calls per graph; median/p10/p90 over batches or replays of "
                      "per-call seconds; warm-up first; batches fill case_budget_s; n_reps = calls",
            "l2_rotation": "input sets smaller than 3x L2 are replicated until the cycle spans 3x "
                           "L2 (at most 256 sets)",
            "sm_clock_hz": "NVML SM clock read after enqueueing the timed loop (GPU busy)",
            "power_w": "NVML nvmlDeviceGetPowerUsage at the end of the timed loop (a trailing "
                       "~1 s average on Hopper)",
            "energy_j": "NVML total-energy counter difference over the timed loop's wall time; "
                        "empty for loops shorter than validate.timing.ENERGY_MIN_WALL_S (the "
                        "counter advances in ~100 ms steps); power.csv has sustained energy",
            "repeat_spread_frac": "|t2 - t1| / min(t1, t2) of a case timed early and again at "
                                  "the end of the kernel sweep",
            "counts": "flops/hbm_bytes from kernels.<module>.flops/hbm_bytes; copy and KV "
                      "gather/scatter hbm_bytes = 2 x bytes; h2d/d2h hbm_bytes = bytes",
        },
    }


def _sweep_kernels(session: _Session) -> dict[str, str]:
    """Every kernel section, then the repeats; returns the headline case ids (→ headline keys)."""
    runner = session.runner
    repeats: list[Group] = []
    headline_ids: dict[str, str] = {}

    def after(name: str, groups: list[Group]) -> None:
        repeats.extend(repeat_groups(groups))
        headline_ids.update(headline_cases(groups))
        session.flush()
        session.log(f"{name}: {len(groups)} shapes, {runner.section_s[name]:.1f} s, "
                    f"{len(runner.rows)} rows, {len(runner.failures)} failures so far")

    run_sections(runner, kernel_sections(runner.torch, runner.kern, runner.cfg), session.bar, after)
    t0 = time.perf_counter()
    measure_repeats(runner, repeats)
    runner.section_s["repeats"] = time.perf_counter() - t0
    del repeats[:]
    runner.torch.cuda.empty_cache()
    session.flush()
    session.log(f"repeats: {runner.section_s['repeats']:.1f} s")
    return headline_ids


def _measure_layers(session: _Session) -> list[dict]:
    from validate.layers import LAYER_COLUMNS, run_layers

    runner = session.runner
    t0 = time.perf_counter()
    layer_rows, layer_failures = run_layers(runner.env, runner.nvml, quick=runner.cfg.quick,
                                            progress=session.bar,
                                            budget_s=runner.cfg.section_budget_s["layers"])
    runner.failures += layer_failures
    session.files["layers"] = write_csv_atomic(session.folder / "layers.csv", layer_rows,
                                               LAYER_COLUMNS)
    runner.section_s["layers"] = time.perf_counter() - t0
    session.meta["n_layer_rows"] = len(layer_rows)
    session.flush()
    session.log(f"layers: {len(layer_rows)} rows, {runner.section_s['layers']:.1f} s")
    return layer_rows


def _measure_power(session: _Session, power_run_s: float | None) -> list[dict]:
    from validate.power import POWER_COLUMNS, TRACE_COLUMNS, run_power

    runner = session.runner
    t0 = time.perf_counter()
    run_s = power_run_s if power_run_s is not None else (1.0 if runner.cfg.quick else 5.0)
    power_rows, trace_rows, power_meta = run_power(runner.env, runner.nvml, run_s=run_s,
                                                   progress=session.bar)
    folder = session.folder
    session.files["power"] = write_csv_atomic(folder / "power.csv", power_rows, POWER_COLUMNS)
    session.files["power_trace"] = write_csv_atomic(folder / "power_trace.csv", trace_rows,
                                                    TRACE_COLUMNS)
    runner.section_s["power"] = time.perf_counter() - t0
    session.meta["power"] = power_meta
    session.flush()
    session.log(f"power: {len(power_rows)} runs, {runner.section_s['power']:.1f} s")
    return power_rows


def _states_and_dram(runner: Runner, folder: Path, progress=None,
                     dram_timeout_s: float = 300.0, case_set: str | None = None) -> tuple[list[dict], dict]:
    """The states section, then DRAM bytes under ncu; returns (states rows, metadata). ``case_set``:
    :data:`validate.cases.states.CASE_SETS` (default: "quick" with --quick, else "full")."""
    from validate.dram import run_dram
    from validate.states import run_states, states_meta

    t0 = time.perf_counter()
    cases = None
    if case_set is not None:
        import torch

        from validate.cases.states import state_cases
        from validate.runner import Kernels

        cases = state_cases(torch, Kernels(), case_set=case_set,
                            fp8_ok=torch.cuda.get_device_capability(0) >= (8, 9))
    run = run_states(runner.env, runner.nvml, quick=runner.cfg.quick, folder=folder,
                     progress=progress, cases=cases)
    runner.failures += run.failures
    meta = {"states": states_meta(run.cfg, run.instant), "n_state_rows": len(run.rows),
            "states_failures": run.failures, "states_s": time.perf_counter() - t0}
    t1 = time.perf_counter()
    dram_rows, meta["dram"] = run_dram(runner.env, folder, quick=runner.cfg.quick,
                                       timeout_s=dram_timeout_s, case_set=case_set)
    meta.update(n_dram_rows=len(dram_rows), dram_s=time.perf_counter() - t1)
    return run.rows, meta


def _measure_states(session: _Session) -> list[dict]:
    rows, meta = _states_and_dram(session.runner, session.folder, session.bar)
    for name in ("states", "states_trace", "dram_bytes", "dram_kernels"):
        if (session.folder / f"{name}.csv").exists():
            session.files[name] = session.folder / f"{name}.csv"
    session.runner.section_s["states"] = meta["states_s"] + meta["dram_s"]
    session.meta.update(meta)
    session.flush()
    session.log(f"states: {meta['n_state_rows']} rows, {meta['n_dram_rows']} DRAM rows, "
                f"{session.runner.section_s['states']:.1f} s")
    return rows


def run_states_only(out_dir: Path | str | None = None, hardware_id: str | None = None,
                    quick: bool = False, progress: bool = True,
                    dram_timeout_s: float = 300.0, case_set: str | None = None) -> tuple[Path, list[dict], dict]:
    """Only the operating states and DRAM bytes (``--only-states``); returns (folder, states
    rows, metadata). Writes ``states.csv``, ``states_trace.csv``, ``dram_bytes.csv`` and
    ``states_environment.json`` (environment + method) into ``out_dir`` (default
    ``validate/measurements/<hardware_id>/``); refuses like :func:`run_all` (NoGPUError,
    HardwareMismatchError) before any GPU work. ``dram_timeout_s`` bounds the ncu run."""
    runner = make_runner(hardware_id, quick)
    folder = Path(out_dir) if out_dir is not None else DEFAULT_OUT_DIR / runner.env.hardware_id
    folder.mkdir(parents=True, exist_ok=True)
    started = time.time()
    meta = {"environment": runner.env.to_dict(), "quick": quick, "case_set": case_set or ("quick" if quick else "full"),
            "started_unix_s": started, "finished": False}
    write_json_atomic(folder / "states_environment.json", meta)
    console, bar = _progress(progress)
    with bar or contextlib.nullcontext():
        rows, more = _states_and_dram(runner, folder, bar, dram_timeout_s, case_set)
    meta.update(more, finished=True, elapsed_s=time.time() - started)
    write_json_atomic(folder / "states_environment.json", meta)
    return folder, rows, meta


# ---------------------------------------------------------------------------------------- headline

def headline_cases(groups: Iterable[Group]) -> dict[str, str]:
    """Case id of each headline variant's eager row → its headline key (:attr:`Group.headline`)."""
    return {g.case_id(v.impl): g.headline.format(impl=v.impl)
            for g in groups if g.headline for v in g.variants}


def headline(rows: list[dict], layer_rows: list[dict] = (), power_rows: list[dict] = (),
             cases: dict[str, str] | None = None) -> dict:
    """A few headline numbers in SI units (None where the case was not measured).

    ``cases`` maps case ids to headline keys (:func:`headline_cases`); the achieved rate a key
    reports is the one its suffix names (``_flops_per_s`` or ``_bytes_per_s``).
    """
    by_id = {r["case_id"]: r for r in rows}
    out: dict[str, Any] = {}
    for case_id, key in (cases or {}).items():
        column = "achieved_flops_per_s" if key.endswith("_flops_per_s") else "achieved_bytes_per_s"
        out[key] = by_id[case_id].get(column) if case_id in by_id else None

    def best(kernel, impl, key, **where):
        vals = [r[key] for r in rows if r["kernel"] == kernel and r["impl"] == impl
                and r.get(key) is not None and not r["graph"]
                and all(r.get(k) == v for k, v in where.items())]
        return max(vals) if vals else None

    out.update({
        "prefill_vendor_best_flops_per_s": best("attention_prefill", "vendor", "achieved_flops_per_s"),
        "prefill_triton_best_flops_per_s": best("attention_prefill", "triton", "achieved_flops_per_s"),
        "decode_vendor_best_bytes_per_s": best("attention_decode", "vendor", "achieved_bytes_per_s"),
        "decode_triton_best_bytes_per_s": best("attention_decode", "triton", "achieved_bytes_per_s",
                                               paged=False),
        "decode_triton_paged_best_bytes_per_s": best("attention_decode", "triton",
                                                     "achieved_bytes_per_s", paged=True),
    })
    for p in power_rows:
        out[f"power_{p['run']}_mean_power_w"] = p.get("mean_power_w")
        out[f"power_{p['run']}_mean_sm_clock_hz"] = p.get("mean_sm_clock_hz")
        if p.get("achieved_flops_per_s") is not None:
            out[f"power_{p['run']}_achieved_flops_per_s"] = p["achieved_flops_per_s"]
        if p.get("achieved_bytes_per_s") is not None:
            out[f"power_{p['run']}_achieved_bytes_per_s"] = p["achieved_bytes_per_s"]
    return out


def _progress(enabled: bool):
    """(console, Progress) on stderr, or (None, None) when progress is off."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)

    console = Console(stderr=True)
    bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description:<18}"), BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    return console, bar
