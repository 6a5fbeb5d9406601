"""The op graph of a forward pass: which ops one decoder layer and the model run, in order.

Every FLOP and byte formula lives in its op kind's module (``simulator.kinds``): GEMM, attention,
elementwise, copies, host transfers, collectives. Counting conventions: 2 FLOPs per multiply-add; causal
attention counts half the score matrix; bytes split into weights / activations read / activations
written / KV read / KV written, each operand crossing HBM once (the calibrated efficiencies absorb the
re-reads real kernels do). KV bytes come only from ``ModelSpec.kv_bytes_per_token`` (per layer: divide
by n_layers), so GQA is handled identically in KV writes, attention, memory and context switching.

Token counts may be Python numbers or numpy arrays (one entry per scenario point): every formula is
plain arithmetic so a sweep evaluates all points at once.

Graph: one decoder layer is a networkx DAG of ops (norm → qkv → rope → kv_write → attention → o_proj →
residual → norm → mlp …), repeated ``n_layers`` times (``n_repeats``), plus model-level ops (embedding,
final norm, LM head). Tensor parallelism divides heads / FFN / vocab by ``tp`` and adds two all-reduces
per layer. Blocks (GQA/MLA attention, sliding windows, dense/MoE MLPs) are built in ``simulator.blocks``;
a model of several layer groups contributes one block pair per group.
"""

from __future__ import annotations


from simulator.blocks import Pass, attention_block, expected_experts_touched, mlp_block
from simulator.kinds.attention_prefill import attention_op, flops as attention_flops
from simulator.kinds.base import Op
from simulator.kinds.collective import allreduce_op
from simulator.kinds.elementwise import elementwise_op
from simulator.kinds.gemm import gemm_op
from simulator.quant import kept_dtype, stream_dtype
from workloads.model import ModelSpec

__all__ = ["Op", "attention_flops", "attention_op", "allreduce_op", "elementwise_op", "expected_experts_touched",
           "forward_op_list", "forward_ops", "gemm_op"]


def forward_op_list(model: ModelSpec, batch, q_tokens, kv_tokens, *, weight_dtype="bf16", act_dtype="bf16",
                    kv_dtype="bf16", tp: int = 1, lm_head_tokens=None, expert_imbalance=1.0, parallel=None,
                    links=None) -> list[Op]:
    """One forward pass over ``batch`` sequences, each adding ``q_tokens`` tokens to a cache that then holds
    ``kv_tokens`` tokens, on one GPU of the split. Prefill: q = kv = S. Decode: q = 1, kv = context. Returns
    ops in execution order: embedding, each layer group's attention and MLP blocks (``n_repeats`` = its
    layers; op names prefixed ``<group>.`` when there are several groups), final norm, LM head.

    ``lm_head_tokens``: tokens whose logits are computed (default one per sequence: serving engines
    compute logits only for the last prompt token in prefill). ``expert_imbalance``: MoE routing skew
    (``expected_experts_touched``). ``parallel``: a ``workloads.parallel.Parallel`` (its tensor_parallel
    overrides ``tp``; with data-parallel attention this GPU's attention sees batch / (ep/tp) sequences
    while the routed experts see the whole stage's tokens); pipeline stages are timed by
    ``simulator.parallel`` from this whole-model pass. ``links``: {"tp": ..., "ep": ...} group links.
    """
    m = model
    kw = {"weight_dtype": weight_dtype, "act_dtype": act_dtype}
    dp, ep, split, dispatch = 1, 1, 0, False
    if parallel is not None:
        tp, dp, ep, dispatch = parallel.tensor_parallel, parallel.attention_dp, parallel.expert_parallel, \
            parallel.data_parallel_attention
        split = 1 if dispatch else tp // ep
    links = links or {}
    local_batch = batch / dp if dp > 1 else batch
    n_tok = local_batch * q_tokens
    head_tokens = local_batch if lm_head_tokens is None else lm_head_tokens / dp
    act = stream_dtype(act_dtype)
    embed = elementwise_op("embedding", 0.0, n_tok * m.hidden, act_dtype=act, flops_per_element=0.0,
                           weight_elements=n_tok * m.hidden * (2 if m.learned_positions else 1),
                           weight_dtype=kept_dtype(weight_dtype), scope="model")
    ops = [embed]
    groups = m.groups
    for g in groups:
        p = Pass(m, g, n_tok, tp, kw, kv_dtype, f"{g.name}." if len(groups) > 1 else "", expert_imbalance, ep,
                 split, batch * q_tokens, dispatch and g.mlp.is_moe, links.get("tp"), links.get("ep"))
        ops += attention_block(p, local_batch, q_tokens, kv_tokens) + mlp_block(p)
    final = elementwise_op("final_norm", head_tokens * m.hidden, head_tokens * m.hidden, act_dtype=act,
                           flops_per_element=4.0, weight_elements=(2 if m.norm == "layernorm" else 1) * m.hidden,
                           weight_dtype=weight_dtype, scope="model")
    # the embedding and LM head stay 16-bit under weight quantization (simulator.quant); under W8A8 INT8
    # the head's input stays bf16 too (``act``)
    head = gemm_op("lm_head", head_tokens, m.vocab_size // tp, m.hidden, scope="model",
                   weight_dtype=kept_dtype(weight_dtype), act_dtype=act)
    return ops + [final, head]


def forward_ops(model: ModelSpec, batch, q_tokens, kv_tokens, **kw) -> "nx.DiGraph":
    """The forward pass as a DAG (node attribute ``op``): the layer chain plus residual edges.
    Same arguments as ``forward_op_list`` (whose order is a topological order of this graph)."""
    import networkx as nx  # on first use: timing a pass walks the op list, not the graph

    chain = forward_op_list(model, batch, q_tokens, kv_tokens, **kw)
    g = nx.DiGraph()
    for op in chain:
        g.add_node(op.name, op=op)
    for a, b in zip(chain, chain[1:]):
        g.add_edge(a.name, b.name)
    # Residual connections are real data dependencies too (the DAG is not just a chain).
    stream = "embedding"
    for name in (op.name for op in chain):
        if name.endswith("_residual"):
            g.add_edge(stream, name)
            stream = name
    return g
