"""validate/states.py, validate/cases/states.py and validate/dram.py on the CPU (GPU work faked),
plus a marked GPU smoke run of ``--only-states --quick``."""

from __future__ import annotations

import contextlib
import csv
import subprocess
import sys
import types
from pathlib import Path

import pytest

from validate import dram, states
from validate.cases import states as cases_mod
from validate.layers import LAYER_COLUMNS
from validate.runner import KERNEL_COLUMNS, Kernels, write_csv_atomic
from validate.states import (STATE_COLUMNS, TRACE_COLUMNS, Prepared, StateConfig, StateRun,
                             calls_per_replay, eager_call_applies)

REPO = Path(__file__).resolve().parent.parent
H200 = REPO / "validate" / "measurements" / "h200-sxm-141gb"
SPEC_STATE_COLUMNS = (
    "case_id kernel impl state dtype m n k batch seq context n_q_heads n_kv_heads head_dim causal "
    "paged bytes mode graph model hidden ffn_hidden median_s p10_s p90_s n_reps mean_power_w "
    "mean_sm_clock_hz start_sm_clock_hz start_power_w power_limit_w flops hbm_bytes gpu_name "
    "hardware_id").split()
ENV = types.SimpleNamespace(gpu_name="NVIDIA H200", hardware_id="h200-sxm-141gb", l2_bytes=60 * 2**20)


def _cases(quick=False):
    torch = pytest.importorskip("torch")
    return cases_mod.state_cases(torch, Kernels(), quick=quick, fp8_ok=True)


# ----------------------------------------------------------------------------------- columns

def test_columns():
    assert list(STATE_COLUMNS) == SPEC_STATE_COLUMNS
    assert list(TRACE_COLUMNS) == ["case_id", "state", "t_s", "power_w", "sm_clock_hz"]
    shape = set(states.STATE_SHAPE_COLUMNS)
    assert shape <= set(KERNEL_COLUMNS) | set(LAYER_COLUMNS) | {"dtype"}
    assert set(dram.DRAM_COLUMNS) >= {"case_id", "kernel", "dram_read_bytes", "dram_write_bytes",
                                      "n_kernels", "hbm_bytes"} | (shape - {"graph"})


def test_every_case_field_is_a_column():
    for case in _cases():
        assert set(case.shape) <= set(states.STATE_SHAPE_COLUMNS), case.case_id


# ---------------------------------------------------------------------------------- the cases

def test_case_list_shapes_and_unique_ids():
    cases = _cases()
    ids = [c.case_id for c in cases]
    assert len(ids) == len(set(ids)) == 21
    by_kind: dict[str, list] = {}
    for c in cases:
        by_kind.setdefault(c.kernel, []).append(c)
    assert set(by_kind) == set(states.STATE_KERNELS)
    gemm = [(c.shape["m"], c.shape["n"], c.shape["k"], c.shape["dtype"]) for c in by_kind["gemm"]]
    assert gemm == [(*s, "bf16") for s in cases_mod.BF16_GEMMS] + [(4096, 4096, 4096, "fp8")]
    assert [(c.shape["batch"], c.shape["seq"], c.shape["causal"]) for c in by_kind["attention_prefill"]] == [
        (4, 4096, True), (1, 8192, True), (8, 1024, True)]
    assert [(c.shape["batch"], c.shape["context"], c.shape["paged"])
            for c in by_kind["attention_decode"]] == [(64, 4096, False), (16, 32768, False), (8, 1024, False)]
    for c in by_kind["attention_prefill"] + by_kind["attention_decode"]:
        assert (c.shape["n_q_heads"], c.shape["n_kv_heads"], c.shape["head_dim"]) == (32, 8, 128)
    assert [c.shape["bytes"] for c in by_kind["copy"]] == [2**30, 64 * 2**20]
    assert [(c.shape["mode"], c.shape["batch"], c.graph) for c in by_kind["layer"]] == [
        ("prefill", 1, False), ("decode", 32, True), ("decode", 8, True)]
    # kernels replay from CUDA graphs; copies run eagerly (a graph-captured copy_ runs on the copy engines)
    assert all(c.graph == (c.kernel != "copy") for c in cases if c.kernel != "layer")
    assert all(c.impl == "vendor" for c in cases)


