#!/usr/bin/env python3
"""Per-block view of one node of a decode-step timeline dump (LLAMA_TP_TIMELINE_DUMP=<file>.csv,
kernels/timeline.cu): every block's entry, wait, input-ready and end in us from the last block end
of the node before it (the same origin as the summary table), sorted by end, with its SM.

  scripts/timeline_blocks.py dump.csv[.gz] --kernel attention --nth 16 [--last 20]
  scripts/timeline_blocks.py dump.csv[.gz] --kernel attention --nth 16 --around 2
      (min/median/max of each stamp over the blocks of that node and of the 2 nodes on each side;
      a decode attention's blocks grouped as split 0, split 1 and the rest)
  scripts/timeline_blocks.py dump.csv[.gz] --kinds
      (each kind of node's mean time: its last block end after the previous node's)
  scripts/timeline_blocks.py dump.csv[.gz] --kernel "gemv 28672" --tenths
      (over every node of that kind: each stamp's mean offset from the node's median, in us, by
      tenth of the block index: whether late blocks are the last launched)
  scripts/timeline_blocks.py dump.csv[.gz] --kernel "gemv 28672" --sm [--vs other.csv.gz]
      (each SM's lateness, its last block end after the node's median end as a share of the
      node's median end after its first input ready, averaged over the nodes of that kind: how
      it spreads, how late the last block is against its SM's average, and with --vs its
      correlation with another dump's: whether a GEMV's tail is the same slow SMs every time)
"""
import argparse
import collections
import csv
import gzip
import re
import statistics


