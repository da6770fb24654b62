#!/usr/bin/env python3
"""vitzoo against PyTorch eager, side by side on this machine (optional: no test needs Python).

Runs `zoo benchmark` and `Benchmarks/pytorch_reference.py` alternately, `--rounds` times each, on the
same models, shapes and thread count, then prints one Markdown table of medians with the ratios and
the goals of issue 15 (docs/benchmarks.md):

- training step and inference: at least 1.5x PyTorch, or at least 75% MFU while no slower;
- batch-1 latency below PyTorch's;
- peak resident memory of the training step no higher than PyTorch's.

Usage (PyTorch and timm in a scratch venv; see Benchmarks/pytorch_reference.py):

    swift build -c release --product zoo
    /tmp/venv-torch/bin/python Benchmarks/side_by_side.py --rounds 3

`--isa avx2` approximates an AVX2-only machine on an AVX-512 one: OpenBLAS pinned to its Haswell
kernels (pass a zoo built with VITZOO_TARGET_CPU=haswell through `--zoo`), PyTorch's ATen, MKL and
oneDNN pinned to AVX2. It is an approximation (same cores, same caches), not a Zen 3.

The machine line (CPU, BLAS core, both GEMM peaks, load average) comes from the runs themselves;
figures from a different machine kind are never mixed in.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOAL_RATIO, GOAL_MFU = 1.5, 0.75


def zoo_binary():
    out = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit("swift build --show-bin-path failed; build first or pass --zoo: " + out.stderr.strip())
    return os.path.join(out.stdout.strip(), "zoo")


def run_zoo(args, env):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    cmd = [args.zoo, "benchmark", "--models", args.models, "--batch_size", str(args.batch), "--threads", str(args.threads),
           "--image_size", str(args.image), "--budget", str(args.budget), "--json", path]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("zoo benchmark failed:\n" + res.stderr[-2000:])
    with open(path) as f:
        rows = json.load(f)
    os.unlink(path)
    return {r["model"]: r for r in rows}


def run_torch(args, env):
    env = dict(env)
    # glibc would otherwise return PyTorch's large buffers to the system after every step (page faults)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "1000000000000")
    env.setdefault("MALLOC_TRIM_THRESHOLD_", "1000000000000")
    cmd = [sys.executable, os.path.join(HERE, "pytorch_reference.py"), "--models", args.models, "--threads", str(args.threads),
           "--batch", str(args.batch), "--image", str(args.image), "--budget", str(args.budget), "--json"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("pytorch_reference.py failed:\n" + res.stderr[-2000:])
    rows = [json.loads(l) for l in res.stdout.splitlines() if l.startswith("{")]
    return {r["model"]: r for r in rows}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="pit_ti,convit_tiny,visformer_tiny,vit_b_32_224,pvt_tiny")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image", type=int, default=224)
    p.add_argument("--budget", type=float, default=4.0)
    p.add_argument("--isa", choices=["native", "avx2"], default="native")
    p.add_argument("--zoo", help="the zoo executable (default: this checkout's release build)")
    p.add_argument("--json", help="write the medians and verdicts to FILE")
    args = p.parse_args()
    args.zoo = args.zoo or zoo_binary()

    zoo_env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    torch_env = dict(zoo_env)
    if args.isa == "avx2":
        zoo_env["OPENBLAS_CORETYPE"] = "Haswell"
        torch_env.update(ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2", DNNL_MAX_CPU_ISA="AVX2")

    zoo_runs, torch_runs = [], []
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}: zoo benchmark", file=sys.stderr, flush=True)
        zoo_runs.append(run_zoo(args, zoo_env))
        print(f"round {r + 1}/{args.rounds}: PyTorch", file=sys.stderr, flush=True)
        torch_runs.append(run_torch(args, torch_env))

    first = next(iter(zoo_runs[0].values()))
    loads = [next(iter(z.values()))["load_average"] for z in zoo_runs]
    zoo_peak = med([next(iter(z.values()))["sgemm_peak_gflops"] for z in zoo_runs])
    torch_peak = med([t["matmul_gflops"] for run in torch_runs for t in run.values()])
    torch_version = next(iter(torch_runs[0].values()))["torch"]
    print(f"- CPU: {first['cpu']}; ISA setting: {args.isa}; OpenBLAS core: {first['blas_core']}")
    print(f"- {args.threads} threads, {args.image}x{args.image}, batch {args.batch}; medians of {args.rounds} alternated rounds;"
          f" load average at the start of each zoo round: {'; '.join(str(l) for l in loads)}")
    print(f"- sgemm peak (OpenBLAS, 2048^3): {zoo_peak:.0f} GFLOP/s; torch.mm peak (PyTorch {torch_version}): {torch_peak:.0f} GFLOP/s")
    print()
    print("| model | train img/s zoo / torch | ratio | train MFU | infer img/s zoo / torch | ratio | infer MFU |"
          " b1 ms zoo / torch | peak RSS MB zoo / torch | goals met |")
    print("|---|---|---:|---:|---|---:|---:|---|---|---|")
    out = []
    for name in args.models.split(","):
        z = {k: med([run[name].get(k) for run in zoo_runs]) for k in
             ["train_images_per_s", "infer_images_per_s", "latency_batch1_ms", "peak_rss_train_mb", "mfu", "infer_mfu"]}
        t = {k: med([run[name].get(k) for run in torch_runs]) for k in
             ["train_img_s", "infer_img_s", "latency_b1_ms", "peak_rss_train_mb"]}
        tr, ir = z["train_images_per_s"] / t["train_img_s"], z["infer_images_per_s"] / t["infer_img_s"]
        goals = {
            "train": tr >= GOAL_RATIO or (z["mfu"] >= GOAL_MFU and tr >= 1),
            "infer": ir >= GOAL_RATIO or (z["infer_mfu"] >= GOAL_MFU and ir >= 1),
            "batch-1": z["latency_batch1_ms"] < t["latency_b1_ms"],
            "memory": z["peak_rss_train_mb"] <= t["peak_rss_train_mb"],
        }
        missed = [k for k, ok in goals.items() if not ok]
        print(f"| {name} | {z['train_images_per_s']:.1f} / {t['train_img_s']:.1f} | {tr:.2f}x | {z['mfu'] * 100:.0f}% |"
              f" {z['infer_images_per_s']:.1f} / {t['infer_img_s']:.1f} | {ir:.2f}x | {z['infer_mfu'] * 100:.0f}% |"
              f" {z['latency_batch1_ms']:.1f} / {t['latency_b1_ms']:.1f} | {z['peak_rss_train_mb']:.0f} / {t['peak_rss_train_mb']:.0f} |"
              f" {'all' if not missed else 'not ' + ', '.join(missed)} |")
        out.append({"model": name, "zoo": z, "torch": t, "train_ratio": tr, "infer_ratio": ir, "goals": goals})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": first["cpu"], "blas_core": first["blas_core"], "isa": args.isa, "sgemm_peak_gflops": zoo_peak,
                       "torch_matmul_gflops": torch_peak, "torch": torch_version, "rounds": args.rounds, "models": out}, f, indent=1)


if __name__ == "__main__":
    main()