NOT_MEASURED_BEFORE = {  # shapes the kernel and layer sweeps do not time (prefill batch 16384 / seq)
    "gemm-vendor-bf16-m4096-n14336-k4096", "gemm-vendor-bf16-m256-n14336-k4096",
    "attention_prefill-vendor-bf16-b1-s8192-hq32-hkv8-d128-causal",
    "attention_prefill-vendor-bf16-b8-s1024-hq32-hkv8-d128-causal",
    "attention_decode-vendor-bf16-b64-ctx4096-hq32-hkv8-d128",
    "attention_decode-vendor-bf16-b8-ctx1024-hq32-hkv8-d128",
    "layer-llama-3-8b-decode-b8-ctx1024-graph",  # the layers sweep's --quick case
}


def test_case_ids_and_counts_are_those_of_the_committed_measurements():
    """Kernel cases share kernels.csv's ids and flops/hbm_bytes where kernels.csv has the shape;
    layer cases layers.csv's ids."""
    with open(H200 / "kernels.csv") as fh:
        kernels = {r["case_id"]: r for r in csv.DictReader(fh)}
    with open(H200 / "layers.csv") as fh:
        layer_ids = {r["case_id"] for r in csv.DictReader(fh)}
    missing = set()
    for case in _cases():
        if case.case_id not in (layer_ids if case.kernel == "layer" else kernels):
            missing.add(case.case_id)
        elif case.kernel != "layer":
            flops, hbm = case.counts()
            row = kernels[case.case_id]
            assert (str(flops) if flops is not None else "", str(hbm)) == (row["flops"], row["hbm_bytes"])
    assert missing == NOT_MEASURED_BEFORE


def test_quick_cases_are_one_small_set_of_every_kind():
    cases = _cases(quick=True)
    assert {c.kernel for c in cases} == set(states.STATE_KERNELS) and len(cases) <= 8


# ------------------------------------------------------------------------------------ the rules

def test_eager_call_rule():
    assert eager_call_applies("gemm", 10e-6) and eager_call_applies("copy", 99e-6)
    assert not eager_call_applies("gemm", 100e-6) and not eager_call_applies("gemm", None)
    assert not eager_call_applies("layer", 10e-6)


def test_calls_per_replay():
    cfg = StateConfig()
    assert calls_per_replay(1e-3, 1, cfg) == 1
    assert calls_per_replay(10e-6, 1, cfg) == 20
    assert calls_per_replay(10e-6, 6, cfg) == 24  # a multiple of the input sets
    assert calls_per_replay(1e-9, 1, cfg) == cfg.max_calls_per_replay
    assert calls_per_replay(1e-3, 7, cfg) == 7


def test_sample_means_use_the_window_only():
    samples = [(0.0, 100.0, 1e9), (1.0, 600.0, 1.5e9), (2.0, None, 1.7e9), (3.0, 50.0, None)]
    assert states.sample_means(samples, 0.5, 2.5) == (600.0, 1.6e9)
    assert states.sample_means([], 0, 1) == (None, None)
    assert states.sample_means(samples, 2.9, 2.95) == (50.0, None)  # none inside: the nearest
    # a window shorter than the power field's update period reads no power, only the clock
    assert states.sample_means(samples, 0.5, 2.5, power_min_window_s=3.0) == (None, 1.6e9)


def test_short_windows_report_no_power(monkeypatch):
    """With the default 0.3 s rule, the fake run's ms-long windows leave every mean_power_w empty."""
    FAKE.cuda = _FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", FAKE)
    cfg = StateConfig(**{**FAST.__dict__, "power_min_window_s": 0.3})
    run = states.run_states(ENV, _FakeNvml(), cfg=cfg, cases=[_fake_case("short", "gemm", 0.01)])
    assert [r["mean_power_w"] for r in run.rows] == [None, None, None]
    assert all(r["mean_sm_clock_hz"] == 1.5e9 for r in run.rows)


