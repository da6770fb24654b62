#!/usr/bin/env python3
"""PyTorch + timm eager reference for `zoo benchmark` (optional: no test needs Python).

Measures, on this machine and with the same shapes, thread count and phases as `zoo benchmark`
(Sources/Benchmark/ModelBenchmark.swift):

- inference: eval mode, no autograd, images/s at the batch size;
- batch-1 latency: eval mode, one image, milliseconds;
- training step: train mode, forward + cross-entropy, backward, AdamW (lr 1e-4, weight decay 0.05)
  step and zero_grad, images/s; peak resident memory (VmHWM) of the training phase, reset before it;
- the torch matmul peak (2048^3, GFLOP/s) of the run, for an MFU beside vitzoo's sgemm peak.

Each model runs in its own process (so peak memory is that model's). Medians of timed iterations
after warm-up, each phase running until a time budget is spent. Usage, from a scratch venv:

    python3 -m venv /tmp/venv-torch && /tmp/venv-torch/bin/pip install torch timm
    /tmp/venv-torch/bin/python Benchmarks/pytorch_reference.py --threads 2 --batch 32
    env -u OPENBLAS_CORETYPE $(swift build -c release --show-bin-path)/zoo benchmark \
        --models pit_ti,convit_tiny,visformer_tiny,vit_b_32_224,pvt_tiny --batch_size 32

Model names are vitzoo's; timm names beside them. timm has no PVT v1, so pvt_tiny is written here
from docs/models.md section 5 (same layers, widths, depths and spatial-reduction ratios; numerics do
not matter for speed).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TIMM_NAMES = {
    "pit_ti": "pit_ti_224",
    "convit_tiny": "convit_tiny",
    "visformer_tiny": "visformer_tiny",
    "vit_b_32_224": "vit_base_patch32_224",
    "pvt_tiny": None,  # below
}


def pvt_v1(torch, depths=(2, 2, 2, 2), num_classes=1000):
    """PVT v1 (docs/models.md section 5): four stages of patch conv + LayerNorm + position table and
    pre-norm blocks whose attention reduces keys/values with a strided conv; class token before stage 4."""
    nn = torch.nn
    widths, heads, mlp, srs, patches = (64, 128, 320, 512), (1, 2, 5, 8), (8, 8, 4, 4), (8, 4, 2, 1), (4, 2, 2, 2)

    class Attention(nn.Module):
        def __init__(self, dim, heads, sr):
            super().__init__()
            self.heads, self.scale, self.sr_ratio = heads, (dim // heads) ** -0.5, sr
            self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
            if sr > 1:
                self.sr, self.norm = nn.Conv2d(dim, dim, sr, sr), nn.LayerNorm(dim, eps=1e-7)

        def forward(self, x, h, w):
            b, n, c = x.shape
            q = self.q(x).reshape(b, n, self.heads, c // self.heads).transpose(1, 2)
            if self.sr_ratio > 1:
                t = x.transpose(1, 2).reshape(b, c, h, w)
                x = self.norm(self.sr(t).flatten(2).transpose(1, 2))
            kv = self.kv(x).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            a = ((q @ kv[0].transpose(-2, -1)) * self.scale).softmax(-1)
            return self.proj((a @ kv[1]).transpose(1, 2).reshape(b, n, c))

    class Block(nn.Module):
        def __init__(self, dim, heads, ratio, sr):
            super().__init__()
            self.norm1, self.attn = nn.LayerNorm(dim, eps=1e-5), Attention(dim, heads, sr)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(dim, dim * ratio), nn.GELU(approximate="tanh"), nn.Linear(dim * ratio, dim))

        def forward(self, x, h, w):
            x = x + self.attn(self.norm1(x), h, w)
            return x + self.mlp(self.norm2(x))

    class PVT(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeds, self.norms, self.stages = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
            self.pos = nn.ParameterList()
            cin, side = 3, 224
            for s in range(4):
                side //= patches[s]
                self.embeds.append(nn.Conv2d(cin, widths[s], patches[s], patches[s]))
                self.norms.append(nn.LayerNorm(widths[s], eps=1e-5))
                self.pos.append(nn.Parameter(torch.zeros(1, side * side + (s == 3), widths[s])))
                self.stages.append(nn.ModuleList(Block(widths[s], heads[s], mlp[s], srs[s]) for _ in range(depths[s])))
                cin = widths[s]
            self.cls = nn.Parameter(torch.zeros(1, 1, widths[3]))
            self.norm, self.head = nn.LayerNorm(widths[3], eps=1e-6), nn.Linear(widths[3], num_classes)

        def forward(self, x):
            b = x.shape[0]
            for s in range(4):
                x = self.embeds[s](x)
                h, w = x.shape[2], x.shape[3]
                x = self.norms[s](x.flatten(2).transpose(1, 2))
                if s == 3:
                    x = torch.cat([self.cls.expand(b, -1, -1), x], 1)
                x = x + self.pos[s]
                for blk in self.stages[s]:
                    x = blk(x, h, w)
                if s < 3:
                    x = x.transpose(1, 2).reshape(b, -1, h, w)
            return self.head(self.norm(x)[:, 0])

    return PVT()


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def timed(body, budget, min_iters=3, max_iters=20, threads=1):
    """Warm-up (one call, two when it is short), then timed calls until `budget` seconds are spent.
    Returns the median wall seconds and the median process CPU seconds divided by `threads` (the
    wall time with the cores to itself: zoo benchmark's "(CPU-time)" column, for shared machines)."""
    t0 = time.perf_counter()
    body()
    first = time.perf_counter() - t0
    if first < budget / 4:
        body()
    times, cpu = [], []
    start = time.perf_counter()
    while len(times) < max_iters and (len(times) < min_iters or time.perf_counter() - start < budget):
        t, c = time.perf_counter(), time.process_time()
        body()
        times.append(time.perf_counter() - t)
        cpu.append((time.process_time() - c) / threads)
    return statistics.median(times), statistics.median(cpu)


def run_one(name, args):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if TIMM_NAMES[name] is None:
        model = pvt_v1(torch)
    else:
        import timm
        model = timm.create_model(TIMM_NAMES[name], pretrained=False, num_classes=1000)
    size, b = args.image, args.batch
    x = torch.randn(b, 3, size, size)
    labels = torch.randint(0, 1000, (b,))
    out = {"model": name, "timm": TIMM_NAMES[name] or "pvt_v1 (this script)", "torch": torch.__version__,
           "threads": torch.get_num_threads(), "batch": b, "image": size}

    a = torch.randn(2048, 2048)
    mm, _ = timed(lambda: torch.mm(a, a), 2.0, 3, 10)
    out["matmul_gflops"] = 2 * 2048 ** 3 / mm / 1e9
    del a
    n = args.threads

    model.eval()
    with torch.inference_mode():
        wall, cpu = timed(lambda: model(x), args.budget, threads=n)
        out["infer_img_s"], out["infer_img_s_cpu_time"] = b / wall, b / cpu
        x1 = x[:1].clone()
        wall, cpu = timed(lambda: model(x1), args.budget, threads=n)
        out["latency_b1_ms"], out["latency_b1_ms_cpu_time"] = wall * 1000, cpu * 1000

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(x), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=False)

    import gc
    gc.collect()
    out["peak_reset"] = reset_peak()
    wall, cpu = timed(step, args.budget, threads=n)
    out["train_img_s"], out["train_img_s_cpu_time"] = b / wall, b / cpu
    out["peak_rss_train_mb"] = (peak_rss_bytes() or 0) / 1048576
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="pit_ti,convit_tiny,visformer_tiny,vit_b_32_224,pvt_tiny")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image", type=int, default=224)
    p.add_argument("--budget", type=float, default=6.0, help="timed seconds per phase (as zoo benchmark)")
    p.add_argument("--json", action="store_true", help="one JSON object per model instead of the table")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    rows = []
    for name in args.models.split(","):
        if name not in TIMM_NAMES:
            sys.exit(f"unknown model {name!r}; known: {', '.join(TIMM_NAMES)}")
        cmd = [sys.executable, __file__, "--one", name, "--threads", str(args.threads), "--batch", str(args.batch),
               "--image", str(args.image), "--budget", str(args.budget)]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"{name}: {res.stderr.strip()}")
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if args.json:
        return
    print(f"PyTorch {rows[0]['torch']} eager + timm, {args.threads} threads, {args.image}x{args.image}, batch {args.batch}")
    print("(CPU-time): batch / (median process CPU seconds / threads), as in zoo benchmark; OpenMP spin-waiting"
          " counts as CPU time")
    print(f"{'model':<16}{'infer img/s':>12}{'(CPU-time)':>11}{'b1 ms':>9}{'train img/s':>13}{'(CPU-time)':>11}"
          f"{'peak RSS MB':>13}{'mm GFLOP/s':>12}")
    for r in rows:
        print(f"{r['model']:<16}{r['infer_img_s']:>12.1f}{r['infer_img_s_cpu_time']:>11.1f}{r['latency_b1_ms']:>9.1f}"
              f"{r['train_img_s']:>13.1f}{r['train_img_s_cpu_time']:>11.1f}{r['peak_rss_train_mb']:>13.0f}"
              f"{r['matmul_gflops']:>12.1f}")


if __name__ == "__main__":
    main()
