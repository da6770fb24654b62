#!/usr/bin/env python3
"""Checks vitzoo's ONNX export against ONNX Runtime (optional; never needed by the tests).

For each model and batch size it runs `onnxcheck` (Benchmarks/OnnxCheck), which exports the model
and writes an input batch with the engine's logits for it, then: onnx.checker on the file, ONNX
Runtime on the same input (CPU, 2 threads), the largest logit difference relative to the largest
logit (must be <= 1e-4), and both runtimes' images/s (median of --runs forwards).

    python3 -m venv /tmp/venv-onnx && /tmp/venv-onnx/bin/pip install onnx onnxruntime numpy
    swift build -c release --product onnxcheck
    env -u OPENBLAS_CORETYPE /tmp/venv-onnx/bin/python scripts/onnx_check.py [--models pit_ti,...] [--batches 1,8]
"""
import argparse, json, os, subprocess, sys, tempfile, time

import numpy as np
import onnx
import onnxruntime as ort

DEFAULT = "pit_ti,convit_tiny,visformer_tiny,vit_b_32_224,pvt_tiny"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=DEFAULT)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dynamic", action="store_true", help="export with a symbolic batch dimension")
    ap.add_argument("--numerics", default=None, help="mindcv or timm (default: the model name's own)")
    ap.add_argument("--onnxcheck", default=None, help="path of the built onnxcheck executable")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    exe = args.onnxcheck or os.path.join(subprocess.check_output(
        ["swift", "build", "-c", "release", "--show-bin-path"], text=True).strip(), "onnxcheck")
    out = args.out or tempfile.mkdtemp(prefix="onnx-check-")
    failures = 0
    print(f"| model | batch | onnx.checker | max abs diff / max abs logit | zoo images/s | ORT images/s |")
    print(f"|---|---:|---|---:|---:|---:|")
    for model in args.models.split(","):
        for batch in [int(b) for b in args.batches.split(",")]:
            cmd = [exe, "--model", model, "--batch", str(batch), "--out", out, "--runs", str(args.runs)]
            if args.dynamic:
                cmd.append("--dynamic")
            if args.numerics:
                cmd += ["--numerics", args.numerics]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            stem = os.path.join(out, f"{model}_b{batch}" + ("_dyn" if args.dynamic else "") + (f"_{args.numerics}" if args.numerics else ""))
            info = json.load(open(stem + ".json"))
            onnx.checker.check_model(stem + ".onnx", full_check=True)
            x = np.fromfile(stem + ".input.bin", dtype=np.float32).reshape(info["input_shape"])
            ref = np.fromfile(stem + ".logits.bin", dtype=np.float32).reshape(info["logits_shape"])
            so = ort.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(stem + ".onnx", so, providers=["CPUExecutionProvider"])
            name = sess.get_inputs()[0].name
            got = sess.run(None, {name: x})[0]
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                sess.run(None, {name: x})
                times.append(time.perf_counter() - t0)
            ort_ips = batch / sorted(times)[len(times) // 2]
            rel = float(np.abs(got - ref).max() / np.abs(ref).max())
            ok = rel <= 1e-4
            failures += not ok
            print(f"| {model} | {batch} | passed | {rel:.2e}{'' if ok else ' FAIL'} | {info['zoo_images_per_s']:.1f} | {ort_ips:.1f} |", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