# ------------------------------------------------------------------------------- fake GPU run

class _FakeCuda:
    """Just enough of torch.cuda: a GPU clock that calls advance, events, streams and graphs."""

    def __init__(self):
        self.now_ms, self.capturing = 0.0, None
        fake = self

        class Event:
            def __init__(self, enable_timing=False):
                self.t = None

            def record(self):
                self.t = fake.now_ms

            def synchronize(self):
                pass

            def elapsed_time(self, other):
                return other.t - self.t

        class CUDAGraph:
            def __init__(self):
                self.ms = 0.0

            def replay(self):
                fake.now_ms += self.ms

        self.Event, self.CUDAGraph = Event, CUDAGraph

    def launch(self, ms):
        if self.capturing is not None:
            self.capturing.ms += ms
        else:
            self.now_ms += ms

    @contextlib.contextmanager
    def graph(self, g):
        self.capturing = g
        yield
        self.capturing = None

    def Stream(self):
        return types.SimpleNamespace(wait_stream=lambda s: None)

    def current_stream(self):
        return self.Stream()

    @contextlib.contextmanager
    def stream(self, s):
        yield

    def synchronize(self):
        pass

    def empty_cache(self):
        pass


class _FakeNvml:
    available = True

    def instant_power_w(self):
        return 650.0

    def power_w(self):
        return 600.0

    def sm_clock_hz(self):
        return 1.5e9

    def power_limit_w(self):
        return 700.0


def _fake_case(case_id, kernel, ms, graph=True, fail=False):
    def make_fns(n):
        if fail:
            raise RuntimeError("out of\nmemory")
        return [lambda: FAKE.cuda.launch(ms) for _ in range(n)]

    return cases_mod.StateCase(case_id, kernel, "vendor", {"dtype": "bf16", "m": 1}, graph,
                               set_bytes=2**20, make_fns=make_fns, counts=lambda: (10, 20))


FAKE = types.SimpleNamespace(cuda=_FakeCuda())
FAST = StateConfig(idle_s=0.0, burst_s=0.002, warmup_s=0.01, sustained_s=0.005, eager_calls=30,
                   eager_warmup=2, interval_s=0.001, burst_interval_s=0.001, power_min_window_s=0.0)


def _fake_run(monkeypatch, cases, tmp_path=None):
    FAKE.cuda = _FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", FAKE)
    return states.run_states(ENV, _FakeNvml(), folder=tmp_path, cfg=FAST, cases=cases)


def test_fake_run_rows_states_and_files(monkeypatch, tmp_path):
    cases = [_fake_case("short", "gemm", 0.01), _fake_case("long", "gemm", 0.5),
             _fake_case("layer-x", "layer", 0.01, graph=False), _fake_case("bad", "copy", 1, fail=True)]
    run = _fake_run(monkeypatch, cases, tmp_path)
    assert [(r["case_id"], r["state"]) for r in run.rows] == [
        ("short", "eager_call"), ("short", "burst"), ("short", "sustained"), ("long", "burst"),
        ("long", "sustained"), ("layer-x", "burst"), ("layer-x", "sustained")]
    short = {r["state"]: r for r in run.rows if r["case_id"] == "short"}
    assert short["burst"]["median_s"] == pytest.approx(10e-6) and short["burst"]["graph"] is True
    assert short["eager_call"]["graph"] is False and short["eager_call"]["n_reps"] == 30
    assert short["eager_call"]["start_sm_clock_hz"] == 1.5e9  # read after its own idle
    assert short["burst"]["n_reps"] % 20 == 0  # 20 calls per replay (200 µs of 10 µs calls)
    assert short["burst"]["start_sm_clock_hz"] == 1.5e9 and short["burst"]["start_power_w"] == 650.0
    assert short["sustained"]["mean_power_w"] == 650.0 and short["sustained"]["power_limit_w"] == 700.0
    assert (short["sustained"]["flops"], short["sustained"]["hbm_bytes"]) == (10, 20)
    assert [r["graph"] for r in run.rows if r["case_id"] == "layer-x"] == [False, False]
    assert run.failures == [{"case_id": "bad", "kernel": "copy", "impl": "vendor", "stage": "states",
                             "error": "RuntimeError: out of memory"}]
    assert {t["state"] for t in run.trace} <= {"eager_call", "burst", "sustained", "sustained_warmup"}
    with open(tmp_path / "states.csv") as fh:
        assert next(csv.reader(fh)) == SPEC_STATE_COLUMNS
    with open(tmp_path / "states_trace.csv") as fh:
        assert next(csv.reader(fh)) == list(TRACE_COLUMNS)


