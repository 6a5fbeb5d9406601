"""hwperf's analytical model: pure functions over hwspecs and workloads (numpy/pandas/networkx only).

    import simulator, workloads
    p = simulator.predict("h100-sxm5-80gb", "llama-3-8b", workloads.Scenario(batch=16))
    p.ttft_s, p.tpot_s, p.max_concurrency, p.ops
"""

from simulator.api import (
    ContextSwitch,
    DoesNotFitError,
    KernelPrediction,
    Prediction,
    StepPrediction,
    context_switch,
    decode_step,
    kernel_op,
    long_context_bounds,
    predict,
    predict_kernel,
    prefill,
    sweep,
)
from simulator.roofline import OpTime, op_time

__all__ = ["ContextSwitch", "DoesNotFitError", "KernelPrediction", "OpTime", "Prediction", "StepPrediction",
           "context_switch", "decode_step", "kernel_op", "long_context_bounds", "op_time", "predict",
           "predict_kernel", "prefill", "sweep"]
