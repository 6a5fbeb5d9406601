"""The measurement catalogue: every hwperf Triton kernel next to its vendor reference, by shape.

One module per kernel kind, each exposing its groups builder(s) ``(torch, kern, cfg) -> list[Group]``
(:class:`validate.runner.Group`); :func:`kernel_sections` below puts them in run order.

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

from validate.cases import attention, copies, gemm
from validate.cases.attention import decode_groups, prefill_groups
from validate.cases.copies import copy_groups, host_groups, kv_groups
from validate.cases.gemm import gemm_groups, llama_linears
from validate.runner import SECTIONS, Kernels, Section, SweepConfig, interleave, only_impl

__all__ = ["copy_groups", "decode_groups", "gemm_groups", "host_groups", "kernel_sections", "kv_groups",
           "llama_linears", "prefill_groups"]


def kernel_sections(torch, kern: Kernels, cfg: SweepConfig) -> list[Section]:
    """The kernel sections in the order they run, as (name, build groups) pairs (:data:`SECTIONS`).

    Vendor references of GEMM and prefill first, their Triton rows last: Triton autotunes per
    shape (seconds each), so if a section's time budget runs out it is Triton coverage that
    thins, spread evenly over the grid by the interleaved order, never the vendor baseline.
    Groups are built when their section starts.
    """
    fp8_ok = torch.cuda.get_device_capability(0) >= (8, 9)
    sections = [
        ("gemm", lambda: only_impl(gemm.gemm_groups(torch, kern, cfg), "vendor")),
        ("attention_prefill", lambda: only_impl(attention.prefill_groups(torch, kern, cfg), "vendor")),
        ("attention_decode", lambda: attention.decode_groups(torch, kern, cfg)),
        ("copy", lambda: copies.copy_groups(torch, kern, cfg)),
        ("host", lambda: copies.host_groups(torch, kern, cfg)),
        ("kv", lambda: copies.kv_groups(torch, kern, cfg)),
        ("gemm_fp8", lambda: gemm.gemm_groups(torch, kern, cfg, fp8=True) if fp8_ok else []),
        ("gemm_triton", lambda: interleave(only_impl(gemm.gemm_groups(torch, kern, cfg), "triton"),
                                           "m", gemm.GEMM_M_TRITON)),
        ("attention_prefill_triton", lambda: interleave(
            only_impl(attention.prefill_groups(torch, kern, cfg), "triton"), "seq",
            attention.PREFILL_SEQS)),
    ]
    assert tuple(name for name, _ in sections) == SECTIONS
    return sections