def test_fake_run_without_nvml_leaves_power_empty(monkeypatch):
    FAKE.cuda = _FakeCuda()
    monkeypatch.setitem(sys.modules, "torch", FAKE)
    nvml = types.SimpleNamespace(available=False, instant_power_w=lambda: None, power_w=lambda: None,
                                 sm_clock_hz=lambda: None, power_limit_w=lambda: None)
    run = states.run_states(ENV, nvml, cfg=FAST, cases=[_fake_case("long", "gemm", 0.5)])
    assert [r["mean_power_w"] for r in run.rows] == [None, None] and not run.trace


def test_writer_refuses_unknown_columns(tmp_path):
    with pytest.raises(ValueError, match="typo"):
        write_csv_atomic(tmp_path / "states.csv", [{"typo": 1}], STATE_COLUMNS)
    run = StateRun(None, ENV, _FakeNvml(), FAST)
    paths = states.write_states(tmp_path, run)
    assert sorted(p.name for p in paths.values()) == ["states.csv", "states_trace.csv"]


def test_prepared_chunks():
    prep = Prepared([], lambda: None, calls_per_unit=20, call_s=10e-6)
    assert states._chunk(prep, 0.05) == 250 and states._replays_for(prep, 1.0) == 5000
    assert states._replays_for(Prepared([], None, 1, 1.0), 0.04) == 5


# ------------------------------------------------------------------------------------ ncu output

NCU_CSV = '''==PROF== Connected to process 1234 (/usr/bin/python3)
==PROF== Profiling "spin_kernel": 0%....50%....100% - 1 pass
"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream","Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"
"0","1234","python3","127.0.0.1","spin_kernel(long)","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_read.sum","byte","0"
"0","1234","python3","127.0.0.1","spin_kernel(long)","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_write.sum","byte","0"
"1","1234","python3","127.0.0.1","spin_kernel(long)","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_read.sum","byte","64"
"1","1234","python3","127.0.0.1","spin_kernel(long)","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_write.sum","byte","0"
"2","1234","python3","127.0.0.1","nvjet_hsh_256x128","1","7","(384, 1, 1)","(132, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_read.sum","byte","268,435,456"
"2","1234","python3","127.0.0.1","nvjet_hsh_256x128","1","7","(384, 1, 1)","(132, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_write.sum","Mbyte","134.2"
"3","1234","python3","127.0.0.1","spin_kernel(long)","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_read.sum","byte","0"
"3","1234","python3","127.0.0.1","spin_kernel(long)","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_write.sum","byte","0"
"4","1234","python3","127.0.0.1","spin_kernel(long)","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_read.sum","byte","0"
"4","1234","python3","127.0.0.1","spin_kernel(long)","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_write.sum","byte","0"
"5","1234","python3","127.0.0.1","elementwise","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_read.sum","byte","1000"
"5","1234","python3","127.0.0.1","elementwise","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_write.sum","byte","10"
"6","1234","python3","127.0.0.1","other","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_read.sum","byte","2000"
"6","1234","python3","127.0.0.1","other","1","7","(1, 1, 1)","(1, 1, 1)","0","9.0","Command line profiler metrics","dram__bytes_write.sum","byte","20"
==PROF== Disconnected from process 1234
'''


