#!/usr/bin/env python3
"""Writes OUTDIR/gpu-report.json and OUTDIR/gpu-report.md from what scripts/gpu-check.sh left in OUTDIR
(torch-info.json, stages.tsv, rows.tsv, step.<row>.json from native/bench/step_bench, torch.<row>.json from
bench/reference/clip_torch.py, loss_bench.json, ctest.log). Standard library only (the GPU machine has no Node).

Usage: gpu-report.py OUTDIR ROOT WITH_CUDA CTEST_RC THREADS BUDGET_S [NOTE]
Ratios are native / PyTorch: above 1 for times means native is slower; img/s ratio above 1 means faster.
Both TFLOP/s figures divide one analytic count (step_bench's flops_per_step) by each side's median step.
"""
import datetime
import json
import os
import platform
import re
import subprocess
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cmd(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_gib():
    try:
        with open("/proc/meminfo") as f:
            return round(int(f.readline().split()[1]) / 2**20)
    except (OSError, ValueError, IndexError):
        return None


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def main():
    out, root, with_cuda, ctest_rc, threads, budget = sys.argv[1:7]
    note = sys.argv[7] if len(sys.argv) > 7 else ""
    info = load(os.path.join(out, "torch-info.json")) or {}
    stages = []
    with open(os.path.join(out, "stages.tsv")) as f:
        for line in f:
            name, secs, rc, logf = line.rstrip("\n").split("\t")
            stages.append({"stage": name, "seconds": float(secs), "exit": int(rc), "log": logf})
    ctest_log = ""
    try:
        with open(os.path.join(out, "ctest.log")) as f:
            ctest_log = f.read()
    except OSError:
        pass
    m = re.search(r"(\d+)% tests passed, (\d+) tests? failed out of (\d+)", ctest_log)
    ctest = {"exit": int(ctest_rc), "summary": m.group(0) if m else "no ctest summary (see ctest.log)",
             "failed": int(m.group(2)) if m else None, "total": int(m.group(3)) if m else None,
             "tests": re.findall(r"Test +#\d+: (\S+) \.+\s*(\S+(?: \S+)?)\s+([\d.]+) sec", ctest_log)}
    ctest["tests"] = [{"name": n, "result": r, "seconds": float(s)} for n, r, s in ctest["tests"]]

    rows = []
    with open(os.path.join(out, "rows.tsv")) as f:
        for line in f:
            rid, status, model, dev, prec, batch, required = line.rstrip("\n").split("\t")
            r = {"id": rid, "status": status, "model": model, "device": dev, "precision": prec, "batch": int(batch),
                 "required": required == "1"}
            nat, ref = load(os.path.join(out, f"step.{rid}.json")), load(os.path.join(out, f"torch.{rid}.json"))
            if nat:
                r["native"] = {"img_per_s": nat["img_per_s"], "tflops": nat["tflops"], "ms": nat["ms"],
                               "peak_bytes": nat["peak_bytes"], "peak_kind": nat["peak_kind"],
                               "reserved_peak_bytes": nat["reserved_peak_bytes"], "rss_peak_bytes": nat["rss_peak_bytes"],
                               "loss_first": nat["loss_first"], "loss_last": nat["loss_last"], "length": nat["length"],
                               "steps": nat["steps"], "warmup": nat["warmup"]}
                r["flops_per_step"] = nat["flops_per_step"]
                r["flops_image_forward"] = nat["flops_image_forward"]
                r["flops_text_forward"] = nat["flops_text_forward"]
            if ref:
                med = ref["median"]
                r["pytorch"] = {"img_per_s": ref["imgPerS"], "tflops": ref.get("tflops"),
                                "ms": {"total": med["total"], "forward_incl_loss": med["forwardInclLoss"],
                                       "forward": med["forward"], "loss": med["loss"], "backward": med["backward"],
                                       "optimizer": med["optimizer"]},
                                "peak_bytes": ref["peakBytes"], "peak_kind": ref["peakKind"],
                                "rss_peak_bytes": ref["rssPeakBytes"], "fused_adamw": ref["fusedAdamW"],
                                "loss_first": ref["loss"][0], "loss_last": ref["loss"][-1], "torch": ref["torch"]}
            if nat and ref:
                n, p = r["native"], r["pytorch"]
                r["native_over_pytorch"] = {
                    "img_per_s": ratio(n["img_per_s"], p["img_per_s"]),
                    "ms_total": ratio(n["ms"]["total"], p["ms"]["total"]),
                    "ms_forward_incl_loss": ratio(n["ms"]["forward_incl_loss"], p["ms"]["forward_incl_loss"]),
                    "ms_backward": ratio(n["ms"]["backward"], p["ms"]["backward"]),
                    "ms_optimizer": ratio(n["ms"]["optimizer"], p["ms"]["optimizer"]),
                    "peak_bytes": ratio(n["peak_bytes"], p["peak_bytes"]) if n["peak_kind"] == p["peak_kind"] else None,
                    "rss_peak_bytes": ratio(n["rss_peak_bytes"], p["rss_peak_bytes"]),
                }
            rows.append(r)

    commit = cmd("git", "-C", root, "rev-parse", "--short", "HEAD") or "unknown"
    if commit != "unknown" and cmd("git", "-C", root, "status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    smi = cmd("nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {"host": platform.node(), "os": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(),
                    "memory_gib": mem_gib(), "gpu": info.get("gpu"), "gpu_count": info.get("gpu_count"),
                    "gpu_memory_bytes": info.get("gpu_memory_bytes"), "gpu_capability": info.get("gpu_capability"),
                    "nvidia_smi": smi or None},
        "torch": info.get("torch"), "torch_cuda": info.get("cuda_version"), "cuda_available": info.get("cuda_available"),
        "cxr_with_cuda": with_cuda == "ON", "build_note": note or None, "threads": int(threads),
        "budget_seconds": int(budget), "stages": stages, "ctest": ctest, "loss_bench": load(os.path.join(out, "loss_bench.json")),
        "step_rows": rows,
    }
    with open(os.path.join(out, "gpu-report.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")

    def fmt(x, d=1):
        return "n/a" if not isinstance(x, (int, float)) else f"{x:.{d}f}"

    def mib(x):
        return "n/a" if not isinstance(x, (int, float)) or x < 0 else f"{x / 2**20:.0f}"

    mc = report["machine"]
    md = [f"# gpu-check report ({report['date']}, commit {commit})", "",
          f"- machine: {mc['cpu']}, {mc['cpus']} CPUs, {mc['memory_gib']} GiB; GPU: {mc['gpu'] or 'none'}"
          + (f" ({smi})" if smi else ""),
          f"- torch {report['torch']} (CUDA {report['torch_cuda']}); CUDA available: {report['cuda_available']}; "
          f"built with CXR_WITH_CUDA={with_cuda}; threads {threads}" + (f"; note: {note}" if note else ""),
          f"- ctest: {ctest['summary']} (exit {ctest['exit']})", "",
          "## Stages", "", "| stage | seconds | exit |", "|---|---|---|"]
    md += [f"| {s['stage']} | {s['seconds']:.1f} | {s['exit']} |" for s in stages]
    md += ["", "## Train step: native vs PyTorch (medians; same device, batch, length, AdamW, CLIP loss)", "",
           "Native forward includes the input checks, the host-to-device copy of the batch and the loss forward; "
           "PyTorch's forward+loss includes the same copy (hostInputs). TFLOP/s: one analytic FLOP count "
           "(native/bench/step_bench.cc) over each side's median step.", "",
           "| row | status | native img/s | PyTorch img/s | native/PyTorch img/s | native ms (fwd+loss / bwd / opt) "
           "| PyTorch ms (fwd+loss / bwd / opt) | native TFLOP/s | PyTorch TFLOP/s | native peak MiB | PyTorch peak MiB | "
           "GFLOP/step |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        n, p, q = r.get("native"), r.get("pytorch"), r.get("native_over_pytorch", {})
        nm = f"{fmt(n['ms']['forward_incl_loss'])} / {fmt(n['ms']['backward'])} / {fmt(n['ms']['optimizer'])}" if n else "n/a"
        pm = f"{fmt(p['ms']['forward_incl_loss'])} / {fmt(p['ms']['backward'])} / {fmt(p['ms']['optimizer'])}" if p else "n/a"
        # Comparable peaks: the CUDA allocator's on both sides, else both processes' RSS peaks.
        same = n and p and n["peak_kind"] == p["peak_kind"]
        pn = n and (n["peak_bytes"] if same else n["rss_peak_bytes"])
        pp = p and (p["peak_bytes"] if same else p["rss_peak_bytes"])
        md.append(f"| {r['model']} b{r['batch']} {r['precision']} {r['device']} | {r['status']} | "
                  f"{fmt(n and n['img_per_s'])} | {fmt(p and p['img_per_s'])} | {fmt(q.get('img_per_s'), 2)} | {nm} | {pm} | "
                  f"{fmt(n and n['tflops'], 3)} | {fmt(p and p['tflops'], 3)} | {mib(pn)} | {mib(pp)} | {fmt(r.get('flops_per_step', 0) / 1e9 if r.get('flops_per_step') else None)} |")
    md.append("\nPeak memory: on CUDA the caching allocator's peak allocated bytes over the timed steps on both sides; "
              "on CPU both processes' RSS peaks (whole lifetime); the native CPU tensor-storage peak is in the detail table.")
    extra = [r for r in rows if r.get("native")]
    if extra:
        md += ["", "Native detail (ms, medians): input = checks + copy to the device; loss fwd/bwd timed alone on "
               "(B, embed_dim) embeddings.", "", "| row | total | input | loss fwd | loss bwd | native peak MiB (kind) | RSS peak MiB native / PyTorch "
               "| loss first→last native / PyTorch |", "|---|---|---|---|---|---|---|---|"]
        for r in extra:
            n, p = r["native"], r.get("pytorch") or {}
            md.append(f"| {r['id']} | {fmt(n['ms']['total'])} | {fmt(n['ms']['input'], 2)} | "
                      f"{fmt(n['ms']['loss_forward_alone'], 2)} | {fmt(n['ms']['loss_backward_alone'], 2)} | "
                      f"{mib(n['peak_bytes'])} ({n['peak_kind']}) | {mib(n['rss_peak_bytes'])} / {mib(p.get('rss_peak_bytes'))} | "
                      f"{fmt(n['loss_first'], 3)}→{fmt(n['loss_last'], 3)} / {fmt(p.get('loss_first'), 3)}→{fmt(p.get('loss_last'), 3)} |")
    lb = report["loss_bench"]
    if lb:
        md += ["", f"## Loss bench (fused vs unfused relaxed contrastive loss, CPU float32, D={lb['D']}, threads {lb['threads']})",
               "", "| B | fused ms | unfused ms | speed-up | fused peak MiB | unfused peak MiB |", "|---|---|---|---|---|---|"]
        for x in lb["rows"]:
            md.append(f"| {x['B']} | {x['fused_ms']:.2f} | {x['unfused_ms']:.2f} | {x['speedup']:.2f}x | "
                      f"{x['fused_peak_extra_bytes'] / 2**20:.1f} | {x['unfused_peak_extra_bytes'] / 2**20:.1f} |")
    with open(os.path.join(out, "gpu-report.md"), "w") as f:
        f.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
