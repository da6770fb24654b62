// opbench: throughput of the engine's hot ops in release mode.
//
//   env -u OPENBLAS_CORETYPE swift run -c release opbench [--quick] [--only gemm|kernels|attention|mlp|conv] [--conv-shape NAME-PART]
//
// Every figure is the median of repeated runs after warm-up. Sections:
// - GEMM GFLOP/s through Tensor.matmul / Tensor.linear against a direct cblas_sgemm at the same shape;
// - LayerNorm, softmax and GELU forward and backward in GB/s of compulsory memory traffic;
// - element-wise binary ops in GB/s (vectorization check);
// - fused attention forward + backward at PiT-Ti's three stage shapes, against the composition
//   matmul → softmax → matmul;
// - self-attention read in place from the qkv projection (Tensor.packedSelfAttention) against the
//   permute/select copies it replaces;
// - the fused transformer MLP (Tensor.mlp) against linear → gelu → linear, forward + backward.
import CBLAS
import Foundation
import Tensor

BLASRuntime.preferFastestCore()

let quick = CommandLine.arguments.contains("--quick")
/// `--only gemm|kernels|attention|mlp|conv` runs one section (`--conv-shape NAME-PART`: the conv shapes whose name contains it).
let onlySection: String? = CommandLine.arguments.firstIndex(of: "--only").flatMap { i in
    i + 1 < CommandLine.arguments.count ? CommandLine.arguments[i + 1] : nil
}
func wants(_ section: String) -> Bool { onlySection == nil || onlySection == section }

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Process CPU seconds (all threads).
func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

/// Median process CPU time of the last `median` call divided by the engine's thread count: the
/// wall time the run would take with both cores to itself. On a machine shared with other jobs
/// the wall-clock median is inflated by time spent descheduled; this figure is not.
nonisolated(unsafe) var lastCPUPerThread = 0.0

/// The fastest run of the last `median` call (shown next to the median: on a shared machine the
/// spread tells how much of the median is other load).
nonisolated(unsafe) var lastBest = 0.0

/// Median seconds of `reps` timed runs of `body` after `warmup` untimed ones.
func median(reps: Int = 9, warmup: Int = 2, _ body: () -> Void) -> Double {
    for _ in 0..<warmup { body() }
    var times: [Double] = [], cpu: [Double] = []
    for _ in 0..<(quick ? max(3, reps / 3) : reps) {
        let c0 = cpuNow(), t0 = now()
        body()
        times.append(now() - t0)
        cpu.append(cpuNow() - c0)
    }
    times.sort(); cpu.sort()
    lastBest = times[0]
    lastCPUPerThread = cpu[cpu.count / 2] / Double(Parallel.threads)
    return times[times.count / 2]
}

/// Median seconds of each closure, timed in interleaved rounds (A B C A B C …) after one warm-up round.
func interleavedMedians(reps: Int, _ bodies: [() -> Void]) -> [Double] {
    for b in bodies { b() }
    var times = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<(quick ? max(3, reps / 3) : reps) {
        for (i, b) in bodies.enumerated() {
            let t0 = now()
            b()
            times[i].append(now() - t0)
        }
    }
    return times.map { $0.sorted()[$0.count / 2] }
}

/// 1-minute load average (other processes competing for the two cores).
func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
func f1(_ v: Double) -> String { String(format: "%.1f", v) }
func f2(_ v: Double) -> String { String(format: "%.2f", v) }

nonisolated(unsafe) var rng = RandomGenerator(seed: 1)
func randn(_ shape: [Int], std: Float = 1) -> Tensor { Tensor.randn(shape, std: std, generator: &rng) }
func leaf(_ t: Tensor) -> Tensor { var t = t; t.requiresGrad = true; return t }

