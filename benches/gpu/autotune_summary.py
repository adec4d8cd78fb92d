"""Summarises a CubeCL autotune cache: per operation, how many kernel candidates each new shape
key tried (each one is compiled with NVRTC before it is timed), how many ran, the winner and its
time, and why the others failed.

    python3 benches/gpu/autotune_summary.py CACHE_DIR [PTX_TOC]

CACHE_DIR is the `[autotune] cache` root of `cubecl.toml` (run.sh uses /tmp/cubecl-cache); the
files are `autotune/<cubecl version>/<device>/<operation>.json.log`, one JSON object per key.
With the PTX table of contents (`cuda/<version>/ptx/toc.json.log`) it also counts the kernels
compiled so far.
"""

import collections
import json
import pathlib
import sys


def millis(duration):
    return duration["secs"] * 1e3 + duration["nanos"] / 1e6


def outcome(result):
    """(name, time in ms or None, failure kind or None) of one candidate."""
    o = result["outcome"]
    if "Ok" in o:
        return o["Ok"]["name"], millis(o["Ok"]["computation"]["mean"]), None
    kind, detail = next(iter(o["Err"].items()))
    name = detail.get("name", "?") if isinstance(detail, dict) else "?"
    return name, None, kind


def describe(key):
    """A short text of an autotune key: the matmul problem, the conv shape or the attention."""
    k = key.get("key", key)
    if isinstance(k, dict) and len(k) == 1 and isinstance(next(iter(k.values())), dict):
        k = next(iter(k.values()))  # an enum wrapper such as {"Conv": {...}}
    text = json.dumps(k)
    if "definition" in k:
        d = k["definition"]
        return f"m={d['m']} n={d['n']} k={d['k']}"
    if "matmul_key" in k:
        d = k["matmul_key"]["definition"]
        return f"fused m={d['m']} n={d['n']} k={d['k']}"
    if "reduce_key" in k:
        k = k["reduce_key"]
    if "vector_count" in k or "elem_input" in k:
        return (f"{k['elem_input']} -> {k['elem_output']} (acc {k.get('elem_acc')}), "
                f"reduce {k.get('vector_size', '?')} x {k.get('vector_count', '?')}")
    if "seq_q" in k:
        return (f"batches={k['total_batches']} q={k['seq_q']} kv={k['seq_kv']} "
                f"d={k['head_dim']}")
    if "in_channels" in k:
        return (f"{k.get('dtype', '')} batch {k.get('batch_size')} {k['in_channels']}->"
                f"{k['out_channels']} {k.get('kernel_size')} stride {k.get('stride')} "
                f"at {k.get('shape')}")
    return text[:90]


def main(root, toc=None):
    files = sorted(pathlib.Path(root).glob("autotune/*/*/*.json.log"))
    print("| operation | key | candidates | ran | winner | winner ms | failures |")
    print("|---|---|---|---|---|---|---|")
    totals = collections.Counter()
    for path in files:
        op = path.name.removesuffix(".json.log")
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            results = [outcome(r) for r in entry["value"]["results"]]
            ran = sorted((t, n) for n, t, _ in results if t is not None)
            failures = collections.Counter(kind for _, t, kind in results if t is None)
            totals[op] += len(results)
            win = ran[0] if ran else (None, "–")
            print(f"| {op} | {describe(entry['key'])} | {len(results)} | {len(ran)} | {win[1]} | "
                  f"{'–' if win[0] is None else f'{win[0]:.3f}'} | "
                  f"{', '.join(f'{k} {v}' for k, v in failures.items()) or '–'} |")
    print()
    print("Candidates per operation: " +
          ", ".join(f"{op} {n}" for op, n in totals.items()))
    if toc:
        kernels = sum(1 for line in open(toc) if line.strip())
        print(f"Kernels compiled (PTX cache entries): {kernels}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(*sys.argv[1:3])
