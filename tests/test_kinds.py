"""The op-kind registry and the effect schema: every kind is usable from its declaration alone."""

import math

import pytest

import hwspecs
import simulator
from hwspecs.effects import ALL_GROUPS, fit_bounds, stage_fields, stage_starts
from simulator.kinds import KINDS, shape_columns
from simulator.kinds.collective import ALL_GATHER, ALL_REDUCE, ALL_TO_ALL, REDUCE_SCATTER

EXAMPLE = {"int": 64, "bool": True, "dtype": "bf16"}
EXAMPLE_BY_NAME = {"n_q_heads": 32, "n_kv_heads": 8, "head_dim": 128, "n_ranks": 8, "bytes": 2**26, "bits": 4, "k": 128,
                   "group_size": 32}


def example_shape(kind):
    return {f.name: EXAMPLE_BY_NAME.get(f.name, EXAMPLE[f.type]) for f in kind.shape}


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_predicts_from_its_declaration(name):
    kind = KINDS[name]
    kp = simulator.predict_kernel("h100-sxm5-80gb", name, **example_shape(kind))
    assert kp.time_s > 0 and math.isfinite(kp.time_s)
    assert kp.bound in ("compute", "memory", "latency", "link")


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_rejects_bad_shapes_by_name(name):
    kind = KINDS[name]
    shape = example_shape(kind)
    with pytest.raises(ValueError, match="unexpected: colour"):
        kind.op(**shape, colour=1)
    first = kind.shape[0].name
    with pytest.raises(ValueError, match=f"needs {first}"):
        kind.op(**{k: v for k, v in shape.items() if k != first})
    for bad in (0, -3, float("nan"), 2.5, "7", True):
        with pytest.raises(ValueError, match=first):
            kind.op(**{**shape, first: bad})


@pytest.mark.parametrize("name", list(KINDS))
def test_measurement_rows_read_back_as_the_shape(name):
    # A CSV row holds floats, strings and NaN for the other kinds' columns.
    kind = KINDS[name]
    shape = example_shape(kind)
    row = {c: float("nan") for c in shape_columns()}
    row.update({k: (str(v) if isinstance(v, bool) else float(v) if isinstance(v, int) else v) for k, v in shape.items()})
    assert kind.shape_from_row(row) == shape


def _ring_bytes_sent(kind: str, n_bytes: float, t: int) -> float:
    """Bytes rank 0 sends, by walking the algorithm step by step (not by its closed form)."""
    chunk = n_bytes / t
    if kind == ALL_TO_ALL:  # one chunk to every peer
        return sum(chunk for peer in range(t) if peer != 0)
    steps = {ALL_GATHER: t - 1, REDUCE_SCATTER: t - 1, ALL_REDUCE: 2 * (t - 1)}[kind]
    return sum(chunk for _ in range(steps))  # a ring forwards one chunk per step


@pytest.mark.parametrize("kind", [ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALL_TO_ALL])
@pytest.mark.parametrize("t", [2, 4, 8])
def test_collective_link_bytes_match_the_ring_walk(kind, t):
    op = simulator.kernel_op(kind, bytes=2**24, n_ranks=t)
    assert op.shape["link_bytes"] == pytest.approx(_ring_bytes_sent(kind, 2**24, t))


def test_large_collective_runs_at_the_link_rate():
    # nccl-tests "bus bandwidth" of a large all-gather approaches the per-direction NVLink rate.
    hw = hwspecs.load("h100-sxm5-80gb")
    eff = hwspecs.calibration_for(hw).params("vendor").link.collective_efficiency_frac
    kp = simulator.predict_kernel(hw, ALL_GATHER, bytes=2**30, n_ranks=8)
    assert kp.bound == "link"
    assert kp.time_s == pytest.approx(7 / 8 * 2**30 / (hw.scaleup_bandwidth_bytes_per_s * eff), rel=0.01)


def test_collectives_need_a_scaleup_link():
    with pytest.raises(ValueError, match="scale-up link"):
        simulator.predict_kernel("rtx-4090", ALL_TO_ALL, bytes=2**20, n_ranks=2)
    assert simulator.predict_kernel("rtx-4090", ALL_TO_ALL, bytes=2**20, n_ranks=1).bound != "link"


def test_fit_schema_is_consistent():
    stages = {k.stage for k in KINDS.values()} | {"layers", "power", "eager_call"}
    for g in ALL_GROUPS:
        for name, info in g.model_fields.items():
            extra = info.json_schema_extra or {}
            assert extra.get("stage", g.NAME) in stages | {g.NAME}, (g.NAME, name)
            if "fit" in extra:
                lo, hi = fit_bounds(f"{g.NAME}.{name}")
                assert lo <= info.default <= hi, (g.NAME, name)
    assert len(stage_starts("attention_decode")) == 3 * 3 * 2
    assert [s["gemm.tile"] for s in stage_starts("gemm")] == list(ALL_GROUPS[0].model_fields["tile"].json_schema_extra["starts"])
    assert "memory.elementwise_efficiency_frac" in stage_fields("layers")
    assert "memory.copy_efficiency_frac" in stage_fields("copy")
    assert stage_fields("collective") == []  # no multi-GPU measurements yet: nothing fitted there
