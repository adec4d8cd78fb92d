"""Merges the JSON lines of `gpu` (Burn) and `torch_ref.py` (PyTorch) into Markdown tables.

    python3 report.py rows.jsonl [more.jsonl ...] > report.md

Times are the batched means (calls queued back to back, one sync at the end: close to device
time); the per-call synced medians are in the raw JSON. Ratio = Burn / PyTorch at the same
precision (< 1 means Burn is faster). "Burn 1st call s" is Burn's first call on a cold process:
kernel compilation (NVRTC) and autotuning plus one run. TFLOP/s uses the analytic count for kernels and PyTorch's
flop counter for model stages (same shapes on both sides). Memory is each allocator's peak
footprint during the case, inputs and weights included: PyTorch's `max_memory_reserved` (its
`max_memory_allocated` in the raw JSON) against the most Burn's CubeCL pool held after any timed call
(what was live before the first timed call, weights and inputs, is `live_at_start_mb` in the raw
JSON); "mem ratio" = Burn / PyTorch. A second table gives each stage's host time: the part of
the batched calls until the last one returned, before the sync (`unet_overhead`, the UNet step
narrowed to a tenth of its width on a small latent, is nearly all of it: the step's fixed cost),
and what Burn's NVIDIA-library calls took of the host per call (the part inside the libraries,
and the part spent waiting for CubeCL's device thread to take them). A third
gives the host's cost of one call of each kind (`launch_*`: chains of tiny calls).
"""

import json
import sys

PAIRS = [("cuda-bf16", "cuda-bf16"), ("cuda", "cuda-f32")]


