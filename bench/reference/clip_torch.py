#!/usr/bin/env python3
"""PyTorch reference of the cxr-train CLIP model for side-by-side benchmarks (bench/trainStep.js).

The same architectures as the native core, written the way PyTorch users write them (on PyTorch >= 2.0
F.scaled_dot_product_attention with is_causal for the text tower, before that nn.MultiheadAttention;
F.cross_entropy, torch.optim.AdamW): ViT (OpenAI layout), ModifiedResNet, causal text transformer. It runs
with Debian's python3-torch, which uses the same libtorch as the addon. Reference only: never a runtime
dependency of cxr-train.

Usage: clip_torch.py '{"config": {...registry config...}, "batch": 8, "steps": 3, "threads": 1, "seed": 0,
                       "device": "cpu" | "cuda:0", "precision": "fp32" | "bf16", "length": 32,
                       "warmup": 0, "hostInputs": false, "flopsPerStep": null, "profile": null}'
bf16 is autocast of the forward pass (as the native engine does); on CUDA AdamW is the fused one where PyTorch
has it. warmup: steps run first and left out of every figure (and before the CUDA peak is reset). hostInputs:
the batch stays on the CPU and is copied to the device inside "forward", as the native engine does with the
batch the binding hands it (native/bench/step_bench: "input"). flopsPerStep: the analytic FLOP count of one
train step that native/bench/step_bench prints (matrix products only, 2 FLOPs per multiply-add, step = 3 ×
forward; the formula is documented at the top of step_bench.cc); given, "tflops" is it over the median step.
profile: a path; the timed steps run under torch.autograd.profiler.profile (the legacy profiler, as
native/bench/step_bench --profile) and its Chrome trace is written there (bench/profileStep.js compares the two).
Prints one JSON line: {"ms": [per-step ms], "phases": {"forward"|"loss"|"backward"|"optimizer": [ms]},
"loss": [...], "torch": version, "imgPerS", "median": {"total", "forward", "loss", "forwardInclLoss",
"backward", "optimizer"} (ms, medians over the steps), "peakBytes" with "peakKind": on CUDA
torch.cuda.max_memory_allocated over the timed steps, on CPU the process's RSS peak (getrusage, whole
lifetime), "rssPeakBytes", "tflops" (when flopsPerStep is given)}.
"""
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


def act(name):
    return QuickGELU() if name in (None, "quick_gelu") else nn.GELU()


HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


