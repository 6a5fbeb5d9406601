"""Stored bytes of (weight-only) quantized models: group scales, and the layers that stay in 16 bits.

Rules, as the common serving formats store them:
- int4 weights (GPTQ, arXiv 2210.17323; AWQ, arXiv 2306.00978; vLLM's GPTQ/AWQ/Marlin kernels) carry one
  fp16 scale per group of 128 input elements of each output column: 0.5 + 2/128 bytes per weight. Symmetric
  quantization is assumed (asymmetric GPTQ adds a 4-bit zero point per group, +0.4%).
- int8 and fp8 weights carry one scale per output channel or per tensor: < 0.1% of the weights, not counted.
- W8A8 INT8 (activation_dtype "int8" with int8 weights; SmoothQuant, arXiv 2211.10438, and vLLM's int8
  W8A8 kernels): the linear layers' GEMMs take int8 activations (quantized per token, fused into the
  preceding norm or activation) and run at the device's int8 tensor rate, writing bf16; attention, norms,
  residuals, the KV cache's activations and collectives stay 16-bit (``stream_dtype``).
- The token embedding and the LM head stay in 16 bits (bf16) when the linear layers are quantized below
  16 bits: GPTQ/AWQ checkpoints and vLLM's quantized linear methods leave ``embed_tokens`` and ``lm_head``
  unquantized. Norm weights (< 0.01% of a model) are counted at the weight dtype.
"""

from __future__ import annotations

from hwspecs.schema import DTYPE_BYTES

UNQUANTIZED_DTYPE = "bf16"
GROUP_SIZE = {"int4": 128}
SCALE_BYTES = 2.0  # fp16 scale


def stream_dtype(act_dtype: str) -> str:
    """The dtype of every activation but a GEMM's input: int8 activations exist only as GEMM operands (W8A8
    INT8), everything else stays bf16; other activation dtypes are used throughout."""
    return UNQUANTIZED_DTYPE if act_dtype == "int8" else act_dtype


def kept_dtype(weight_dtype: str) -> str:
    """The dtype of the embedding and LM head: the weight dtype unless that is below 16 bits."""
    return weight_dtype if DTYPE_BYTES[weight_dtype] >= 2.0 else UNQUANTIZED_DTYPE


def bytes_per_weight(weight_dtype: str) -> float:
    """Bytes per quantized linear-layer weight, group scales included."""
    group = GROUP_SIZE.get(weight_dtype)
    return DTYPE_BYTES[weight_dtype] + (SCALE_BYTES / group if group else 0.0)


def weight_storage_bytes(model, weight_dtype: str) -> float:
    """All weights of ``model`` as stored in ``weight_dtype`` (whole model, not per GPU)."""
    edge = model.embedding_params + model.lm_head_params
    return ((model.total_params - edge) * bytes_per_weight(weight_dtype)
            + edge * DTYPE_BYTES[kept_dtype(weight_dtype)])