def load(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    rows.append(json.loads(line))
    return rows


def fmt(ms):
    return "–" if ms is None else f"{ms:.3f}"


def dash(value):
    return "–" if value is None else value


def reference_case(case):
    """The PyTorch case a Burn case is compared with. `X_sdpa` is Burn's model entry point for the
    op PyTorch times as `X`; `X_burn` is Burn's own ops where the models take a fused kernel or an
    NVIDIA library; `X_unfused` is attention as two cuBLASLt GEMMs around a softmax, `X_flash`
    Burn's attention with the queries padded for its flash kernels; `X_conv_graph`, `X_queued`,
    `X_fitted` and `X_pitched` are `X` with the convolutions on cuDNN's graph API, the
    libraries' calls queued without waiting, the fitted memory pools or the padded tensor layout
    (`gpu --conv graph`, `--calls queued`, `--memory fitted`, `--layout pitched`);
    `unet_step_prepared` and `flux_step_prepared` are the steps with their text context
    prepared once, as the samplers run them, against PyTorch's `unet_step` and `flux_step`
    (diffusers' pipelines recompute it at every step)."""
    for variant in ("_pitched", "_fitted", "_queued", "_conv_graph"):
        case = case.removesuffix(variant)
    for suffix in ("_sdpa", "_burn", "_unfused", "_flash", "_prepared"):
        case = case.removesuffix(suffix)
    return case


def main(paths):
    rows = load(paths)
    by = {(r["impl"], r["backend"], r["case"]): r for r in rows}
    cases = list(dict.fromkeys(r["case"] for r in rows))
    flop = {r["case"]: r["flop"] for r in rows if r.get("flop")}
    print("| case | shape | precision | PyTorch ms | Burn cuda ms | ratio | Burn TFLOP/s | "
          "PyTorch TFLOP/s | PyTorch peak MiB | Burn peak MiB | mem ratio | Burn 1st call s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        for burn_backend, torch_backend in PAIRS:
            b = by.get(("burn", burn_backend, case))
            t = by.get(("torch", torch_backend, reference_case(case)))
            if b is None and t is None:
                continue
            bm = b["mean_batched_ms"] if b else None
            tm = t["mean_batched_ms"] if t else None
            ratio = f"{bm / tm:.2f}" if bm and tm else "–"
            work = flop.get(case) or flop.get(reference_case(case))
            tflops = lambda ms: f"{work / ms / 1e9:.1f}" if work and ms else "–"
            shape = (b or t)["shape"]
            torch_peak = t.get("peak_reserved_mb") if t else None
            burn_peak = b.get("peak_reserved_mb") if b else None
            mem_ratio = f"{burn_peak / torch_peak:.2f}" if burn_peak and torch_peak else "–"
            first = b.get("first_call_s") if b else None
            print(f"| {case} | {shape} | {torch_backend.split('-')[1]} | {fmt(tm)} | {fmt(bm)} | "
                  f"{ratio} | {tflops(bm)} | {tflops(tm)} | {dash(torch_peak)} | "
                  f"{dash(burn_peak)} | {mem_ratio} | {dash(first)} |")
    host_table(by, cases)
    launch_table(by, cases)
    wgpu = [r for r in rows if r["impl"] == "burn" and r["backend"] == "wgpu"]
    if wgpu:
        print()
        print("| case | shape | Burn wgpu f32 ms | Burn cuda f32 ms | wgpu / cuda | PyTorch f32 ms "
              "| wgpu / PyTorch |")
        print("|---|---|---|---|---|---|---|")
        for r in wgpu:
            wm = r["mean_batched_ms"]
            c = by.get(("burn", "cuda", r["case"]))
            t = by.get(("torch", "cuda-f32", r["case"]))
            cm = c["mean_batched_ms"] if c else None
            tm = t["mean_batched_ms"] if t else None
            ratio = lambda other: f"{wm / other:.2f}" if other else "–"
            print(f"| {r['case']} | {r['shape']} | {fmt(wm)} | {fmt(cm)} | {ratio(cm)} | "
                  f"{fmt(tm)} | {ratio(tm)} |")


def host_table(by, cases):
    """The host's share of each stage: how long queueing a call took before the sync (`host_ms`)
    beside the whole call. Host ms close to the call's ms: the host sets the pace."""
    stages = [c for c in cases if c.startswith(("unet", "vae", "faceclip", "sdxl", "flux"))]
    lines = []
    for case in stages:
        for burn_backend, torch_backend in PAIRS:
            b = by.get(("burn", burn_backend, case))
            t = by.get(("torch", torch_backend, reference_case(case)))
            if (b or {}).get("host_ms") is None and (t or {}).get("host_ms") is None:
                continue
            ms = lambda r, key: fmt(r.get(key)) if r else "–"
            libraries = "–"
            if b and "cublaslt_calls" in b:
                inside = ""
                if "cublaslt_library_ms" in b:
                    inside = (f"{b['cublaslt_library_ms'] + b['cudnn_library_ms']:.1f} in the "
                              "libraries' calls")
                if "cublaslt_queue_ms" in b:
                    inside += (f", {b['cublaslt_queue_ms'] + b['cudnn_queue_ms']:.1f} until the "
                               "device thread took them")
                if "cublaslt_queued" in b:
                    inside += (f", {b['cublaslt_queued'] + b['cudnn_queued']:.0f} calls queued "
                               "without waiting")
                inside = f" ({inside})" if inside else ""
                libraries = (f"{b['cublaslt_calls']:.0f} / {b['cudnn_calls']:.0f} calls, "
                             f"{b['cublaslt_host_ms'] + b['cudnn_host_ms']:.1f} ms{inside}, "
                             f"{b['cublaslt_plans'] + b['cudnn_plans']:.0f} plans")
            lines.append(f"| {case} | {torch_backend.split('-')[1]} | {ms(t, 'host_ms')} | "
                         f"{ms(t, 'mean_batched_ms')} | {ms(b, 'host_ms')} | "
                         f"{ms(b, 'mean_batched_ms')} | {libraries} |")
    if lines:
        print()
        print("| stage | precision | PyTorch host ms | PyTorch ms | Burn host ms | Burn ms | "
              "Burn's cuBLASLt / cuDNN per call |")
        print("|---|---|---|---|---|---|---|")
        print("\n".join(lines))


def launch_table(by, cases):
    """The host's cost of one call (`launch_*` cases: chains of tiny calls), in microseconds:
    the chain's host time over its length, which the shape names."""
    lines = []
    for case in (c for c in cases if c.startswith("launch_")):
        for burn_backend, torch_backend in PAIRS:
            b = by.get(("burn", burn_backend, case))
            t = by.get(("torch", torch_backend, reference_case(case)))
            if b is None and t is None:
                continue
            calls = int((b or t)["shape"].split()[0])
            us = lambda r, key: f"{r[key] * 1e3 / calls:.1f}" if r else "–"
            lines.append(f"| {case} | {(b or t)['shape']} | {torch_backend.split('-')[1]} | "
                         f"{us(t, 'host_ms')} | {us(b, 'host_ms')} | {us(b, 'mean_batched_ms')} |")
    if lines:
        print()
        print("| case | calls | precision | PyTorch host µs/call | Burn host µs/call | "
              "Burn µs/call |")
        print("|---|---|---|---|---|---|")
        print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
