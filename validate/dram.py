"""DRAM bytes as the memory controller counts them: one call of each state case
(:mod:`validate.cases.states`) under Nsight Compute, written to ``dram_bytes.csv``
(:data:`DRAM_COLUMNS`) next to hwperf's minimum count (``hbm_bytes``, as kernels.csv).

How: :func:`run_dram` starts ``ncu --profile-from-start off --metrics dram__bytes_read.sum,
dram__bytes_write.sum --cache-control all --clock-control none --csv --print-units base`` on
``python -m validate.dram --child``, which builds each case on one fresh input set, calls it once
unprofiled (library initialisation, autotuning), then profiles exactly one call between
``cudaProfilerStart``/``Stop``, preceded by a marker kernel (``torch.cuda._sleep``). The first
profiled range holds the marker alone, so its kernel name is learnt from the output; the kernels
between two markers belong to one case (``n_kernels`` of them; their bytes are summed). ncu
flushes the caches before every kernel (``--cache-control all``), so every kernel reads its inputs
from DRAM: for a multi-kernel layer step the sum is an upper bound of what a real step moves, and
writes still held in L2 when a kernel ends are not counted as DRAM writes (on the H200 run of
2026-12-01 outputs up to ~8 MB showed 0 written bytes). ``--clock-control none`` leaves the GPU's
clocks alone. A device-to-device ``copy_`` launches no kernel that ncu profiles (the driver's
memcpy): its row has ``n_kernels`` 0 and empty byte counts.

Without ``ncu`` (looked for on PATH, under /usr/local/cuda*/bin and /opt/nvidia) no file is
written and the environment file says why.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from validate.states import STATE_SHAPE_COLUMNS

NCU_METRICS: tuple[str, ...] = ("dram__bytes_read.sum", "dram__bytes_write.sum")
DRAM_COLUMNS: tuple[str, ...] = (
    "case_id", "kernel", "impl", *(c for c in STATE_SHAPE_COLUMNS if c != "graph"),
    "dram_read_bytes", "dram_write_bytes", "n_kernels", "hbm_bytes", "gpu_name", "hardware_id",
)
KERNEL_COLUMNS: tuple[str, ...] = ("case_id", "kernel_name", "dram_read_bytes", "dram_write_bytes")
NCU_GLOBS = ("/usr/local/cuda*/bin/ncu", "/opt/nvidia/nsight-compute/*/ncu", "/opt/nvidia/*/ncu")
_UNIT_BYTES = {"byte": 1.0, "kbyte": 1e3, "mbyte": 1e6, "gbyte": 1e9, "tbyte": 1e12,
               "kibyte": 2.0**10, "mibyte": 2.0**20, "gibyte": 2.0**30}
REPO_ROOT = Path(__file__).resolve().parent.parent


def find_ncu() -> str | None:
    """Path of Nsight Compute's ``ncu``: PATH first, then the usual install folders (newest)."""
    found = shutil.which("ncu")
    if found:
        return found
    for pattern in NCU_GLOBS:
        hits = sorted(p for p in glob.glob(pattern) if os.access(p, os.X_OK))
        if hits:
            return hits[-1]
    return None


def ncu_command(ncu: str, order_path: Path | str, quick: bool, case_set: str | None = None) -> list[str]:
    return [ncu, "--profile-from-start", "off", "--metrics", ",".join(NCU_METRICS),
            "--cache-control", "all", "--clock-control", "none", "--csv", "--print-units", "base",
            "--target-processes", "all", sys.executable, "-m", "validate.dram", "--child",
            str(order_path)] + (["--set", case_set] if case_set else ["--quick"] if quick else [])


# --------------------------------------------------------------------------------------- parsing

def _number(value: str, unit: str) -> float | None:
    text = value.replace(",", "").strip()
    try:
        number = float(text)
    except ValueError:
        return None
    return number * _UNIT_BYTES.get(unit.strip().lower(), 1.0)


