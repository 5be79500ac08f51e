#!/usr/bin/env python3
"""Per-block view of one node of a decode-step timeline dump (LLAMA_TP_TIMELINE_DUMP=<file>.csv,
kernels/timeline.cu): every block's entry, wait, input-ready and end in us from the last block end
of the node before it (the same origin as the summary table), sorted by end, with its SM.

  scripts/timeline_blocks.py dump.csv[.gz] --kernel attention --nth 16 [--last 20]
"""
import argparse
import collections
import csv
import gzip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("--kernel", required=True, help="prefix of the node name, e.g. 'attention' or 'gemv 6144'")
    ap.add_argument("--nth", type=int, default=0, help="which node of that kind, in end order (e.g. the layer)")
    ap.add_argument("--last", type=int, default=20, help="blocks to print (those that ended last)")
    args = ap.parse_args()
    opener = gzip.open if args.dump.endswith(".gz") else open
    nodes = collections.defaultdict(list)
    with opener(args.dump, "rt") as f:
        for r in csv.DictReader(f):
            for k in ("node", "block", "sm", "entry", "waited", "ready", "end"):
                r[k] = int(r[k])
            nodes[r["node"]].append(r)
    order = sorted(nodes, key=lambda n: max(b["end"] for b in nodes[n]))
    matching = [n for n in order if nodes[n][0]["name"].startswith(args.kernel)]
    if not matching:
        raise SystemExit(f"timeline_blocks: no node named '{args.kernel}...' in {args.dump}")
    if not -len(matching) <= args.nth < len(matching):
        raise SystemExit(f"timeline_blocks: --nth {args.nth}: there are {len(matching)} such nodes")
    node = matching[args.nth]
    i = order.index(node)
    origin = max(b["end"] for b in nodes[order[i - 1]]) if i > 0 else min(b["entry"] for b in nodes[node])
    before = nodes[order[i - 1]][0]["name"] if i > 0 else "(none)"
    blocks = sorted(nodes[node], key=lambda b: b["end"])
    us = lambda t: (t - origin) / 1e3
    print(f"{nodes[node][0]['name']}: {len(blocks)} blocks on {len({b['sm'] for b in blocks})} SMs; "
          f"us from the last block end of '{before}'")
    ends = [us(b["end"]) for b in blocks]
    print("block end percentiles 0/50/90/100: " + " ".join(f"{ends[int(q * (len(ends) - 1))]:.2f}" for q in (0, .5, .9, 1)))
    print("| block | sm | entry | waited | ready | end |")
    print("|---|---|---|---|---|---|")
    for b in blocks[-args.last:]:
        print(f"| {b['block']} | {b['sm']} | " + " | ".join(f"{us(b[k]):.2f}" for k in ("entry", "waited", "ready", "end")) + " |")


if __name__ == "__main__":
    main()
