"""README worked example: DeepSeek-V3 (fp8 weights, bf16 KV) on 8×H200 with expert parallel 8 + data-parallel
attention vs 16×H100 (two DGX H100 over InfiniBand) with tensor parallel 8 × pipeline parallel 2.
Requests of 7,168 prompt + 1,024 output tokens (8K context), chunked prefill of 8,192 tokens for memory.
Run: PYTHONPATH=. python benchmarks/deepseek_v3_split.py"""

import simulator
import workloads

BASE = dict(prompt_tokens=7168, output_tokens=1024, weight_dtype="fp8", prefill_chunk_tokens=8192)
SPLITS = (("8×H200 EP8 + DP attention", "hgx-h200", dict(expert_parallel=8, data_parallel_attention=True)),
          ("16×H100 TP8 × PP2", "dgx-h100-2node", dict(tensor_parallel=8, pipeline_parallel=2)))


def main():
    print("| split | batch | memory/GPU | max concurrency (8K) | TTFT | TPOT | output tokens/s per GPU |")
    print("|---|---|---|---|---|---|---|")
    for label, hw, kw in SPLITS:
        conc = simulator.predict(hw, "deepseek-v3", workloads.Scenario(batch=1, **BASE, **kw)).max_concurrency
        for batch in (1, 64, conc):
            sc = workloads.Scenario(batch=batch, **BASE, **kw)
            p = simulator.predict(hw, "deepseek-v3", sc)
            per_gpu = batch * sc.output_tokens / p.e2e_s / sc.n_gpus
            print(f"| {label} | {batch} | {p.peak_memory_bytes / 1e9:.1f} GB (weights "
                  f"{p.memory['weights_bytes'] / 1e9:.1f}, KV {p.memory['kv_cache_bytes'] / 1e9:.1f}) | "
                  f"{p.max_concurrency} | {p.ttft_s:.2f} s | {p.tpot_s * 1e3:.1f} ms | {per_gpu:.0f} |")


if __name__ == "__main__":
    main()
