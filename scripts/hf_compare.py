#!/usr/bin/env python3
"""Llama-3-8B shape, bf16 weights: Hugging Face transformers and llama_tp on the same random
weights and prompt. HF makes the weights (random init on the GPU, cast to bf16), saves them as
safetensors, and computes float32 logits twice: from the model it cast (its RoPE inv_freq
buffer was cast to bf16 too, as in the shared reference models) and from the checkpoint
reloaded with from_pretrained (inv_freq stays float32). llama_tp loads the folder and is
compared with the first by default and with the second under --rope-freqs f32.

  hf_compare.py --bin build/llama_tp --dir /tmp/llama3-8b [--tokens 64] [--layers 32]"""
import argparse, os, subprocess, sys
import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

def logits_of(model, ids):
    with torch.no_grad():
        return model(ids).logits[0].float().cpu().numpy()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--dir", default="/tmp/llama3-8b")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--tol", type=float, default=2e-2)
    a = ap.parse_args()
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=a.layers, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, torch_dtype=torch.bfloat16, initializer_range=0.02)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(a.dir, safe_serialization=True)
    ids = torch.randint(0, 128000, (1, a.tokens), generator=torch.Generator().manual_seed(1)).cuda()
    want = {"cast": logits_of(model.float().eval(), ids)}
    del model
    torch.cuda.empty_cache()
    model = LlamaForCausalLM.from_pretrained(a.dir, torch_dtype=torch.bfloat16).to("cuda").float().eval()
    print(f"reloaded HF model: inv_freq dtype {model.model.rotary_emb.inv_freq.dtype}")
    want["from_pretrained"] = logits_of(model, ids)
    del model
    torch.cuda.empty_cache()
    ok = True
    runs = [("cast", []), ("cast", ["--kv-dtype", "f32", "--precise-activations"]),
            ("from_pretrained", ["--rope-freqs", "f32"]),
            ("from_pretrained", ["--rope-freqs", "f32", "--kv-dtype", "f32", "--precise-activations"])]
    for ref, extra in runs:
        out = os.path.join(a.dir, "llama_tp.logits.f32")
        cmd = [a.bin, "-m", a.dir, "--backend", "cuda", "--prompt-ids", ",".join(map(str, ids[0].tolist())),
               "-n", "1", "--temp", "0", "--logits-out", out] + extra
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print("llama_tp failed:", r.stderr[-500:]); sys.exit(1)
        w = want[ref]
        got = np.fromfile(out, dtype=np.float32).reshape(w.shape)
        rel = np.linalg.norm(got - w, axis=1) / np.linalg.norm(w, axis=1)
        same = float((got.argmax(1) == w.argmax(1)).mean())
        row_ok = rel.max() <= a.tol
        ok &= row_ok
        print(f"| llama3-8b shape bf16 ({a.layers} layers), {a.tokens} tokens | HF {ref} | llama_tp {' '.join(extra) or '(defaults)'} "
              f"| max rel err {rel.max():.2e} | mean {rel.mean():.2e} | first/last {rel[0]:.2e}/{rel[-1]:.2e} "
              f"| argmax agreement {same:.3f} | {'PASS' if row_ok else 'FAIL'} |")
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