print("opbench — vitzoo engine")
print("BLAS core: \(BLASRuntime.coreName)   BLAS threads: \(BLASRuntime.threads)   engine threads: \(Parallel.threads)")
print("OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)")   config: \(BLASRuntime.config)")
print("medians of repeated runs\(quick ? " (quick mode: fewer runs)" : ""); load average at start: \(loadAverage())")
print("")

// MARK: - Convolutions (ConvBench.swift)
if wants("conv") {
    let filter = CommandLine.arguments.firstIndex(of: "--conv-shape").flatMap { i in
        i + 1 < CommandLine.arguments.count ? CommandLine.arguments[i + 1] : nil
    }
    runConvSection(filter: filter)
}

// MARK: - GEMM
if wants("gemm") {

    print("## GEMM (GFLOP/s, 2·M·N·K per product)")
    print(pad("shape (M×K · K×N)", 28) + lpad("cblas_sgemm", 12) + lpad("matmul", 10) + lpad("ratio", 8)
          + lpad("linear", 10) + lpad("ratio", 8) + lpad("sgemm β=1", 11) + lpad("linear+b", 10) + lpad("ratio", 8))
    let gemmShapes: [(String, Int, Int, Int)] = [
        ("ViT-B qkv 6304×768·768×2304", 32 * 197, 768, 2304),
        ("ViT-B fc1 6304×768·768×3072", 32 * 197, 768, 3072),
        ("ViT-B fc2 6304×3072·3072×768", 32 * 197, 3072, 768),
        ("square 2048", 2048, 2048, 2048),
    ]
    for (name, m, k, n) in gemmShapes {
        let x = randn([m, k]), w = randn([n, k], std: 0.02), bias = randn([n])
        let flop = 2.0 * Double(m) * Double(n) * Double(k)
        let reps = flop > 5e10 ? 7 : 9
        // the same product in every column: C[M,N] = X[M,K] · W[N,K]ᵀ
        let c = Tensor.zeros([m, n])
        // the five variants run interleaved (one of each per round), so that load from other
        // processes drifts over all of them alike; medians per variant
        let times = interleavedMedians(reps: reps, [
            { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, x.storage.pointer, Int32(k),
                          w.storage.pointer, Int32(k), 0, c.storage.pointer, Int32(n)) },
            { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, x.storage.pointer, Int32(k),
                          w.storage.pointer, Int32(k), 1, c.storage.pointer, Int32(n)) },
            { _ = Tensor.matmul(x, w, transposeB: true) },
            { _ = Tensor.linear(x, weight: w, bias: nil) },
            { _ = Tensor.linear(x, weight: w, bias: bias) },
        ])
        let (direct, directBeta1, mm, lin, linB) = (times[0], times[1], times[2], times[3], times[4])
        let g = flop / 1e9
        print(pad(name, 28) + lpad(f1(g / direct), 12) + lpad(f1(g / mm), 10) + lpad(f2(direct / mm), 8)
              + lpad(f1(g / lin), 10) + lpad(f2(direct / lin), 8) + lpad(f1(g / directBeta1), 11) + lpad(f1(g / linB), 10)
              + lpad(f2(directBeta1 / linB), 8))
    }
    print("ratio = engine throughput / direct cblas_sgemm (1.00 = equal); linear+b is compared with sgemm β=1")
    print("(the bias pre-filled C), the direct call that does the same work.")
    print("")

    // Linear backward: dX = G·W and dW = Gᵀ·X against the same two direct calls.
    do {
        print("## linear backward (dX and dW GEMMs, GFLOP/s)")
        let (m, k, n) = (32 * 197, 768, 2304)
        let x = leaf(randn([m, k])), w = leaf(randn([n, k], std: 0.02))
        let gseed = randn([m, n])
        let y = Tensor.linear(x, weight: w, bias: nil)
        let dx = Tensor.zeros([m, k]), dw = Tensor.zeros([n, k])
        let times = interleavedMedians(reps: 7, [
            {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(k), Int32(n), 1, gseed.storage.pointer, Int32(n),
                            w.storage.pointer, Int32(k), 0, dx.storage.pointer, Int32(k))
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(k), Int32(m), 1, gseed.storage.pointer, Int32(n),
                            x.storage.pointer, Int32(k), 0, dw.storage.pointer, Int32(k))
            },
            {
                x.zeroGrad(); w.zeroGrad()
                y.backward(gradient: gseed, retainGraph: true)
            },
        ])
        let (direct, engine) = (times[0], times[1])
        let g = 4.0 * Double(m) * Double(n) * Double(k) / 1e9
        print(pad("6304×768 · 768×2304", 28) + "direct \(f1(g / direct))   engine \(f1(g / engine))   ratio \(f2(direct / engine))")
        print("")
    }
}

