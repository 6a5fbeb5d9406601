"""Serving over time: request streams, continuous batching, and the POLCA-style row power planner.

    from simulator import serving
    r = serving.serve("a100-sxm4-80gb", "llama-2-70b", serving.poisson(2.0, 600), tensor_parallel=8)
"""

from simulator.serving.api import Instance, ServingResult, SLOError, instance, serve, simulate
from simulator.serving.disagg import serve_disaggregated
from simulator.serving.arrivals import Requests, TraceError, diurnal, diurnal_rate, from_arrays, gamma, poisson
from simulator.serving.scheduler import SchedulerConfig, SwapCost
from simulator.serving.steptable import StepTable

__all__ = ["Instance", "Requests", "SLOError", "SchedulerConfig", "ServingResult", "StepTable", "SwapCost",
           "TraceError", "diurnal", "diurnal_rate", "from_arrays", "gamma", "instance", "poisson", "serve", "serve_disaggregated",
           "simulate"]
