"""validate/layers.py on the CPU: the Llama dims it times and the cases a sweep runs (GPU work faked).

The literals below are the independent record of what the committed layers.csv files measured
(the dims validate/layers.py typed by hand before they were read from the workloads presets).
"""

from __future__ import annotations

import types

import pytest

from validate import layers
from validate.layers import LLAMA_3_8B, LLAMA_3_70B, LayerDims, kv_cache_bytes, layer_dims

LLAMA_3_8B_BEFORE = LayerDims("llama-3-8b", 4096, 32, 8, 128, 14336)
LLAMA_3_70B_BEFORE = LayerDims("llama-3-70b", 8192, 64, 8, 128, 28672)


def test_layer_dims_are_the_model_presets_unchanged():
    assert LLAMA_3_8B == LLAMA_3_8B_BEFORE and LLAMA_3_70B == LLAMA_3_70B_BEFORE
    assert layer_dims("llama-3-8b") == LLAMA_3_8B_BEFORE
    assert (LLAMA_3_8B.rope_theta, LLAMA_3_8B.norm_eps) == (500000.0, 1e-5)  # Llama 3's, not in presets


def test_no_decode_case_is_over_the_kv_limit():
    """Every decode case of both models fits (the largest, b128 ctx16384, is 8.6 GB < 9 GB)."""
    worst = kv_cache_bytes(LLAMA_3_70B, max(layers.DECODE_BATCHES), max(layers.DECODE_CONTEXTS))
    assert worst == 4096 * 128 * 16385 < layers.MAX_KV_BYTES


class _FakeLayer:
    def __init__(self, dims):
        self.dims = dims

    def rope_tables(self, positions):
        return None, None

    def prefill(self, x, cos, sin):
        return x

    def decode_step(self, batch, context):
        return (lambda: None), None, None


def _sweep(monkeypatch, quick=True, budget_s=60.0, graph_error=None):
    """run_layers with the layer, the timers and tensor creation faked; returns (rows, failures, calls)."""
    torch = pytest.importorskip("torch")
    calls = []

    def timing(kind):
        def bench(fns, **kwargs):
            calls.append((kind, {k: v for k, v in kwargs.items() if k != "nvml"}))
            if kind == "graph" and graph_error:
                raise graph_error
            return types.SimpleNamespace(median_s=1e-3, p10_s=9e-4, p90_s=2e-3, n_reps=5,
                                         sm_clock_hz=1.98e9, power_w=300.0)
        return bench

    monkeypatch.setattr(layers, "LlamaLayer", _FakeLayer)
    monkeypatch.setattr(layers, "bench", timing("eager"))
    monkeypatch.setattr(layers, "bench_graph", timing("graph"))
    monkeypatch.setattr(torch, "randn", lambda *a, **k: None)  # no CUDA tensors on the CPU
    monkeypatch.setattr(torch, "arange", lambda *a, **k: None)
    env = types.SimpleNamespace(gpu_name="NVIDIA H200", hardware_id="h200-sxm-141gb")
    rows, failures = layers.run_layers(env, None, quick=quick, budget_s=budget_s)
    return rows, failures, calls


def test_quick_sweep_times_prefill_eager_decode_and_its_graph_twin(monkeypatch):
    rows, failures, calls = _sweep(monkeypatch)
    assert [r["case_id"] for r in rows] == ["layer-llama-3-8b-prefill-b1-s512",
                                            "layer-llama-3-8b-decode-b8-ctx1024",
                                            "layer-llama-3-8b-decode-b8-ctx1024-graph"]
    assert [(r["mode"], r["graph"], r["seq"], r["context"]) for r in rows] == [
        ("prefill", False, 512, None), ("decode", False, None, 1024), ("decode", True, None, 1024)]
    assert set(rows[0]) == set(layers.LAYER_COLUMNS) and not failures
    assert calls == [("eager", {"budget_s": 0.01, "min_batches": 3}),
                     ("eager", {"budget_s": 0.04, "warmup_s": 0.05}),
                     ("graph", {"budget_s": 0.01, "min_calls_per_graph": 1})]


def test_full_sweep_cases(monkeypatch):
    rows, failures, _ = _sweep(monkeypatch, quick=False)
    ids = [r["case_id"] for r in rows]
    per_model = len(layers.PREFILL_CASES) + 2 * len(layers.DECODE_BATCHES) * len(layers.DECODE_CONTEXTS)
    assert len(ids) == len(set(ids)) == 2 * per_model and not failures
    assert ids[0] == "layer-llama-3-8b-prefill-b1-s256" and ids[-1] == "layer-llama-3-70b-decode-b128-ctx16384-graph"


def test_spent_budget_skips_and_a_graph_failure_keeps_the_eager_row(monkeypatch):
    rows, failures, _ = _sweep(monkeypatch, budget_s=-1.0)
    assert not rows and [f["stage"] for f in failures] == ["skipped", "skipped"]
    assert "layers time budget" in failures[0]["error"]
    rows, failures, _ = _sweep(monkeypatch, graph_error=RuntimeError("capture\n  failed"))
    assert [r["graph"] for r in rows] == [False, False]
    assert failures == [{"case_id": "layer-llama-3-8b-decode-b8-ctx1024-graph", "kernel": "layer",
                         "impl": "vendor", "stage": "graph", "error": "RuntimeError: capture failed"}]