// MARK: - Row-wise and element-wise kernels
if wants("kernels") {

    print("## memory-bound kernels (GB/s of compulsory traffic; 4 bytes per float)")
    print("GB/s: median wall clock; best: fastest run; cpu: bytes ÷ (median process CPU time ÷ threads), the")
    print("rate with both cores to ourselves (equals GB/s on an idle machine; higher when other jobs compete).")
    print(pad("op", 44) + lpad("ms", 9) + lpad("GB/s", 9) + lpad("best", 8) + lpad("cpu", 8) + "   traffic model")
    func report(_ name: String, seconds: Double, floats: Double, model: String) {
        print(pad(name, 44) + lpad(f2(seconds * 1e3), 9) + lpad(f1(floats * 4 / seconds / 1e9), 9)
              + lpad(f1(floats * 4 / lastBest / 1e9), 8) + lpad(f1(floats * 4 / lastCPUPerThread / 1e9), 8) + "   " + model)
    }

    do {
        // LayerNorm at ViT-B's token tensor [32·197, 768]
        let rows = 32 * 197, c = 768
        let n = Double(rows * c)
        let x = leaf(randn([rows, c])), w = leaf(Tensor.ones([c])), b = leaf(Tensor.zeros([c]))
        let fwd = median { _ = withNoGrad { Tensor.layerNorm(x, weight: w, bias: b, eps: 1e-6) } }
        report("layerNorm fwd [6304, 768]", seconds: fwd, floats: 2 * n, model: "read x, write y")
        let y = Tensor.layerNorm(x, weight: w, bias: b, eps: 1e-6)
        let g = randn([rows, c])
        let bwd = median {
            x.zeroGrad(); w.zeroGrad(); b.zeroGrad()
            y.backward(gradient: g, retainGraph: true)
        }
        report("layerNorm bwd [6304, 768]", seconds: bwd, floats: 3 * n, model: "read x, g, write dx (dw, db: per-thread partials)")
    }

    do {
        // softmax over attention rows: [32·12·197, 197] (ViT-B scores)
        let rows = 32 * 12 * 197, c = 197
        let n = Double(rows * c)
        let x = leaf(randn([rows, c], std: 3))
        let fwd = median { _ = withNoGrad { x.softmax() } }
        report("softmax fwd [75648, 197]", seconds: fwd, floats: 2 * n, model: "read x, write y")
        let y = x.softmax()
        let g = randn([rows, c])
        let bwd = median { x.zeroGrad(); y.backward(gradient: g, retainGraph: true) }
        report("softmax bwd [75648, 197]", seconds: bwd, floats: 3 * n, model: "read y, g, write dx")
        let rows2 = 2048, c2 = 1000
        let z = randn([rows2, c2], std: 3)
        let ls = median { _ = withNoGrad { z.logSoftmax() } }
        report("logSoftmax fwd [2048, 1000]", seconds: ls, floats: 2 * Double(rows2 * c2), model: "read x, write y")
    }

    do {
        // GELU on ViT-B's MLP hidden tensor [32·197, 3072]
        let rows = 32 * 197, c = 3072
        let n = Double(rows * c)
        let x = leaf(randn([rows, c]))
        for form in [GELUApproximation.tanh, .none] {
            let fwd = median { _ = withNoGrad { x.gelu(approximate: form) } }
            report("gelu(\(form)) fwd [6304, 3072]", seconds: fwd, floats: 2 * n, model: "read x, write y")
            let y = x.gelu(approximate: form)
            let g = randn([rows, c])
            let bwd = median { x.zeroGrad(); y.backward(gradient: g, retainGraph: true) }
            report("gelu(\(form)) bwd [6304, 3072]", seconds: bwd, floats: 3 * n, model: "read x, g, write dx")
        }
    }

    do {
        let rows = 32 * 197, c = 768
        let n = Double(rows * c)
        let a = randn([rows, c]), b = randn([rows, c]), bias = randn([c])
        let img = randn([32, 64, 56, 56]), chan = randn([64, 1, 1])
        withNoGrad {
            report("add same shape [6304, 768]", seconds: median { _ = a + b }, floats: 3 * n, model: "read a, b, write out")
            report("mul row broadcast [6304, 768]·[768]", seconds: median { _ = a * bias }, floats: 2 * n, model: "read a, write out")
            report("add [32,64,56,56] + [64,1,1]", seconds: median { _ = img + chan }, floats: 2 * Double(img.count), model: "read a, write out")
            report("exp [6304, 768]", seconds: median { _ = a.exp() }, floats: 2 * n, model: "read x, write y")
            report("sum over rows [6304, 768] → [768]", seconds: median { _ = a.sum(axis: 0) }, floats: n, model: "read x")
        }
    }
    print("")
}

