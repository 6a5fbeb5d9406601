"""How far to trust a prediction: where its effect parameters came from, and the error measured for
predictions made that way.

Sources: "fitted" (the device's own calibration profile), "transferred" (the mean profile of calibrated
devices of its architecture family, hwspecs/transfer.py), "datasheet-only" (datasheet peaks with the
public-measurement defaults). The error band is the held-out mean absolute percentage error of whole
decoder-layer times measured with ``hwperf compare`` (validate/measurements/<id>/compare_summary.csv;
tests/test_trust.py checks these numbers against those files): prefill layers for TTFT, CUDA-graph or
eager decode layers for TPOT. Only the H100 SXM and H200 were measured, so for every other device the
band is the one measured for the same source on those devices — a guide, not a measurement of it.
"""

from __future__ import annotations

from dataclasses import dataclass

# (device, source) → (prefill layer MAPE, CUDA-graph decode layer MAPE, eager decode layer MAPE, cases)
MEASURED_LAYER_MAPE = {
    ("h100-sxm5-80gb", "fitted"): (0.0333, 0.0185, 0.0254, 12),
    ("h100-sxm5-80gb", "datasheet-only"): (0.1736, 0.0519, 0.1449, 12),
    ("h200-sxm-141gb", "fitted"): (0.0542, 0.0286, 0.2442, 12),
    ("h200-sxm-141gb", "datasheet-only"): (0.2026, 0.0653, 0.3878, 12),
    ("h200-sxm-141gb", "transferred"): (0.0682, 0.0252, 0.2247, 24),  # the H100 profile applied to the H200
}
# Where a device has no measurement of its own: the band of the same source measured elsewhere.
STAND_IN = {"fitted": "h100-sxm5-80gb", "datasheet-only": "h100-sxm5-80gb", "transferred": "h200-sxm-141gb"}


@dataclass(frozen=True)
class Trust:
    """source: fitted | transferred | datasheet-only | custom; from_ids: the calibrated devices whose
    profile was used; ttft/tpot_error_frac: measured MAPE for that source (None: never measured);
    basis: which measurement the band comes from."""

    source: str
    from_ids: tuple[str, ...]
    ttft_error_frac: float | None
    tpot_error_frac: float | None
    basis: str

    def label(self) -> str:
        """One line for people: source and band."""
        src = {"fitted": f"fitted on {', '.join(self.from_ids)}",
               "transferred": f"transferred from {', '.join(self.from_ids)}"}.get(self.source, self.source)
        if self.ttft_error_frac is None:
            return f"{src}; error never measured"
        return (f"{src}; mean error {self.ttft_error_frac:.1%} TTFT, {self.tpot_error_frac:.1%} TPOT "
                f"({self.basis})")


MEASURED_DTYPES = ("bf16", "fp16")  # the layers compare_summary.csv scores ran bf16 weights, activations and KV


def unmeasured_settings(sc) -> list[str]:
    """The settings of scenario ``sc`` (a workloads.Scenario) that no whole-layer measurement covers: the
    measured layers ran 16-bit weights, activations and KV, no KV method, on one GPU."""
    out = [f"{v} {name}" for name, v in (("weights", sc.weight_dtype), ("activations", sc.activation_dtype),
                                         ("KV", sc.kv_dtype)) if v not in MEASURED_DTYPES]
    out += [f"KV method {sc.kv_method}"] if sc.kv_method else []
    return out + [f"{name} {v}" for name, v in (("tensor_parallel", sc.tensor_parallel),
                                                ("pipeline_parallel", sc.pipeline_parallel),
                                                ("expert_parallel", sc.expert_parallel)) if v > 1]


def trust_for(hw_id: str, source: str, from_ids=(), cuda_graph: bool = True, unmeasured=()) -> Trust:
    """The Trust of a prediction for device ``hw_id`` whose parameters came from ``source``; ``unmeasured``:
    settings of the prediction that no layer measurement covered (``unmeasured_settings``), named in the
    basis."""
    if source == "custom":
        return Trust(source, tuple(from_ids), None, None, "a calibration file given by path")
    own = (hw_id, source) in MEASURED_LAYER_MAPE
    where = hw_id if own else STAND_IN[source]
    prefill, graph, eager, n = MEASURED_LAYER_MAPE[(where, source)]
    basis = (f"held-out decoder layers, {n} cases on {where}" if own else
             f"measured for {source} predictions on {where}; {hw_id} itself unmeasured")
    if unmeasured:
        basis += f"; measured on 16-bit one-GPU layers: {', '.join(unmeasured)} not measured as whole layers"
    return Trust(source, tuple(from_ids), prefill, graph if cuda_graph else eager, basis)


def resolve_trust(hw, calibration, cuda_graph: bool = True, unmeasured=()) -> Trust:
    """The Trust of a prediction for Hardware ``hw`` under the API's ``calibration`` argument (the same
    choice as hwspecs.calibration_for: own profile, else family transfer, else defaults)."""
    from hwspecs.loader import load_calibration
    from hwspecs.transfer import family_calibrations

    if calibration is None:
        return trust_for(hw.id, "datasheet-only", (), cuda_graph, unmeasured)
    if calibration not in ("auto", "transfer"):
        return trust_for(hw.id, "custom")
    own = load_calibration(hw.id) if calibration == "auto" else None
    if own is not None:
        return trust_for(hw.id, "fitted", (hw.id,), cuda_graph, unmeasured)
    family = [c.hardware_id for c in family_calibrations(hw.architecture, exclude=hw.id)]
    if family:
        return trust_for(hw.id, "transferred", tuple(family), cuda_graph, unmeasured)
    return trust_for(hw.id, "datasheet-only", (), cuda_graph, unmeasured)
