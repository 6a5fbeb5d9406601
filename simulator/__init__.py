"""hwperf's analytical model: pure functions over hwspecs and workloads (numpy/pandas/networkx only).

    import simulator, workloads
    p = simulator.predict("h100-sxm5-80gb", "llama-3-8b", workloads.Scenario(batch=16))
    p.ttft_s, p.tpot_s, p.max_concurrency, p.ops
"""

from simulator.api import DoesNotFitError, decode_step, predict, prefill
from simulator.compare_configs import compare_configs, compare_grid
from simulator.results import KernelPrediction, Prediction, StepPrediction
from simulator.sweep import SweepTooLargeError, sweep, sweep_chunks

# The rest loads on first use (PEP 562). A function named like its module (sweep, compare_configs) is
# imported above instead: importing the submodule would rebind the package attribute to the module.
_LAZY = {"kernel_op": "kernel_api",
         "predict_kernel": "kernel_api", "KINDS": "kinds", "ContextSwitch": "long_context",
         "context_switch": "long_context", "long_context_bounds": "long_context", "OpTime": "roofline",
         "op_time": "roofline", "Swap": "switching", "swap": "switching", "time_sharing": "switching",
         "offload_throughput": "offload"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"simulator.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


__all__ = ["KINDS", "ContextSwitch", "DoesNotFitError", "KernelPrediction", "OpTime", "Prediction", "StepPrediction",
           "context_switch", "decode_step", "kernel_op", "long_context_bounds", "op_time", "predict",
           "predict_kernel", "prefill", "sweep", "sweep_chunks", "SweepTooLargeError", "compare_configs",
           "compare_grid", "Swap", "offload_throughput", "swap", "time_sharing"]
