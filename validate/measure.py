"""Former home of the kernel sweep; kept so that ``from validate.measure import run_all`` works.

The cases are :mod:`validate.cases` (one module per kernel kind), the runner :mod:`validate.runner`
(sections, budgets, repeats, timing, writers) and the whole run :mod:`validate.run`
(:func:`run_all`). New code imports from those.
"""

from validate.cases import (copy_groups, decode_groups, gemm_groups, host_groups, kv_groups,
                            prefill_groups)
from validate.run import RunResult, headline, run_all
from validate.runner import (CHECK_REL_TOL, DEFAULT_OUT_DIR, FAILURE_COLUMNS, GRAPH_BELOW_S,
                             KERNEL_COLUMNS, KERNELS, MAX_SET_BYTES, SECTIONS, Group, Runner,
                             SweepConfig, Variant, interleave, measure_repeats, only_impl,
                             write_csv_atomic, write_json_atomic)

__all__ = [
    "CHECK_REL_TOL", "DEFAULT_OUT_DIR", "FAILURE_COLUMNS", "GRAPH_BELOW_S", "KERNELS", "KERNEL_COLUMNS",
    "MAX_SET_BYTES", "SECTIONS", "Group", "RunResult", "Runner", "SweepConfig", "Variant", "copy_groups",
    "decode_groups", "gemm_groups", "headline", "host_groups", "interleave", "kv_groups",
    "measure_repeats", "only_impl", "prefill_groups", "run_all", "write_csv_atomic", "write_json_atomic",
]
