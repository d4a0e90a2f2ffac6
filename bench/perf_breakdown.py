#!/usr/bin/env python3
"""Reads `perf script` output (stdin) and prints, for each ROOT function given, the share of
all samples under it and how that splits among the functions it calls (DEPTH levels, wrapper
frames of pgrx and Rust closures skipped). Used by bench/profile.sh."""

import collections
import sys

SKIP = ("[unknown]", "sigsetjmp", "run_guarded", "_inner", "Scratch::run", "{{closure}}",
        "call_from_c", "pg_guard_ffi_boundary")


def frames(sample):
    out = []
    for line in sample.split("\n")[1:]:
        parts = line.strip().split(" ", 1)
        if len(parts) == 2:
            out.append(parts[1].split(" (")[0].split("+0x")[0])
    return out  # leaf first


def main():
    samples = [s for s in sys.stdin.read().split("\n\n") if s.strip()]
    total = len(samples) or 1
    print(f"{len(samples)} samples")
    for spec in sys.argv[1:]:
        root, _, depth = spec.partition(":")
        depth = int(depth or 2)
        buckets = collections.Counter()
        under = 0
        for s in samples:
            fr = frames(s)
            hits = [i for i, f in enumerate(fr) if root in f]
            if not hits:
                continue
            under += 1
            callees = [f for f in fr[: max(hits)] if not any(k in f for k in SKIP)][::-1]
            buckets[" > ".join(callees[:depth]) or "(self)"] += 1
        print(f"\n### {root}: {100 * under / total:.1f}% of all samples, split by callee")
        for name, n in buckets.most_common(20):
            if 100 * n / total >= 0.5:
                print(f"{100 * n / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