def test_parse_and_attribute_ncu_csv():
    kernels = dram.parse_ncu_csv(NCU_CSV)
    assert [k["id"] for k in kernels] == [0, 1, 2, 3, 4, 5, 6]
    assert kernels[2]["dram__bytes_read.sum"] == 268435456 and kernels[2]["dram__bytes_write.sum"] == pytest.approx(134.2e6)
    per_case, note = dram.attribute(kernels, ["gemm-a", "", "layer-b"])  # the second range failed
    assert note is None
    assert per_case == {"gemm-a": {"read": 268435456.0, "write": pytest.approx(134.2e6), "n_kernels": 1},
                        "layer-b": {"read": 3000.0, "write": 30.0, "n_kernels": 2}}
    # a range with no profiled kernel (a memcpy): bytes unknown, not zero
    assert dram.attribute(kernels[:2], ["copy"])[0] == {"copy": {"read": None, "write": None,
                                                                 "n_kernels": 0}}
    assert dram.attribute(kernels, ["gemm-a"])[1].startswith("3 profiled ranges for 1 cases")
    assert dram.parse_ncu_csv("no csv here") == [] and dram.attribute([], [])[1]


def test_dram_rows_and_command(tmp_path):
    cases = [_fake_case("gemm-a", "gemm", 1.0), _fake_case("other", "gemm", 1.0)]
    rows = dram.dram_rows(cases, {"gemm-a": {"read": 5.0, "write": 6.0, "n_kernels": 1}}, ENV)
    assert len(rows) == 1 and rows[0]["hbm_bytes"] == 20 and rows[0]["dram_read_bytes"] == 5.0
    write_csv_atomic(tmp_path / "dram_bytes.csv", rows, dram.DRAM_COLUMNS)
    cmd = dram.ncu_command("/x/ncu", tmp_path / "order.json", quick=True)
    assert cmd[0] == "/x/ncu" and "--clock-control" in cmd and cmd[-1] == "--quick"
    assert cmd[cmd.index("--metrics") + 1] == "dram__bytes_read.sum,dram__bytes_write.sum"


def test_child_profiles_one_call_per_case_after_a_marker(monkeypatch, tmp_path):
    log = []
    cuda = types.SimpleNamespace(
        synchronize=lambda: None, empty_cache=lambda: None, _sleep=lambda n: log.append("marker"),
        profiler=types.SimpleNamespace(start=lambda: log.append("start"), stop=lambda: log.append("stop")))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))

    def case(case_id, fail_on=None):
        calls = []

        def fn():
            calls.append(1)
            log.append(case_id)
            if fail_on == len(calls):
                raise RuntimeError("boom")

        return cases_mod.StateCase(case_id, "gemm", "vendor", {}, True, 0, lambda n: [fn],
                                   lambda: (None, None))

    monkeypatch.setattr(dram, "_all_cases", lambda quick: [case("a"), case("b", fail_on=2),
                                                           case("c", fail_on=1)])
    assert dram.child(str(tmp_path / "order.json"), quick=True) == 0
    assert log == ["start", "marker", "stop", "a", "start", "marker", "a", "stop",
                   "b", "start", "marker", "b", "stop", "c"]
    assert (tmp_path / "order.json").read_text() == '["a", ""]'


def test_run_dram_with_a_fake_ncu(monkeypatch, tmp_path):
    """The parent runs ncu, reads its CSV and the child's case order, writes dram_bytes.csv."""
    (tmp_path / "ncu.csv").write_text(NCU_CSV)
    fake = tmp_path / "ncu"
    fake.write_text("#!/bin/sh\nwhile [ \"$1\" != --child ]; do shift; done\n"
                    f"echo '[\"gemm-a\", \"\", \"other\"]' > \"$2\"\ncat {tmp_path / 'ncu.csv'}\n")
    fake.chmod(0o755)
    monkeypatch.setattr(dram, "find_ncu", lambda: str(fake))
    out = tmp_path / "out"
    out.mkdir()
    cases = [_fake_case("gemm-a", "gemm", 1.0), _fake_case("other", "gemm", 1.0)]
    rows, meta = dram.run_dram(ENV, out, cases=cases, timeout_s=30)
    assert meta["return_code"] == 0 and meta["note"] is None
    assert [(r["case_id"], r["n_kernels"]) for r in rows] == [("gemm-a", 1), ("other", 2)]
    assert sorted(p.name for p in out.iterdir()) == ["dram_bytes.csv", "dram_kernels.csv"]
    named = list(csv.DictReader(open(out / "dram_kernels.csv")))
    assert [(r["case_id"], r["kernel_name"]) for r in named] == [("gemm-a", "nvjet_hsh_256x128"),
                                                                ("other", "elementwise"), ("other", "other")]
    assert float(named[0]["dram_read_bytes"]) == 268435456.0
    monkeypatch.setattr(dram, "find_ncu", lambda: None)
    assert dram.run_dram(ENV, out, cases=cases)[1]["error"].startswith("ncu (Nsight Compute) not found")


