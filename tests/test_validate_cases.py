"""The measurement catalogue (validate/cases/) and its selections, on the CPU: no tensor is made.

The literals below are an independent record of what the validate runs have measured so far
(copied from the hand-written tables validate/measure.py had before the catalogue was derived);
the committed measurements in validate/measurements/ are keyed by these shapes and case ids.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from validate.cases.gemm import GEMM_M_TRITON, GEMM_M_VENDOR, GEMM_SQUARE, linear_shapes, llama_linears
from validate.run import headline, headline_cases
from validate.cases import kernel_sections
from validate.runner import KERNELS, SECTIONS, Kernels, SweepConfig

REPO = Path(__file__).resolve().parent.parent

# name -> (n = out features, k = in features), as typed by hand before they were derived.
LLAMA_LINEARS_BEFORE = {
    "llama-3-8b": {"qkv": (4096 + 2 * 8 * 128, 4096), "o": (4096, 4096),
                   "gate_up": (2 * 14336, 4096), "down": (4096, 14336)},
    "llama-3-70b": {"qkv": (8192 + 2 * 8 * 128, 8192), "o": (8192, 8192),
                    "gate_up": (2 * 28672, 8192), "down": (8192, 28672)},
}
REPEAT_CASES_BEFORE = [  # in the order the repeats run
    "gemm-vendor-bf16-m1024-n1024-k1024",
    "gemm-vendor-bf16-m8192-n8192-k8192",
    "gemm-vendor-bf16-m1-n4096-k14336",
    "attention_prefill-vendor-bf16-b4-s4096-hq32-hkv8-d128-causal",
    "attention_decode-vendor-bf16-b16-ctx2048-hq32-hkv8-d128",
    "attention_decode-triton-bf16-b16-ctx2048-hq32-hkv8-d128",
    "copy-vendor-bytes67108864",
    "copy-vendor-bytes1073741824",
    "h2d-vendor-pinned-bytes67108864",
    "h2d-vendor-pinned-bytes1073741824",
    "gemm-triton-bf16-m8192-n8192-k8192",
]
QUICK_REPEAT_CASES_BEFORE = [
    "gemm-vendor-bf16-m1024-n1024-k1024",
    "attention_decode-vendor-bf16-b16-ctx2048-hq32-hkv8-d128",
    "attention_decode-triton-bf16-b16-ctx2048-hq32-hkv8-d128",
    "copy-vendor-bytes67108864",
    "h2d-vendor-pinned-bytes67108864",
]
HEADLINE_CASES_BEFORE = {
    "gemm-vendor-bf16-m8192-n8192-k8192": "gemm_vendor_bf16_8192_flops_per_s",
    "gemm-triton-bf16-m8192-n8192-k8192": "gemm_triton_bf16_8192_flops_per_s",
    "gemm-vendor-fp8-m8192-n8192-k8192": "gemm_vendor_fp8_8192_flops_per_s",
    "gemm-triton-fp8-m8192-n8192-k8192": "gemm_triton_fp8_8192_flops_per_s",
    "copy-vendor-bytes1073741824": "copy_vendor_1gib_bytes_per_s",
    "copy-triton-bytes1073741824": "copy_triton_1gib_bytes_per_s",
    "h2d-vendor-pinned-bytes1073741824": "h2d_pinned_1gib_bytes_per_s",
    "d2h-vendor-pinned-bytes1073741824": "d2h_pinned_1gib_bytes_per_s",
    "h2d-vendor-pageable-bytes1073741824": "h2d_pageable_1gib_bytes_per_s",
}


def _catalogue(quick: bool) -> list[tuple[str, list]]:
    """(section, groups) in run order, built on the CPU as if an fp8-capable GPU were attached."""
    torch = pytest.importorskip("torch")
    cfg = SweepConfig.quick_mode() if quick else SweepConfig.full()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "get_device_capability", lambda i=0: (9, 0))
        return [(name, build()) for name, build in kernel_sections(torch, Kernels(), cfg)]


@pytest.fixture(scope="module", params=[False, True], ids=["full", "quick"])
def catalogue(request):
    return request.param, _catalogue(request.param)


def _groups(sections):
    return [g for _, groups in sections for g in groups]


# ---------------------------------------------------------------------------------- Llama shapes

def test_llama_linears_are_derived_from_the_model_presets_unchanged():
    assert llama_linears() == LLAMA_LINEARS_BEFORE


def test_linear_shapes_of_a_plain_mlp_have_no_gate():
    from workloads import load_model

    opt = load_model("opt-13b")
    assert not opt.gated_mlp
    assert linear_shapes(opt)["gate_up"] == (opt.ffn_hidden, opt.hidden)


def test_gemm_shapes_are_those_measured_before():
    """Squares, then every Llama linear over the vendor M grid, deduplicated; Triton on fewer M."""
    expected: dict[tuple[int, int, int], bool] = {(s, s, s): True for s in GEMM_SQUARE}
    for model in LLAMA_LINEARS_BEFORE.values():
        for n, k in model.values():
            for m in GEMM_M_VENDOR:
                expected[(m, n, k)] = expected.get((m, n, k), False) or m in GEMM_M_TRITON
    sections = dict(_catalogue(quick=False))
    vendor = [(g.shape["m"], g.shape["n"], g.shape["k"]) for g in sections["gemm"]]
    triton = {(g.shape["m"], g.shape["n"], g.shape["k"]) for g in sections["gemm_triton"]}
    assert vendor == list(expected)
    assert triton == {mnk for mnk, with_triton in expected.items() if with_triton}
    fp8 = [(g.shape["m"], g.shape["n"], g.shape["k"]) for g in sections["gemm_fp8"]]
    assert fp8 == [(2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192), (16, 57344, 8192),
                   (4096, 57344, 8192), (128, 4096, 14336)]


def test_quick_gemm_shapes():
    sections = dict(_catalogue(quick=True))
    assert [g.label for g in sections["gemm"]] == ["m1024-n1024-k1024", "m1-n6144-k4096",
                                                   "m128-n6144-k4096"]
    assert [g.label for g in sections["gemm_fp8"]] == ["m1024-n1024-k1024"]


# ---------------------------------------------------------------------------------- catalogue

def test_sections_run_vendor_first_and_triton_gemm_and_prefill_last(catalogue):
    _, sections = catalogue
    assert tuple(name for name, _ in sections) == SECTIONS
    by_name = dict(sections)
    for name in ("gemm", "attention_prefill"):
        assert {v.impl for g in by_name[name] for v in g.variants} == {"vendor"}
    for name in ("gemm_triton", "attention_prefill_triton"):
        assert {v.impl for g in by_name[name] for v in g.variants} == {"triton"}
    assert SECTIONS[-2:] == ("gemm_triton", "attention_prefill_triton")


def test_case_ids_are_unique_and_kernels_known(catalogue):
    quick, sections = catalogue
    groups = _groups(sections)
    ids = [g.case_id(v.impl, graph) for g in groups for v in g.variants for graph in (False, True)]
    assert len(ids) == len(set(ids))
    assert {g.kernel for g in groups} == set(KERNELS)
    assert all(g.case_id(v.impl).startswith(f"{g.kernel}-{v.impl}-") for g in groups
               for v in g.variants)
    assert len(groups) == (20 if quick else 460)


def test_repeat_cases_are_those_of_before(catalogue):
    quick, sections = catalogue
    selected = [g.case_id(v.impl) for g in _groups(sections) for v in g.variants if v.repeat]
    assert selected == (QUICK_REPEAT_CASES_BEFORE if quick else REPEAT_CASES_BEFORE)


def test_headline_cases_are_those_of_before(catalogue):
    quick, sections = catalogue
    selected = headline_cases(_groups(sections))
    assert selected == ({} if quick else HEADLINE_CASES_BEFORE)


def test_headline_reads_the_rate_its_key_names():
    rows = [
        {"case_id": "gemm-vendor-bf16-m8192-n8192-k8192", "kernel": "gemm", "impl": "vendor",
         "graph": False, "achieved_flops_per_s": 7e14, "achieved_bytes_per_s": 1e11},
        {"case_id": "copy-vendor-bytes1073741824", "kernel": "copy", "impl": "vendor",
         "graph": False, "achieved_flops_per_s": None, "achieved_bytes_per_s": 3e12},
    ]
    out = headline(rows, cases=HEADLINE_CASES_BEFORE)
    assert out["gemm_vendor_bf16_8192_flops_per_s"] == 7e14
    assert out["copy_vendor_1gib_bytes_per_s"] == 3e12
    assert out["gemm_triton_bf16_8192_flops_per_s"] is None  # declared, not measured
    assert out["prefill_vendor_best_flops_per_s"] is None


def test_old_import_path_still_works():
    from validate import measure, run, runner

    assert measure.run_all is run.run_all  # validate.runner does not import the run: no import circle
    assert measure.KERNEL_COLUMNS is runner.KERNEL_COLUMNS
    assert measure.write_csv_atomic is runner.write_csv_atomic


# ---------------------------------------------------------------------------------- bench report

def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_kernels", REPO / "benchmarks" / "bench_kernels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_report_pairs_vendor_and_triton_rows_of_a_shape():
    bench = _bench_module()
    rows = [
        {"case_id": "gemm-vendor-bf16-m8192-n8192-k8192", "kernel": "gemm", "impl": "vendor",
         "achieved_flops_per_s": 8e14},
        {"case_id": "attention_decode-triton-bf16-b1-ctx128-hq32-hkv8-d128-paged",
         "kernel": "attention_decode", "impl": "triton", "achieved_bytes_per_s": 2e12},
        {"case_id": "gemm-triton-bf16-m8192-n8192-k8192", "kernel": "gemm", "impl": "triton",
         "achieved_flops_per_s": 6e14},
    ]
    lines = bench.report(rows).splitlines()
    assert len(lines) == 3
    assert lines[1].split() == ["gemm-bf16-m8192-n8192-k8192", "800.0", "600.0", "TFLOP/s", "75.0%"]
    assert lines[2].split() == ["attention_decode-bf16-b1-ctx128-hq32-hkv8-d128-paged", "nan",
                                "2000.0", "GB/s"]


def test_bench_sections_keep_the_old_names():
    bench = _bench_module()
    assert bench.sections_for(bench.DEFAULT_ONLY) | bench.sections_for("host") == set(SECTIONS)
    with pytest.raises(SystemExit, match="unknown"):
        bench.sections_for("gemm,nope")
