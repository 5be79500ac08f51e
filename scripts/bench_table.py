#!/usr/bin/env python3
"""Joins `llama_tp bench -o json` outputs and hf_bench.py lines into one ratio table.

  bench_table.py --ours bench8b.json bench1b.json --peer hf.jsonl [--llamacpp 'llama3-8b:tg128=167,...']"""
import argparse, json

SHAPE_OF = {"llama3-8b": "llama3-8b", "llama3.2-1b": "llama3.2-1b"}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", nargs="+", required=True)
    ap.add_argument("--peer", default=None)
    a = ap.parse_args()
    peers = {}
    if a.peer:
        for line in open(a.peer):
            line = line.strip()
            if line.startswith("{"):
                p = json.loads(line)
                peers[p["shape"]] = p
    print("| shape | test | llama_tp t/s | GB/s | % of copy bandwidth | HF static t/s | ratio vs HF |")
    print("|---|---|---|---|---|---|---|")
    for path in a.ours:
        try:
            d = json.load(open(path))
        except Exception as e:  # a failed run leaves no JSON: say so in the table
            print(f"| {path} | (no result: {e}) | | | | | |")
            continue
        shape = d["model"].split(" ")[0]
        peer = peers.get(shape, {})
        for r in d["results"]:
            hf = None
            # HF decodes 128 tokens after its prompt: beside tg128 from an empty cache and, the
            # same positions, tg128 at the prompt's depth.
            if r["test"] in ("tg128", f"tg128@d{peer.get('prompt', 0)}"):
                hf = peer.get("decode_tok_s")
            elif r["test"] == "pp128":
                hf = peer.get("prefill_tok_s")
            ratio = f"{r['tokens_per_s'] / hf:.2f}x" if hf else ""
            bw = f"{r['gbs']:.0f}" if r["n_gen"] else ""
            pct = f"{r['percent_of_bandwidth']:.1f}%" if r["n_gen"] else ""
            print(f"| {shape} {d['dtype']} tp{d['tp']} | {r['test']} | {r['tokens_per_s']:.1f} ± {r['stddev']:.1f} | {bw} | {pct} "
                  f"| {hf:.1f} | {ratio} |" if hf else
                  f"| {shape} {d['dtype']} tp{d['tp']} | {r['test']} | {r['tokens_per_s']:.1f} ± {r['stddev']:.1f} | {bw} | {pct} | | |")
        print(f"(copy bandwidth measured {d['bandwidth_gbs']:.0f} GB/s on {d['backend']})")

if __name__ == "__main__":
    main()
