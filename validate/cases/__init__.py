"""The measurement catalogue: every hwperf Triton kernel next to its vendor reference, by shape.

One module per kernel kind, each exposing its groups builder(s) ``(torch, kern, cfg) -> list[Group]``
(:class:`validate.runner.Group`); :func:`validate.runner.kernel_sections` puts them in run order.

- :mod:`validate.cases.gemm`: :func:`~validate.cases.gemm.gemm_groups` (bf16 and fp8);
- :mod:`validate.cases.attention`: :func:`~validate.cases.attention.prefill_groups`,
  :func:`~validate.cases.attention.decode_groups`;
- :mod:`validate.cases.copies`: :func:`~validate.cases.copies.copy_groups`,
  :func:`~validate.cases.copies.host_groups`, :func:`~validate.cases.copies.kv_groups`.

Kernels and shapes (shape columns are named like the keyword arguments of
``simulator.predict_kernel(hardware, kernel, impl=..., **shape)``):

=================  ==========================================================  ==================
kernel             vendor reference                                            shape columns
=================  ==========================================================  ==================
gemm               ``torch.matmul(a, w.t())`` (cuBLAS); fp8: ``torch._scaled_mm``  m, n, k, dtype
attention_prefill  ``F.scaled_dot_product_attention`` (GQA via enable_gqa)     batch, seq, n_q_heads,
                                                                                n_kv_heads, head_dim,
                                                                                causal, dtype
attention_decode   SDPA with one query token over a contiguous cache           batch, context,
                                                                                n_q_heads, n_kv_heads,
                                                                                head_dim, dtype (+paged)
copy               ``dst.copy_(src)`` device→device                            bytes
h2d, d2h           ``copy_`` host↔device, pinned and pageable host memory      bytes, pinned
kv_gather          ``torch.index_select`` of KV blocks                         bytes (payload)
kv_scatter         ``Tensor.index_copy_`` of KV blocks                         bytes (payload)
=================  ==========================================================  ==================

Counting: ``flops`` and ``hbm_bytes`` come from the kernels' own count functions
(``kernels.<name>.flops`` / ``hbm_bytes``), the same for the vendor and the Triton row of a shape;
they are left empty if that module cannot be imported. Byte movers count here, once:
copy and KV gather/scatter move ``2 × bytes`` through HBM (read + write), h2d/d2h ``bytes`` over the
host link. ``achieved_flops_per_s = flops / median_s``, ``achieved_bytes_per_s = hbm_bytes /
median_s``. Weights are stored like ``nn.Linear`` ([n, k]) and multiplied as ``w.t()``.

Which cases are timed twice (``Variant.repeat``) and which feed the headline numbers
(``Group.headline``) is declared where each case is built, by a predicate on its shape.
"""

from validate.cases.attention import decode_groups, prefill_groups
from validate.cases.copies import copy_groups, host_groups, kv_groups
from validate.cases.gemm import gemm_groups, llama_linears

__all__ = ["copy_groups", "decode_groups", "gemm_groups", "host_groups", "kv_groups", "llama_linears",
           "prefill_groups"]