def _quantiles(values):
    values = sorted(values)
    return values[0], values[len(values) // 2], values[-1]


def _load(path):
    """node -> its blocks' rows (ints where numbers)."""
    opener = gzip.open if path.endswith(".gz") else open
    nodes = collections.defaultdict(list)
    with opener(path, "rt") as f:
        for r in csv.DictReader(f):
            for k in ("node", "block", "sm", "entry", "waited", "ready", "end"):
                r[k] = int(r[k])
            nodes[r["node"]].append(r)
    return nodes


def _tenths(node_blocks, kernel):
    if not node_blocks:
        raise SystemExit(f"timeline_blocks: no node named '{kernel}...'")
    n_blocks = max(b["block"] for bs in node_blocks for b in bs) + 1
    offsets = {k: collections.defaultdict(list) for k in ("entry", "waited", "ready", "end")}
    for bs in node_blocks:
        medians = {k: _quantiles([b[k] for b in bs])[1] for k in offsets}
        for b in bs:
            for k in offsets:
                offsets[k][b["block"] * 10 // n_blocks].append((b[k] - medians[k]) / 1e3)
    print(f"{len(node_blocks)} nodes '{kernel}...' of {n_blocks} blocks: each stamp's mean us from the node's "
          "median, by tenth of the block index")
    for k, by_tenth in offsets.items():
        print(f"{k:7s} " + " ".join(f"{sum(v) / len(v):6.2f}" for _, v in sorted(by_tenth.items())))


def _sm_shares(nodes, kernel):
    """Per SM, its lateness in each node of the kind; and per node, the last block's lateness and SM."""
    per_sm, last = collections.defaultdict(list), []
    for bs in nodes.values():
        if not bs[0]["name"].startswith(kernel):
            continue
        median_end = _quantiles([b["end"] for b in bs])[1]
        span = median_end - min(b["ready"] for b in bs)
        if span <= 0:
            continue
        ends = collections.defaultdict(int)
        for b in bs:
            ends[b["sm"]] = max(ends[b["sm"]], b["end"])
        for sm, end in ends.items():
            per_sm[sm].append((end - median_end) / span)
        final = max(bs, key=lambda b: b["end"])
        last.append(((final["end"] - median_end) / span, final["sm"]))
    return {sm: sum(v) / len(v) for sm, v in per_sm.items()}, last


def _sm_lateness(nodes, kernel, other):
    mean, last = _sm_shares(nodes, kernel)
    if not mean:
        raise SystemExit(f"timeline_blocks: no node named '{kernel}...'")
    values = sorted(mean.values())
    print(f"{len(last)} nodes '{kernel}...' on {len(mean)} SMs. An SM's lateness: its last block end after the "
          "node's median end, as a share of the median end after the first input ready; mean over the nodes.")
    print("SMs by lateness, rounded to whole percent: " +
          ", ".join(f"{p:+d}%: {c}" for p, c in sorted(collections.Counter(round(100 * v) for v in values).items())))
    print(f"the last block: late by {100 * sum(l for l, _ in last) / len(last):.1f}% on average; "
          f"its SM's mean lateness {100 * sum(mean[sm] for _, sm in last) / len(last):.1f}%")
    if other is not None:
        mean2, _ = _sm_shares(other, kernel)
        sms = sorted(set(mean) & set(mean2))
        r = statistics.correlation([mean[s] for s in sms], [mean2[s] for s in sms])
        print(f"correlation of the SMs' lateness with the other dump: {r:.2f} over {len(sms)} SMs")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump")
    ap.add_argument("--kernel", help="prefix of the node name, e.g. 'attention' or 'gemv 6144'")
    ap.add_argument("--nth", type=int, default=0, help="which node of that kind, in end order (e.g. the layer)")
    ap.add_argument("--last", type=int, default=20, help="blocks to print (those that ended last)")
    ap.add_argument("--around", type=int, help="stamp quantiles of the node and this many nodes on each side")
    ap.add_argument("--kinds", action="store_true", help="mean time of each kind of node")
    ap.add_argument("--tenths", action="store_true", help="stamps by tenth of the block index (with --kernel)")
    ap.add_argument("--sm", action="store_true", help="each SM's lateness over the nodes (with --kernel)")
    ap.add_argument("--vs", help="with --sm: a second dump to correlate the SMs' lateness with")
    args = ap.parse_args()
    if not args.kinds and not args.kernel:
        ap.error("--kernel is needed (or --kinds)")
    nodes = _load(args.dump)
    if args.tenths:
        return _tenths([bs for bs in nodes.values() if bs[0]["name"].startswith(args.kernel)], args.kernel)
    if args.sm:
        return _sm_lateness(nodes, args.kernel, _load(args.vs) if args.vs else None)
    order = sorted(nodes, key=lambda n: max(b["end"] for b in nodes[n]))
    last_end = lambda n: max(b["end"] for b in nodes[n])
    if args.kinds:
        times = collections.defaultdict(list)
        for prev, n in zip(order, order[1:]):
            times[nodes[n][0]["name"]].append((last_end(n) - last_end(prev)) / 1e3)
        print(f"{len(order)} nodes over {(last_end(order[-1]) - min(b['entry'] for b in nodes[order[0]])) / 1e3:.1f} us")
        for name, t in sorted(times.items()):
            print(f"  {name:40s} x{len(t):4d}  mean {sum(t) / len(t):8.2f} us")
        return
    matching = [n for n in order if nodes[n][0]["name"].startswith(args.kernel)]
    if not matching:
        raise SystemExit(f"timeline_blocks: no node named '{args.kernel}...' in {args.dump}")
    if not -len(matching) <= args.nth < len(matching):
        raise SystemExit(f"timeline_blocks: --nth {args.nth}: there are {len(matching)} such nodes")
    node = matching[args.nth]
    i = order.index(node)
    if args.around is not None:
        print("node / blocks: min/median/max of each stamp in us from the last block end of the node before")
        for j in range(max(1, i - args.around), min(len(order), i + args.around + 1)):
            origin, blocks = last_end(order[j - 1]), nodes[order[j]]
            name = blocks[0]["name"]
            groups = {"all": blocks}
            kv = re.match(r"attention decode \d+/(\d+)x", name)
            if kv:  # grid (splits, kv heads): block = split + splits * kv head
                splits = max(1, len(blocks) // int(kv.group(1)))
                groups = {"split 0": [b for b in blocks if b["block"] % splits == 0],
                          "split 1": [b for b in blocks if b["block"] % splits == 1],
                          "later splits": [b for b in blocks if b["block"] % splits >= 2]}
            for g, bs in groups.items():
                q = lambda k: "/".join(f"{v:.2f}" for v in _quantiles([(b[k] - origin) / 1e3 for b in bs]))
                print(f"{name[:36]:36s} {g:12s} {len(bs):4d}  entry {q('entry')}  waited {q('waited')}  "
                      f"ready {q('ready')}  end {q('end')}")
        return
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