# ------------------------------------------------------------------------------------ entry points

def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_cuda(), reason="checks the no-GPU path")
def test_only_states_without_gpu_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "validate", "--only-states", "--out",
                           str(tmp_path / "o"), "--quick"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.gpu
def test_quick_states_on_gpu(tmp_path):
    from validate.run import run_states_only

    folder, rows, meta = run_states_only(tmp_path, quick=True, progress=False)
    assert rows and not meta["states_failures"]
    assert {r["state"] for r in rows} >= {"burst", "sustained"}
    assert all(r["median_s"] > 0 for r in rows)
    assert (folder / "states_environment.json").is_file()


def test_extra2_set_adds_new_cases_only():
    """--states-set extra2 measures cases no earlier set has (states_merge appends new ids only), and
    holds the single-case classes: copies and eager prefill layers get several more cases."""
    torch = pytest.importorskip("torch")
    ids = {s: [c.case_id for c in cases_mod.state_cases(torch, Kernels(), case_set=s, fp8_ok=True)]
           for s in ("full", "extra", "extra2")}
    assert len(ids["extra2"]) == len(set(ids["extra2"])) == 12
    assert not set(ids["extra2"]) & (set(ids["full"]) | set(ids["extra"]))
    extra2 = cases_mod.state_cases(torch, Kernels(), case_set="extra2", fp8_ok=True)
    assert sum(c.kernel == "copy" for c in extra2) == 2
    assert sum(c.kernel == "layer" and c.shape["mode"] == "prefill" and not c.graph for c in extra2) == 3
    assert [c.shape["dtype"] for c in extra2 if c.kernel == "gemm"] == ["fp8"] * 3
    with pytest.raises(ValueError, match="case_set"):
        cases_mod.state_cases(torch, Kernels(), case_set="extra3")


def test_dram_set_sweeps_fp8_one_variable_at_a_time_and_adds_copies_ncu_can_see():
    """--states-set dram (for validate.dram's ncu run): each fp8 GEMM beside its bf16 twin, K swept at
    m = n = 4096 and M at n = k = 8192; copies through the Triton kernel (a copy_ is a memcpy ncu does not
    profile); no case id an earlier set already measured."""
    torch = pytest.importorskip("torch")
    cases = cases_mod.state_cases(torch, Kernels(), case_set="dram", fp8_ok=True)
    assert {c.kernel for c in cases} == {"gemm", "copy"}
    gemms = [c for c in cases if c.kernel == "gemm"]
    shapes = {d: sorted((c.shape["m"], c.shape["n"], c.shape["k"]) for c in gemms if c.shape["dtype"] == d)
              for d in ("fp8", "bf16")}
    assert shapes["fp8"] == shapes["bf16"] and len(shapes["fp8"]) == 10
    assert len({k for m, n, k in shapes["fp8"] if (m, n) == (4096, 4096)}) == 4
    assert len({m for m, n, k in shapes["fp8"] if (n, k) == (8192, 8192)}) == 4
    copies = [c for c in cases if c.kernel == "copy"]
    assert {c.impl for c in copies} == {"triton"} and sorted(c.shape["bytes"] for c in copies) == [2**26, 2**30]
    earlier = {c.case_id for s in ("full", "extra", "extra2") for c in cases_mod.state_cases(torch, Kernels(),
                                                                                               case_set=s)}
    assert not {c.case_id for c in cases} & earlier