// MARK: - Attention
if wants("attention") {

    print("## attention forward + backward, PiT-Ti stages (batch 32, head dim 32)")
    print("FLOP model: forward 4·N²·d per (batch, head) (Q·Kᵀ and P·V); backward 8·N²·d (four GEMMs).")
    print("ms: median wall clock; cpu ms: median process CPU time ÷ threads (see above); composed: the same")
    print("attention as matmul → scale → softmax → matmul on the tape, forward + backward.")
    print(pad("stage", 30) + lpad("fwd ms", 9) + lpad("cpu ms", 8) + lpad("GFLOP/s", 9) + lpad("bwd ms", 9) + lpad("cpu ms", 8)
          + lpad("GFLOP/s", 9) + lpad("composed ms", 13) + lpad("speedup", 9))
    for (name, tokens, heads) in [("stage 1: 730 tokens, 2 heads", 730, 2), ("stage 2: 197 tokens, 4 heads", 197, 4),
                                  ("stage 3: 50 tokens, 8 heads", 50, 8)] {
        let b = 32, d = 32
        let q = leaf(randn([b, heads, tokens, d])), k = leaf(randn([b, heads, tokens, d])), v = leaf(randn([b, heads, tokens, d]))
        let scale = 1 / Float(d).squareRoot()
        let reps = tokens > 500 ? 5 : 9
        let fwd = median(reps: reps) { _ = withNoGrad { Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: scale) } }
        let fwdCPU = lastCPUPerThread
        let y = Tensor.scaledDotProductAttention(query: q, key: k, value: v, scale: scale)
        let g = randn(y.shape)
        let bwd = median(reps: reps) {
            q.zeroGrad(); k.zeroGrad(); v.zeroGrad()
            y.backward(gradient: g, retainGraph: true)
        }
        let bwdCPU = lastCPUPerThread
        let composed = median(reps: reps) {
            q.zeroGrad(); k.zeroGrad(); v.zeroGrad()
            let z = Tensor.matmul((Tensor.matmul(q, k, transposeB: true) * scale).softmax(), v)
            z.backward(gradient: g)
        }
        let unit = Double(b * heads) * Double(tokens * tokens * d)
        print(pad(name, 30) + lpad(f2(fwd * 1e3), 9) + lpad(f2(fwdCPU * 1e3), 8) + lpad(f1(4 * unit / fwd / 1e9), 9)
              + lpad(f2(bwd * 1e3), 9) + lpad(f2(bwdCPU * 1e3), 8) + lpad(f1(8 * unit / bwd / 1e9), 9)
              + lpad(f2(composed * 1e3), 13) + lpad(f2(composed / (fwd + bwd)), 9))
    }
    print("")
}

