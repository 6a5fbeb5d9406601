"""hwperf's analytical model: pure functions over hwspecs and workloads (numpy/pandas/networkx only).

    import simulator, workloads
    p = simulator.predict("h100-sxm5-80gb", "llama-3-8b", workloads.Scenario(batch=16))
    p.ttft_s, p.tpot_s, p.max_concurrency, p.ops
"""

from simulator.api import DoesNotFitError, decode_step, predict, prefill
from simulator.compare_configs import compare_configs, compare_grid
from simulator.kernel_api import kernel_op, predict_kernel
from simulator.kinds import KINDS
from simulator.long_context import ContextSwitch, context_switch, long_context_bounds
from simulator.results import KernelPrediction, Prediction, StepPrediction
from simulator.roofline import OpTime, op_time
from simulator.sweep import SweepTooLargeError, sweep, sweep_chunks

__all__ = ["KINDS", "ContextSwitch", "DoesNotFitError", "KernelPrediction", "OpTime", "Prediction", "StepPrediction",
           "context_switch", "decode_step", "kernel_op", "long_context_bounds", "op_time", "predict",
           "predict_kernel", "prefill", "sweep", "sweep_chunks", "SweepTooLargeError", "compare_configs",
           "compare_grid"]
