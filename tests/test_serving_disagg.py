"""Prefill/decode disaggregation: KV transfer priced from the bytes, ordering, and what it buys."""

import numpy as np
import pytest

import hwspecs
import workloads
from simulator import decode, serving
from simulator.api import resolve, setup
from simulator.serving.disagg import kv_transfer_s, serve_disaggregated

HW, MODEL = "a100-sxm4-80gb", "llama-3-8b"


@pytest.fixture(scope="module")
def run():
    req = serving.poisson(3.0, 120.0, 1024, 128, prompt_cv=0.4, max_tokens=4000, seed=1)
    return req, serve_disaggregated(HW, MODEL, req), serving.serve(HW, MODEL, req)


def test_kv_transfer_time_from_an_independent_byte_count():
    inst = serving.instance(HW, MODEL, tensor_parallel=2, max_context_tokens=2048)
    m, hw = workloads.load_model(MODEL), hwspecs.load(HW)
    kv_bytes = 2 * m.n_layers * (m.n_kv_heads // 2) * m.head_dim * 2 * 1000  # K and V, bf16, per GPU of TP2
    rate = hwspecs.load(hw.scaleup_link).bandwidth_bytes_per_s * inst.table.setups[0].prm.link.collective_efficiency_frac
    assert float(kv_transfer_s(inst, 1000)) == pytest.approx(kv_bytes / rate, rel=1e-9)


def test_decode_starts_after_prefill_and_transfer(run):
    req, r, _ = run
    df = r.requests
    assert df.finish_s.notna().all()
    hw, m, prm, _ = resolve(HW, MODEL, "auto")
    s = setup(hw, m, prm, "bf16", "bf16", "bf16", 1)
    P, T = req.prompt_tokens.astype(float), req.output_tokens.astype(float)
    alone = decode.decode_total(s, decode.decode_coeffs(s, 1, with_bound=False), P, T).time_s
    assert np.all(df.kv_ready_s > df.first_token_s)
    assert np.all(df.finish_s - df.kv_ready_s >= alone * (1 - 5e-3))


def test_disaggregation_removes_prefill_interference_from_tpot(run):
    _, r, colocated = run
    assert r.summary["p99_tpot_s"] < 0.8 * colocated.summary["p99_tpot_s"]
    assert r.summary["throughput_requests_per_s"] == pytest.approx(colocated.summary["throughput_requests_per_s"],
                                                                    rel=0.02)


def test_bad_pool_size():
    with pytest.raises(ValueError, match="n_decode"):
        serve_disaggregated(HW, MODEL, serving.poisson(1.0, 5.0), n_decode=0)