// MARK: - Packed attention

if wants("attention") {
    print("## self-attention from the qkv projection's output, forward + backward, PiT-Ti stages (batch 32, head dim 32)")
    print("packed: Tensor.packedSelfAttention on [B, N, 3C]; copies: reshape → permute → select q, k, v → attention →")
    print("permute → reshape (the composition it replaces). ms: median wall clock of interleaved runs; cpu ms: median")
    print("process CPU time ÷ threads.")
    print(pad("stage", 30) + lpad("packed ms", 11) + lpad("cpu ms", 8) + lpad("copies ms", 11) + lpad("cpu ms", 8) + lpad("ratio", 8))
    for (name, tokens, heads) in [("stage 1: 730 tokens, 2 heads", 730, 2), ("stage 2: 197 tokens, 4 heads", 197, 4),
                                  ("stage 3: 50 tokens, 8 heads", 50, 8)] {
        let b = 32, d = 32, c = heads * d
        let qkv = leaf(randn([b, tokens, 3 * c]))
        let g = randn([b, tokens, c])
        let scale = 1 / Float(d).squareRoot()
        var cpu = [[Double]](repeating: [], count: 2)
        func run(_ packed: Bool) -> () -> Void {
            {
                let c0 = cpuNow()
                qkv.zeroGrad()
                let y: Tensor
                if packed {
                    y = Tensor.packedSelfAttention(qkv: qkv, heads: heads, scale: scale)
                } else {
                    let t = qkv.reshaped([b, tokens, 3, heads, d]).permuted([2, 0, 3, 1, 4])
                    let o = Tensor.scaledDotProductAttention(query: t.select(axis: 0, index: 0), key: t.select(axis: 0, index: 1),
                                                             value: t.select(axis: 0, index: 2), scale: scale)
                    y = o.permuted([0, 2, 1, 3]).reshaped([b, tokens, c])
                }
                y.backward(gradient: g)
                cpu[packed ? 0 : 1].append(cpuNow() - c0)
            }
        }
        let t = interleavedMedians(reps: tokens > 500 ? 7 : 11, [run(true), run(false)])
        let cm = cpu.map { $0.sorted()[$0.count / 2] / Double(Parallel.threads) }
        print(pad(name, 30) + lpad(f2(t[0] * 1e3), 11) + lpad(f2(cm[0] * 1e3), 8) + lpad(f2(t[1] * 1e3), 11) + lpad(f2(cm[1] * 1e3), 8)
              + lpad(f2(t[0] / t[1]), 8))
    }
    print("")
}