def parse_ncu_csv(text: str) -> list[dict]:
    """Kernels in launch order: [{"id", "name", <metric>: bytes, ...}] from ncu's ``--csv`` details
    output (one row per kernel and metric); lines before the header (ncu's ``==PROF==`` messages,
    the program's own output) are skipped."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"ID"')), None)
    if start is None:
        return []
    kernels: dict[int, dict] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        kid = (row.get("ID") or "").strip()
        if not kid.isdigit() or row.get("Metric Name") not in NCU_METRICS:
            continue
        entry = kernels.setdefault(int(kid), {"id": int(kid), "name": row.get("Kernel Name", "")})
        entry[row["Metric Name"]] = _number(row.get("Metric Value", ""), row.get("Metric Unit", ""))
    return [kernels[k] for k in sorted(kernels)]


def attribute(kernels: list[dict], case_ids: list[str]) -> tuple[dict[str, dict], str | None]:
    """Split the kernels at each marker (the first kernel's name) and give segment i + 1 to
    ``case_ids[i]`` (segment 0 is the marker-only range); returns ({case_id: {"read", "write",
    "n_kernels"}}, a note when the counts of segments and cases differ)."""
    if not kernels:
        return {}, "ncu reported no kernels"
    segments = _segments(kernels)
    note = None
    if len(segments) != len(case_ids):
        note = f"{len(segments)} profiled ranges for {len(case_ids)} cases; matched in order"
    out = {}
    for case_id, seg in zip(case_ids, segments):
        if not case_id:  # a range whose call failed
            continue
        reads = [k.get(NCU_METRICS[0]) for k in seg]
        writes = [k.get(NCU_METRICS[1]) for k in seg]
        out[case_id] = {  # no kernel (a copy engine's memcpy, which ncu does not see): unknown
            "read": None if None in reads or not seg else sum(reads),
            "write": None if None in writes or not seg else sum(writes),
            "n_kernels": len(seg),
        }
    return out, note


def _segments(kernels: list[dict]) -> list[list[dict]]:
    """The kernels between one marker (the first kernel's name) and the next, after the marker-only range."""
    marker = kernels[0]["name"]
    segments: list[list[dict]] = []
    for k in kernels:
        if k["name"] == marker:
            segments.append([])
        else:
            segments[-1].append(k)
    return segments[1:]


def kernel_rows(kernels: list[dict], case_ids: list[str]) -> list[dict]:
    """dram_kernels.csv rows (:data:`KERNEL_COLUMNS`): each profiled kernel of each case, by name (which
    library kernel ran, e.g. cuBLAS's tile configuration), with its own DRAM bytes."""
    rows = []
    for case_id, seg in zip(case_ids, _segments(kernels) if kernels else []):
        rows += [{"case_id": case_id, "kernel_name": k["name"], "dram_read_bytes": k.get(NCU_METRICS[0]),
                  "dram_write_bytes": k.get(NCU_METRICS[1])} for k in seg if case_id]
    return rows


def dram_rows(cases, per_case: dict[str, dict], env) -> list[dict]:
    """dram_bytes.csv rows of the cases ncu measured, in case order."""
    rows = []
    for case in cases:
        got = per_case.get(case.case_id)
        if got is None:
            continue
        try:
            hbm = case.counts()[1]
        except Exception:  # counts need the kernels module; leave the minimum empty without it
            hbm = None
        rows.append({"case_id": case.case_id, "kernel": case.kernel, "impl": case.impl,
                     **case.shape, "dram_read_bytes": got["read"], "dram_write_bytes": got["write"],
                     "n_kernels": got["n_kernels"], "hbm_bytes": hbm,
                     "gpu_name": env.gpu_name, "hardware_id": env.hardware_id})
    return rows


# ------------------------------------------------------------------------------------ the parent

def _run_ncu(cmd: list[str], stdout_path: Path, timeout_s: float) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group (killed whole on timeout); (return code, stderr tail)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(stdout_path, "w") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=REPO_ROOT, env=env,
                                start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        err.seek(0)
        return rc, err.read()[-3000:]


def _all_cases(case_set: str) -> list:
    import torch

    from validate.cases.states import state_cases
    from validate.runner import Kernels

    return state_cases(torch, Kernels(), case_set=case_set,
                       fp8_ok=torch.cuda.get_device_capability(0) >= (8, 9))


def run_dram(env, folder, quick: bool = False, timeout_s: float = 300.0,
             cases=None, case_set: str | None = None) -> tuple[list[dict], dict]:
    """Profile every state case's one call under ncu; returns (dram_bytes.csv rows, metadata).

    The rows are written to ``folder/dram_bytes.csv``, each kernel's name and bytes to
    ``folder/dram_kernels.csv``; ncu's raw output and the case order are
    kept there (``dram_ncu_raw.csv``, ``dram_order.json``) only when they could not be matched.
    ``cases`` (default :func:`validate.cases.states.state_cases`) describe the rows; the child
    builds its own with the same function.
    """
    from validate.runner import write_csv_atomic

    ncu = find_ncu()
    meta: dict = {"ncu": ncu, "metrics": list(NCU_METRICS)}
    if ncu is None:
        meta["error"] = "ncu (Nsight Compute) not found on PATH, /usr/local/cuda*/bin, /opt/nvidia"
        return [], meta
    folder = Path(folder)
    with tempfile.TemporaryDirectory() as tmp:
        order_path, raw_path = Path(tmp) / "order.json", Path(tmp) / "ncu.csv"
        t0 = time.perf_counter()
        rc, stderr = _run_ncu(ncu_command(ncu, order_path, quick, case_set), raw_path, timeout_s)
        meta.update(return_code=rc, seconds=time.perf_counter() - t0, stderr_tail=stderr[-1500:])
        case_ids = json.loads(order_path.read_text()) if order_path.exists() else []
        kernels = parse_ncu_csv(raw_path.read_text())
        per_case, note = attribute(kernels, case_ids)
        by_kernel = kernel_rows(kernels, case_ids)
        meta.update(note=note, n_cases=len(per_case))
        if note or rc != 0:
            shutil.copy(raw_path, folder / "dram_ncu_raw.csv")
            if order_path.exists():
                shutil.copy(order_path, folder / "dram_order.json")
    case_set = case_set or ("quick" if quick else "full")
    rows = dram_rows(cases if cases is not None else _all_cases(case_set), per_case, env)
    if rows:
        write_csv_atomic(folder / "dram_bytes.csv", rows, DRAM_COLUMNS)
    if by_kernel:
        write_csv_atomic(folder / "dram_kernels.csv", by_kernel, KERNEL_COLUMNS)
    return rows, meta


# ------------------------------------------------------------------------------------- the child

def child(order_path: str, quick: bool = False, case_set: str | None = None) -> int:
    """Under ncu: each case once unprofiled, then once profiled after a marker kernel."""
    import torch

    done: list[str] = []  # case ids in profiled order; "" for a range whose call failed
    marked = [False]

    def profiled(fn) -> None:
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        try:
            torch.cuda._sleep(1000)  # the marker kernel
            marked[0] = True
            if fn is not None:
                fn()
            torch.cuda.synchronize()
        finally:
            torch.cuda.profiler.stop()

    profiled(None)
    for case in _all_cases(case_set or ("quick" if quick else "full")):
        marked[0] = False
        try:
            (fn,) = case.make_fns(1)
            fn()
            profiled(fn)
            done.append(case.case_id)
        except Exception as exc:
            print(f"dram: {case.case_id}: {type(exc).__name__}: {exc}", file=sys.stderr)
            if marked[0]:
                done.append("")
        fn = None
        torch.cuda.empty_cache()
        Path(order_path).write_text(json.dumps(done))
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        rest = sys.argv[3:]
        sys.exit(child(sys.argv[2], "--quick" in rest, rest[rest.index("--set") + 1] if "--set" in rest else None))
    print("usage: python -m validate.dram --child ORDER_JSON [--quick | --set NAME] (run by run_dram under ncu)",
          file=sys.stderr)
    sys.exit(2)
