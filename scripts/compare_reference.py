#!/usr/bin/env python3
"""Runs llama_tp on the reference models (../shared/models layout) and compares its prompt
logits and greedy tokens with Hugging Face's. Prints one table row per run; exits 1 on a miss.

  compare_reference.py --bin build/llama_tp --models DIR [--backend cuda] [--tol 2e-2]
                       [--launch "mpirun -np 2"] [--extra "--comm mpi"] [--label np2-mpi]

Pass criteria (the CUDA issue's): per-position relative error ||d||/||ref|| <= tol, the same
argmax wherever the reference's top-1 margin exceeds 1e-2, and for float32 models the exact
greedy ids."""
import argparse, json, os, shlex, subprocess, sys, tempfile
import numpy as np

MODELS = ["tiny-llama3", "tiny-llama2", "tiny-gqa-f32"]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--backend", default="cuda")
    ap.add_argument("--tol", type=float, default=2e-2)
    ap.add_argument("--launch", default="")
    ap.add_argument("--extra", default="")
    ap.add_argument("--label", default="np1")
    args = ap.parse_args()
    ok = True
    for name in MODELS:
        ref = json.load(open(os.path.join(args.models, name + ".reference.json")))
        positions, vocab = ref["logits_shape"]
        want = np.fromfile(os.path.join(args.models, name + ".logits.f32"), dtype=np.float32).reshape(positions, vocab)
        out = tempfile.mktemp(suffix=".f32")
        cmd = (shlex.split(args.launch) + [args.bin, "-m", os.path.join(args.models, name), "--backend", args.backend,
               "--prompt-ids", ",".join(map(str, ref["prompt_ids"])), "--temp", "0", "-n", str(len(ref["greedy_ids"])),
               "--json", "--logits-out", out] + shlex.split(args.extra))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            print(f"| {name} | {args.label} | FAILED to run | {r.stderr.strip()[-300:]} |")
            ok = False
            continue
        got = np.fromfile(out, dtype=np.float32).reshape(positions, vocab)
        rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
        top2 = np.sort(want, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        decided = margin > 1e-2
        argmax_ok = bool(np.all(got.argmax(1)[decided] == want.argmax(1)[decided]))
        out_ids = json.loads(r.stdout.strip().splitlines()[-1])["output_ids"]
        greedy_same = out_ids == ref["greedy_ids"]
        is_f32 = "f32" in name
        row_ok = rel.max() <= args.tol and argmax_ok and (greedy_same or not is_f32)
        ok &= row_ok
        print(f"| {name} | {args.label} | max rel err {rel.max():.2e} | argmax@margin>1e-2 {'same' if argmax_ok else 'DIFFERENT'} "
              f"| greedy {'exact' if greedy_same else 'differs'}{' (required)' if is_f32 else ''} | {'PASS' if row_ok else 'FAIL'} |")
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main()
