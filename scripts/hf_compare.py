#!/usr/bin/env python3
"""Llama-3-8B shape, bf16 weights: Hugging Face transformers and llama_tp on the same random
weights and prompt. HF makes the weights (random init on the GPU), saves them as safetensors,
and computes float32 logits from them; llama_tp loads the folder and writes its logits.

  hf_compare.py --bin build/llama_tp --dir /tmp/llama3-8b [--tokens 64] [--layers 32]"""
import argparse, json, os, subprocess, sys
import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", default="/tmp/llama3-8b")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--tol", type=float, default=2e-2)
    ap.add_argument("--extra", action="append", default=[], type=lambda s: s.split(), help="another llama_tp run's flags")
    a = ap.parse_args()
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=a.layers, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, torch_dtype=torch.bfloat16, initializer_range=0.02)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(a.dir, safe_serialization=True)
    del model
    torch.cuda.empty_cache()
    # As the shared references were made: load the bf16 checkpoint, compute in float32.
    model = LlamaForCausalLM.from_pretrained(a.dir, torch_dtype=torch.bfloat16).to("cuda").float().eval()
    inv = model.model.rotary_emb.inv_freq
    exact = 1.0 / (500000.0 ** (torch.arange(0, 128, 2, dtype=torch.float32, device=inv.device) / 128))
    print(f"HF inv_freq dtype {inv.dtype}, max |inv_freq - fp32 formula| {float((inv.float() - exact).abs().max()):.2e}")
    ids = torch.randint(0, 128000, (1, a.tokens), generator=torch.Generator().manual_seed(1)).cuda()
    with torch.no_grad():
        want = model(ids).logits[0].float().cpu().numpy()
    del model
    torch.cuda.empty_cache()
    ok = True
    # bf16 as stored (the product), then the same weights converted to f32 (isolates rounding).
    for extra in ([], ["--dtype", "f32"]) + tuple(a.extra):
        out = os.path.join(a.dir, "llama_tp.logits.f32")
        cmd = [a.bin, "-m", a.dir, "--backend", "cuda", "--prompt-ids", ",".join(map(str, ids[0].tolist())),
               "-n", "1", "--temp", "0", "--logits-out", out] + extra
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print("llama_tp failed:", r.stderr[-500:]); sys.exit(1)
        got = np.fromfile(out, dtype=np.float32).reshape(want.shape)
        rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
        same = float((got.argmax(1) == want.argmax(1)).mean())
        row_ok = rel.max() <= a.tol
        ok &= row_ok or bool(extra)
        print(f"| llama3-8b shape ({a.layers} layers) vs HF fp32 | llama_tp {' '.join(extra) or 'bf16'} | {a.tokens} tokens "
              f"| max rel err {rel.max():.2e} | mean {rel.mean():.2e} | first/last position {rel[0]:.2e}/{rel[-1]:.2e} "
              f"| argmax agreement {same:.3f} | {'PASS' if row_ok else 'FAIL'} |")
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
