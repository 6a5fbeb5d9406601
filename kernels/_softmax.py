"""The flash-attention online-softmax update, shared by the prefill and decode kernels."""

import triton
import triton.language as tl


@triton.jit
def online_softmax_step(qk, v, acc, l_i, m_i, DOT_F32: tl.constexpr):
    """Fold one tile of scores into the running (acc, l_i, m_i) state.

    qk: [M, N] fp32 scores in log2 units (masked entries -inf); v: [N, D] values; acc: [M, D] fp32
    unnormalised output; l_i: [M] running sum of exp2; m_i: [M] running max. The caller guarantees each
    row's first tile has a visible key, so m_i is finite afterwards and masked tiles add exp2(-inf) = 0.
    """
    m_ij = tl.maximum(m_i, tl.max(qk, 1))
    p = tl.math.exp2(qk - m_ij[:, None])
    alpha = tl.math.exp2(m_i - m_ij)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    if DOT_F32:
        acc = tl.dot(p, v, acc)
    else:
        acc = tl.dot(p.to(v.dtype), v, acc)
    return acc, l_i, m_ij