if wants("attention") {
    print("## PVT-Tiny attention over the reduced grid (Tensor.packedAttention: query [B, N, C], key-value [B, M, 2C]),")
    print("forward + backward, batch 32, head dim 64, against the permute/select composition; columns as above.")
    print(pad("stage", 30) + lpad("packed ms", 11) + lpad("cpu ms", 8) + lpad("copies ms", 11) + lpad("cpu ms", 8) + lpad("ratio", 8))
    for (name, n, m, heads) in [("stage 1: 3136 → 49 tokens, 1 head", 3136, 49, 1), ("stage 2: 784 → 49 tokens, 2 heads", 784, 49, 2),
                                ("stage 3: 196 → 49 tokens, 5 heads", 196, 49, 5)] {
        let b = 32, d = 64, c = heads * d
        let q = leaf(randn([b, n, c])), kv = leaf(randn([b, m, 2 * c]))
        let g = randn([b, n, c])
        let scale = 1 / Float(d).squareRoot()
        var cpu = [[Double]](repeating: [], count: 2)
        func run(_ packed: Bool) -> () -> Void {
            {
                let c0 = cpuNow()
                q.zeroGrad(); kv.zeroGrad()
                let y: Tensor
                if packed {
                    y = Tensor.packedAttention(query: q, keyValue: kv, heads: heads, scale: scale)
                } else {
                    let qh = q.reshaped([b, n, heads, d]).permuted([0, 2, 1, 3])
                    let t = kv.reshaped([b, m, 2, heads, d]).permuted([2, 0, 3, 1, 4])
                    let o = Tensor.scaledDotProductAttention(query: qh, key: t.select(axis: 0, index: 0), value: t.select(axis: 0, index: 1),
                                                             scale: scale)
                    y = o.permuted([0, 2, 1, 3]).reshaped([b, n, c])
                }
                y.backward(gradient: g)
                cpu[packed ? 0 : 1].append(cpuNow() - c0)
            }
        }
        let t = interleavedMedians(reps: 9, [run(true), run(false)])
        let cm = cpu.map { $0.sorted()[$0.count / 2] / Double(Parallel.threads) }
        print(pad(name, 30) + lpad(f2(t[0] * 1e3), 11) + lpad(f2(cm[0] * 1e3), 8) + lpad(f2(t[1] * 1e3), 11) + lpad(f2(cm[1] * 1e3), 8)
              + lpad(f2(t[0] / t[1]), 8))
    }
    print("")
}

// MARK: - MLP

if wants("mlp") {
    print("## transformer MLP fc1 → GELU → fc2, forward + backward, PiT-Ti stages (batch 32, ratio 4)")
    print("fused: Tensor.mlp (one tape entry, GELU output recomputed in backward); composed: linear → gelu → linear.")
    print("ms: median wall clock of interleaved runs; cpu ms: median process CPU time ÷ threads.")
    print(pad("stage", 34) + lpad("fused ms", 10) + lpad("cpu ms", 8) + lpad("composed ms", 13) + lpad("cpu ms", 8) + lpad("ratio", 8))
    for (name, rows, dim) in [("stage 1: 32×730 rows, 64 → 256", 32 * 730, 64), ("stage 2: 32×197 rows, 128 → 512", 32 * 197, 128),
                              ("stage 3: 32×50 rows, 256 → 1024", 32 * 50, 256)] {
        let x = leaf(randn([rows, dim])), w1 = leaf(randn([4 * dim, dim], std: 0.1)), b1 = leaf(randn([4 * dim], std: 0.1))
        let w2 = leaf(randn([dim, 4 * dim], std: 0.1)), b2 = leaf(randn([dim], std: 0.1))
        let g = randn([rows, dim])
        var cpu = [[Double]](repeating: [], count: 2)
        func run(_ fused: Bool) -> () -> Void {
            {
                let c0 = cpuNow()
                for t in [x, w1, b1, w2, b2] { t.zeroGrad() }
                let y = fused ? Tensor.mlp(x, fc1Weight: w1, fc1Bias: b1, fc2Weight: w2, fc2Bias: b2, approximate: .tanh)
                    : Tensor.linear(Tensor.linear(x, weight: w1, bias: b1).gelu(), weight: w2, bias: b2)
                y.backward(gradient: g)
                cpu[fused ? 0 : 1].append(cpuNow() - c0)
            }
        }
        let t = interleavedMedians(reps: rows > 10_000 ? 9 : 15, [run(true), run(false)])
        let c = cpu.map { $0.sorted()[$0.count / 2] / Double(Parallel.threads) }
        print(pad(name, 34) + lpad(f2(t[0] * 1e3), 10) + lpad(f2(c[0] * 1e3), 8) + lpad(f2(t[1] * 1e3), 13) + lpad(f2(c[1] * 1e3), 8)
              + lpad(f2(t[0] / t[1]), 8))
    }
    print("")
}

print("BLAS threads after the run: \(BLASRuntime.threads); load average at the end: \(loadAverage())")
