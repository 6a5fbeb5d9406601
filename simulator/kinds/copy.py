"""Device-to-device copy (``copy_``, or hwperf's Triton stream copy): reads and writes ``bytes`` once.

Time: 2·bytes at the copy fraction of HBM bandwidth plus the copy-kernel latency floor — the two
parameters of the ``memory`` group that the copy cases fit. ``kernels/kv_copy.py`` counts with
``hbm_bytes`` below.
"""

from __future__ import annotations

from simulator.kinds.base import Op, OpKind, ShapeField

NAME = "copy"


def hbm_bytes(n_bytes):
    """n_bytes read + n_bytes written."""
    return 2 * n_bytes


def copy_op(n_bytes) -> Op:
    return Op(name=NAME, kind=NAME, scope="model", n_repeats=1, flops=0.0, act_read_bytes=n_bytes,
              act_write_bytes=hbm_bytes(n_bytes) - n_bytes, compute_dtype="fp32")


def time(op: Op, hw, prm, xp, link_bytes_per_s, host_link_bytes_per_s):
    tm = op.hbm_bytes / (hw.memory_bandwidth_bytes_per_s * prm.memory.copy_efficiency_frac)
    return 0.0, tm, prm.memory.latency_s, 0.0


KIND = OpKind(name=NAME, help="device-to-device copy of bytes", stage="copy",
              build=lambda bytes: copy_op(float(bytes)), time=time, shape=(ShapeField("bytes", "int"),))
KINDS = (KIND,)
