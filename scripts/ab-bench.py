#!/usr/bin/env python3
"""Interleaved A/B latency of two `sparq` builds (e.g. the previous commit's and this one's) on one
model: round after round, each binary runs `sparq bench MODEL --json` once, alternating which goes
first; the result is the median of the per-round p50 ratios (new / old), with its spread. On a
shared, noisy host two sequential benches drift apart; rounds a second apart do not.

    scripts/ab-bench.py OLD_SPARQ NEW_SPARQ MODEL.sparq [--rounds 15] [--iters 100] [--threads 1]
"""
import argparse
import json
import statistics
import subprocess


def p50(binary, model, iters, threads):
    out = subprocess.run(
        [binary, "bench", model, "--json", "--iters", str(iters), "--warmup", "10", "--threads", str(threads)],
        check=True, capture_output=True, text=True,
    ).stdout
    j = json.loads(out.strip().splitlines()[-1])
    return j["p50_ms"], j["kernels"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("model")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    ratios, olds, news = [], [], []
    for r in range(a.rounds):
        if r % 2 == 0:
            (o, ko), (n, kn) = p50(a.old, a.model, a.iters, a.threads), p50(a.new, a.model, a.iters, a.threads)
        else:
            (n, kn), (o, ko) = p50(a.new, a.model, a.iters, a.threads), p50(a.old, a.model, a.iters, a.threads)
        olds.append(o)
        news.append(n)
        ratios.append(n / o)
        print(f"round {r + 1:2}: old p50 {o:.3f} ms ({ko})  new p50 {n:.3f} ms ({kn})  new/old {n / o:.3f}")
    ratios.sort()
    q = lambda f: ratios[min(len(ratios) - 1, int(f * len(ratios)))]
    print(
        f"new/old p50 latency: median {statistics.median(ratios):.3f} (p10 {q(0.1):.3f}, p90 {q(0.9):.3f}) over "
        f"{a.rounds} interleaved rounds; old p50 median {statistics.median(olds):.3f} ms, "
        f"new {statistics.median(news):.3f} ms"
    )


if __name__ == "__main__":
    main()
