#!/usr/bin/env python3
"""The peer measurement: Hugging Face transformers, bf16, static KV cache, batch 1, random
weights of a named shape. Prints decode tok/s (and prefill tok/s) as JSON lines.

  hf_bench.py --shape llama3-8b --prompt 128 --gen 128 [--reps 3]"""
import argparse, json, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192),
    "llama3.2-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                        num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192,
                        tie_word_embeddings=True),
}

def make_model(shape):
    cfg = LlamaConfig(**SHAPES[shape], torch_dtype=torch.bfloat16)
    with torch.device("cuda"):
        torch.manual_seed(0)
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    return model.eval()

def timed(fn):
    torch.cuda.synchronize(); t = time.perf_counter(); fn(); torch.cuda.synchronize()
    return time.perf_counter() - t

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="llama3-8b")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    model = make_model(a.shape)
    ids = torch.randint(0, 32000, (1, a.prompt), device="cuda")
    gen = lambda n: model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                   cache_implementation="static", pad_token_id=0)
    gen(a.gen)  # warm-up (also builds the static cache)
    prefill = min(timed(lambda: gen(1)) for _ in range(a.reps))
    total = min(timed(lambda: gen(a.gen + 1)) for _ in range(a.reps))
    print(json.dumps({"peer": "hf-transformers-static", "shape": a.shape, "prompt": a.prompt, "gen": a.gen,
                      "prefill_tok_s": a.prompt / prefill, "decode_tok_s": a.gen / (total - prefill)}))

if __name__ == "__main__":
    main()