class Attention(nn.Module):
    """Multi-head attention: F.scaled_dot_product_attention where PyTorch has it (2.0+), else
    nn.MultiheadAttention (what PyTorch 1.13 users wrote)."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        if HAS_SDPA:
            self.q, self.k, self.v = nn.Linear(width, width), nn.Linear(width, width), nn.Linear(width, width)
            self.out = nn.Linear(width, width)
        else:
            self.mha = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, q, kv, mask=None, causal=False):
        if not HAS_SDPA:
            return self.mha(q, kv, kv, need_weights=False, attn_mask=mask)[0]
        N, Lq, W = q.shape
        Lk, h = kv.shape[1], self.heads
        qh = self.q(q).view(N, Lq, h, W // h).transpose(1, 2)
        kh = self.k(kv).view(N, Lk, h, W // h).transpose(1, 2)
        vh = self.v(kv).view(N, Lk, h, W // h).transpose(1, 2)
        o = F.scaled_dot_product_attention(qh, kh, vh, is_causal=causal)
        return self.out(o.transpose(1, 2).reshape(N, Lq, W))


class Block(nn.Module):
    def __init__(self, width, heads, mlp_ratio=4.0, activation=None):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(round(width * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(width, hidden), act(activation), nn.Linear(hidden, width))

    def forward(self, x, mask=None, causal=False):
        h = self.ln_1(x)
        x = x + self.attn(h, h, mask, causal)
        return x + self.mlp(self.ln_2(x))


class ViT(nn.Module):
    def __init__(self, v, embed_dim):
        super().__init__()
        w, p = v["width"], v["patchSize"]
        g = v["imageSize"] // p
        self.conv1 = nn.Conv2d(3, w, p, p, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(w) * w ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(g * g + 1, w) * w ** -0.5)
        self.ln_pre = nn.LayerNorm(w)
        self.blocks = nn.ModuleList([Block(w, v["heads"], v.get("mlpRatio", 4.0), v.get("act")) for _ in range(v["layers"])])
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, embed_dim) * w ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        cls = self.class_embedding.view(1, 1, -1).expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], 1) + self.positional_embedding)
        for b in self.blocks:
            x = b(x)
        return self.ln_post(x[:, 0]) @ self.proj


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.down = None
        if stride > 1 or inplanes != planes * 4:
            self.down = nn.Sequential(nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                                      nn.Conv2d(inplanes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.pool(F.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.down(x) if self.down is not None else x))


class AttnPool(nn.Module):
    def __init__(self, spatial, embed, heads, out):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spatial * spatial + 1, embed) / embed ** 0.5)
        self.attn = Attention(embed, heads)
        self.c_proj = nn.Linear(embed, out)

    def forward(self, x):
        x = x.flatten(2).transpose(1, 2)
        x = torch.cat([x.mean(1, keepdim=True), x], 1) + self.positional_embedding
        return self.c_proj(self.attn(x[:, :1], x).squeeze(1))


class ResNet(nn.Module):
    def __init__(self, v, embed_dim):
        super().__init__()
        w = v["resnetWidth"]
        self.stem = nn.Sequential(
            nn.Conv2d(3, w // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU(),
            nn.Conv2d(w // 2, w // 2, 3, 1, 1, bias=False), nn.BatchNorm2d(w // 2), nn.ReLU(),
            nn.Conv2d(w // 2, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.AvgPool2d(2))
        blocks, inplanes = [], w
        for s, n in enumerate(v["resnetLayers"]):
            for b in range(n):
                blocks.append(Bottleneck(inplanes, w << s, 2 if (b == 0 and s > 0) else 1))
                inplanes = (w << s) * 4
        self.blocks = nn.Sequential(*blocks)
        downs = 2 ** (len(v["resnetLayers"]) + 1)
        self.attnpool = AttnPool(v["imageSize"] // downs, inplanes, v["attnPoolHeads"], embed_dim)
        self.bn_train = v.get("batchnormTrain", False)

    def forward(self, x):
        return self.attnpool(self.blocks(self.stem(x)))


class Clip(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        v, t, e = cfg["vision"], cfg["text"], cfg["embedDim"]
        self.visual = ViT(v, e) if v["type"] == "vit" else ResNet(v, e)
        self.token_embedding = nn.Embedding(t["vocabSize"], t["width"])
        self.positional_embedding = nn.Parameter(torch.randn(t["contextLength"], t["width"]) * 0.01)
        self.blocks = nn.ModuleList([Block(t["width"], t["heads"], t.get("mlpRatio", 4.0), t.get("act")) for _ in range(t["layers"])])
        self.ln_final = nn.LayerNorm(t["width"])
        self.text_projection = nn.Parameter(torch.randn(t["width"], e) * t["width"] ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        L = t["contextLength"]
        self.register_buffer("mask", torch.full((L, L), float("-inf")).triu(1), persistent=False)

    def encode_text(self, ids):
        L = ids.shape[1]
        x = self.token_embedding(ids) + self.positional_embedding[:L]
        for b in self.blocks:
            x = b(x, self.mask[:L, :L], causal=True)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), ids.argmax(-1)] @ self.text_projection


def main():
    args = json.loads(sys.argv[1])
    torch.set_num_threads(args.get("threads", 1))
    torch.manual_seed(args.get("seed", 0))
    cfg, B, steps = args["config"], args["batch"], args["steps"]
    device = torch.device(args.get("device", "cpu"))
    bf16 = args.get("precision", "fp32") == "bf16"
    cuda = device.type == "cuda"
    model = Clip(cfg).to(device)
    model.train()
    if cfg["vision"]["type"] == "resnet" and not cfg["vision"].get("batchnormTrain", False):
        for m in model.visual.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    plain = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    extra = {"fused": True} if cuda and "fused" in torch.optim.AdamW.__init__.__code__.co_varnames else {}
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.2}, {"params": plain, "weight_decay": 0.0}],
                            lr=1e-5, betas=(0.9, 0.98), eps=1e-6, **extra)
    S, L = cfg["vision"]["imageSize"], args.get("length", 32)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(B, 3, S, S, generator=g).to(device)
    ids = torch.randint(1, 49405, (B, L), generator=g)
    ids[:, 0] = 49406
    ids[torch.arange(B), torch.arange(B) % (L - 2) + 1] = 49407
    ids = ids.to(device)
    labels = torch.arange(B, device=device)

    def now():
        if cuda:
            torch.cuda.synchronize(device)
        return time.perf_counter()

    host = args.get("hostInputs", False)
    if host:
        images, ids = images.cpu(), ids.cpu()
    warmup = args.get("warmup", 0)
    ms, losses = [], []
    phases = {"forward": [], "loss": [], "backward": [], "optimizer": []}
    prof = None
    for i in range(warmup + steps):
        if i == warmup and cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        if i == warmup and args.get("profile"):
            prof = torch.autograd.profiler.profile(use_kineto=False)
            prof.__enter__()
        t0 = now()
        opt.zero_grad(set_to_none=True)
        x, t = (images.to(device), ids.to(device)) if host else (images, ids)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            u = model.visual(x)
            v = model.encode_text(t)
        t1 = now()
        u, v = F.normalize(u.float(), dim=-1), F.normalize(v.float(), dim=-1)
        logits = model.logit_scale.exp() * u @ v.t()
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        t2 = now()
        loss.backward()
        t3 = now()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        t4 = now()
        if i < warmup:
            continue
        for k, a, b in (("forward", t0, t1), ("loss", t1, t2), ("backward", t2, t3), ("optimizer", t3, t4)):
            phases[k].append((b - a) * 1000)
        ms.append((t4 - t0) * 1000)
        losses.append(loss.item())
    if prof is not None:
        prof.__exit__(None, None, None)
        prof.export_chrome_trace(args["profile"])
    med = {k: statistics.median(v) for k, v in phases.items()}
    med["total"] = statistics.median(ms)
    med["forwardInclLoss"] = statistics.median([a + b for a, b in zip(phases["forward"], phases["loss"])])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"ms": ms, "loss": losses, "phases": phases, "torch": torch.__version__, "device": str(device),
           "precision": "bf16" if bf16 else "fp32", "fusedAdamW": bool(extra), "batch": B, "length": L,
           "threads": torch.get_num_threads(), "warmup": warmup, "hostInputs": host,
           "imgPerS": 1000.0 * B / med["total"], "median": med, "rssPeakBytes": rss,
           "peakBytes": rss, "peakKind": "process RSS peak (getrusage, whole lifetime)"}
    if args.get("flopsPerStep"):
        out["flopsPerStep"] = args["flopsPerStep"]
        out["tflops"] = args["flopsPerStep"] / (med["total"] * 1e-3) / 1e12
    if cuda:
        out["peakBytes"] = torch.cuda.max_memory_allocated(device)
        out["peakKind"] = "cuda caching allocator, peak allocated"
        out["deviceName"] = torch.cuda.get_device_name(device)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
