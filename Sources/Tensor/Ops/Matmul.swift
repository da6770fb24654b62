import CBLAS
import Foundation

// Matrix products through cblas_sgemm. Transposes are BLAS flags, never copies; gradients of
// shared operands accumulate with beta = 1.

/// C = alpha·op(A)·op(B) + beta·C for row-major A, B, C.
@inline(__always)
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    MACCounter.add(m * n * k)
    let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
    let chunks = Parallel.threads
    // A large product outside a single-threaded region is split into row (or column) panels of C,
    // one single-threaded sgemm per engine thread. OpenBLAS's own threading does the same split but
    // its idle workers spin (sched_yield) for ~0.1 s after every call, competing with the engine's
    // element-wise kernels for the cores; the engine's threads block instead. Very large products
    // (≥ 2^32 multiply-adds, tens of ms) stay with OpenBLAS: there its own threading is faster (2048³:
    // 0.76 of direct sgemm when split) and its spin is amortised.
    let macs = m * n * k
    let splits = chunks > 1 && gemmSplitEnabled && macs >= gemmSplitMinimum && macs < gemmSplitMaximum && !BLASRuntime.inSingleThreadedRegion
    if splits && k >= gemmSplitDepthRatio * Swift.max(m, n) && k >= 256 * chunks {
        // A reduction much longer than C is wide and tall (weight gradients over a batch's tokens or
        // positions): each thread takes a slice of k, the first onto C itself, the others into
        // scratch that is added after. Split by rows or columns, every thread would pack the whole
        // long operand (visformer_tiny's stage-2 dW: 4.7 ms against 5.4 by OpenBLAS's threads).
        let partial = Tensor(uninitializedShape: [(chunks - 1) * m * n])
        let pa = UnsafeMutablePointer(mutating: a).sendable, pb = UnsafeMutablePointer(mutating: b).sendable
        let pc = c.sendable, pp = partial.storage.pointer.sendable
        BLASRuntime.withSingleThreadedBLAS {
            Parallel.forEach(chunks) { ch in
                let lo = (k * ch / chunks) / 16 * 16
                let hi = ch == chunks - 1 ? k : (k * (ch + 1) / chunks) / 16 * 16
                let ap = transA ? pa + lo * lda : pa + lo, bp = transB ? pb + lo : pb + lo * ldb
                if ch == 0 {
                    cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(hi - lo), alpha, ap, Int32(lda), bp, Int32(ldb), beta,
                                pc.base, Int32(ldc))
                } else {
                    cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(hi - lo), alpha, ap, Int32(lda), bp, Int32(ldb), 0,
                                pp + (ch - 1) * m * n, Int32(n))
                }
            }
        }
        Parallel.forRange(m, grain: Swift.max(1, 16_384 / n)) { rows in
            for i in rows {
                let dst = pc + i * ldc
                for ch in 1..<chunks { let src = pp + (ch - 1) * m * n + i * n; for j in 0..<n { dst[j] += src[j] } }
            }
        }
        withExtendedLifetime(partial) {}
        return
    }
    if splits && (m >= 64 * chunks || n >= 64 * chunks) {
        // By rows, unless C is short and much wider than tall: then each thread's few rows would
        // not amortise its packing of the whole wide operand (Visformer's stage-2 products, 192 rows
        // and 6,272 columns: 10-12% faster by columns on AVX-512, 2-4% on AVX2). Tall products stay
        // split by rows (vit_b_32's 1,600 × 2,304 qkv: 4% slower by columns).
        let splitRows = m >= 64 * chunks && (m >= n || m > 192 * chunks || n < 64 * chunks)
        let total = splitRows ? m : n
        let pa = UnsafeMutablePointer(mutating: a).sendable, pb = UnsafeMutablePointer(mutating: b).sendable
        let pc = c.sendable
        BLASRuntime.withSingleThreadedBLAS {
            Parallel.forEach(chunks) { ch in
                // panel edges on multiples of 16 (whole register tiles)
                let lo = (total * ch / chunks) / 16 * 16
                let hi = ch == chunks - 1 ? total : (total * (ch + 1) / chunks) / 16 * 16
                if hi <= lo { return }
                if splitRows {
                    let ap = transA ? pa + lo : pa + lo * lda
                    cblas_sgemm(CblasRowMajor, ta, tb, Int32(hi - lo), Int32(n), Int32(k), alpha, ap, Int32(lda),
                                pb.base, Int32(ldb), beta, pc + lo * ldc, Int32(ldc))
                } else {
                    let bp = transB ? pb + lo * ldb : pb + lo
                    cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(hi - lo), Int32(k), alpha, pa.base, Int32(lda),
                                bp, Int32(ldb), beta, pc + lo, Int32(ldc))
                }
            }
        }
        return
    }
    let whole = { cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc)) }
    if chunks > 1 && gemmSplitEnabled && macs < gemmSplitMaximum && !BLASRuntime.inSingleThreadedRegion {
        // Too small or too thin to split: one thread. Left to OpenBLAS, products above its own
        // threshold (~2^18) would wake its workers, which then spin through the engine's next
        // element-wise kernels (14% of a PiT demo step's samples were their sched_yield).
        BLASRuntime.withSingleThreadedBLAS(whole)
    } else {
        whole()
    }
}

/// Products of at least this many multiply-adds are split across the engine's threads.
let gemmSplitMinimum = 1 << 21
/// Products whose depth k is at least this many times max(m, n) are split along k.
let gemmSplitDepthRatio = 4
/// Products of this many multiply-adds or more use OpenBLAS's own threads.
let gemmSplitMaximum = 1 << 32
/// `VITZOO_GEMM_SPLIT=0` leaves large products to OpenBLAS's threading.
nonisolated(unsafe) var gemmSplitEnabled: Bool = ProcessInfo.processInfo.environment["VITZOO_GEMM_SPLIT"] != "0"

/// A batch of row-major matrices: `count` matrices of `rows x cols`, `stride` floats apart
/// (0 when one matrix is broadcast over the batch).
struct MatrixBatch {
    var pointer: UnsafeMutablePointer<Float>
    var rows: Int, cols: Int, stride: Int
}

/// For each batch index: C = op(A)·op(B) + beta·C, with beta applied only on the first product
/// into a broadcast C (so a shared C accumulates over the batch).
///
/// Small products (below OpenBLAS's own threading threshold, e.g. attention heads) run one
/// single-threaded sgemm per engine thread; large ones run one after another on BLAS threads.
func batchedGemm(count: Int, transA: Bool, transB: Bool, a: MatrixBatch, b: MatrixBatch, c: MatrixBatch, beta: Float) {
    let m = transA ? a.cols : a.rows
    let k = transA ? a.rows : a.cols
    let n = transB ? b.rows : b.cols
    if count >= 2 && c.stride != 0 && Parallel.threads > 1 && m * n * k <= 4_000_000 {
        let pa = a.pointer.sendable, pb = b.pointer.sendable, pc = c.pointer.sendable
        BLASRuntime.withSingleThreadedBLAS {
            Parallel.forRange(count, grain: 1) { r in
                for i in r {
                    sgemm(transA: transA, transB: transB, m: m, n: n, k: k,
                          a: pa + i * a.stride, lda: a.cols, b: pb + i * b.stride, ldb: b.cols,
                          beta: beta, c: pc + i * c.stride, ldc: c.cols)
                }
            }
        }
        return
    }
    for i in 0..<count {
        let betaI: Float = (c.stride == 0 && i > 0) ? 1 : beta
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k,
              a: a.pointer + i * a.stride, lda: a.cols, b: b.pointer + i * b.stride, ldb: b.cols,
              beta: betaI, c: c.pointer + i * c.stride, ldc: c.cols)
    }
}

extension Tensor {
    /// Matrix product of the last two dimensions: op(a)·op(b) with op = transpose when asked.
    /// `a: [..., M, K]`, `b: [..., K, N]` (or `[K, N]`, broadcast over a's batch). Batch dimensions
    /// must match or one side must be a plain matrix.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank >= 2 && b.rank >= 2, "matmul needs rank >= 2, got \(a.shape) and \(b.shape)")
        let aBatch = Array(a.shape.dropLast(2)), bBatch = Array(b.shape.dropLast(2))
        let batchShape: [Int]
        if aBatch == bBatch || bBatch.isEmpty { batchShape = aBatch } else if aBatch.isEmpty { batchShape = bBatch } else {
            preconditionFailure("matmul: batch dimensions \(aBatch) and \(bBatch) differ")
        }
        let batch = batchShape.reduce(1, *)
        let (ar, ac) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
        let (br, bc) = (b.shape[b.rank - 2], b.shape[b.rank - 1])
        let m = transposeA ? ac : ar, k = transposeA ? ar : ac
        let kb = transposeB ? bc : br, n = transposeB ? br : bc
        precondition(k == kb, "matmul: inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") · \(b.shape)\(transposeB ? "ᵀ" : "")")
        let out = Tensor(uninitializedShape: batchShape + [m, n])
        let aStride = aBatch.isEmpty ? 0 : ar * ac, bStride = bBatch.isEmpty ? 0 : br * bc
        let A = MatrixBatch(pointer: a.storage.pointer, rows: ar, cols: ac, stride: aStride)
        let B = MatrixBatch(pointer: b.storage.pointer, rows: br, cols: bc, stride: bStride)
        let C = MatrixBatch(pointer: out.storage.pointer, rows: m, cols: n, stride: m * n)
        if bStride == 0 && !transposeA && batch > 1 {
            // fold a's batch into its rows: one large GEMM
            sgemm(transA: false, transB: transposeB, m: batch * m, n: n, k: k, a: A.pointer, lda: ac,
                  b: B.pointer, ldb: bc, c: C.pointer, ldc: n)
        } else {
            batchedGemm(count: batch, transA: transposeA, transB: transposeB, a: A, b: B, c: C, beta: 0)
        }
        let ad = a.node != nil, bd = b.node != nil
        let a0 = a.detached(), b0 = b.detached()
        return record("matmul", out, inputs: [a, b], attributes: ["transposeA": .bool(transposeA), "transposeB": .bool(transposeB)]) { g in
            let G = MatrixBatch(pointer: g.storage.pointer, rows: m, cols: n, stride: m * n)
            var da: Tensor? = nil, db: Tensor? = nil
            if ad {
                let t = Tensor(uninitializedShape: a0.shape)
                let D = MatrixBatch(pointer: t.storage.pointer, rows: ar, cols: ac, stride: aStride)
                if !transposeA {
                    // dA = dC · op(B)ᵀ
                    if bStride == 0 && batch > 1 {
                        sgemm(transA: false, transB: !transposeB, m: batch * m, n: k, k: n, a: g.storage.pointer, lda: n,
                              b: B.pointer, ldb: bc, c: t.storage.pointer, ldc: ac)
                    } else {
                        batchedGemm(count: batch, transA: false, transB: !transposeB, a: G, b: B, c: D, beta: 0)
                    }
                } else {
                    // dA = op(B) · dCᵀ
                    batchedGemm(count: batch, transA: transposeB, transB: true, a: B, b: G, c: D, beta: 0)
                }
                da = t
            }
            if bd {
                let t = Tensor(uninitializedShape: b0.shape)
                let D = MatrixBatch(pointer: t.storage.pointer, rows: br, cols: bc, stride: bStride)
                if bStride == 0 && !transposeA && batch > 1 {
                    // a's batch folded into rows: one GEMM sums over it
                    if !transposeB {
                        sgemm(transA: true, transB: false, m: k, n: n, k: batch * m, a: A.pointer, lda: ac,
                              b: g.storage.pointer, ldb: n, c: t.storage.pointer, ldc: bc)
                    } else {
                        sgemm(transA: true, transB: false, m: n, n: k, k: batch * m, a: g.storage.pointer, lda: n,
                              b: A.pointer, ldb: ac, c: t.storage.pointer, ldc: bc)
                    }
                } else if !transposeB {
                    // dB = op(A)ᵀ · dC
                    batchedGemm(count: batch, transA: !transposeA, transB: false, a: A, b: G, c: D, beta: 0)
                } else {
                    // dB = dCᵀ · op(A)
                    batchedGemm(count: batch, transA: true, transB: transposeA, a: G, b: A, c: D, beta: 0)
                }
                db = t
            }
            return [da, db]
        }
    }

    /// x·Wᵀ + b with `x: [..., in]`, `weight: [out, in]`, `bias: [out]`; one fused GEMM (the bias
    /// pre-fills the output and the GEMM accumulates onto it).
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let inF = weight.shape[1], outF = weight.shape[0]
        if let bias { precondition(bias.shape == [outF], "linear: bias \(bias.shape) for weight \(weight.shape)") }
        let rows = x.count / inF
        let out = linearProduct(x, weight: weight, bias: bias)
        let x0 = x.detached(), w0 = weight.detached()
        let xd = x.node != nil, wd = weight.node != nil
        var inputs = [x, weight]
        if let bias { inputs.append(bias) }
        let hasBias = bias != nil
        return record("linear", out, inputs: inputs) { g in
            let p = LinearGradients(g, rows: rows, weight: w0, input: x0, needInput: xd, needWeight: wd, needBias: hasBias)
            return [p.input, p.weight, p.bias]
        }
    }

    /// x·Wᵀ + b without recording: the bias is written first and the GEMM adds onto it (beta = 1).
    static func linearProduct(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        let inF = weight.shape[1], outF = weight.shape[0]
        precondition(x.shape.last == inF, "linear: input \(x.shape) does not end in \(inF) (weight \(weight.shape))")
        let rows = x.count / inF
        let out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF])
        let po = out.storage.pointer
        if let bias {
            let pb = bias.storage.pointer.sendable, pos = po.sendable
            Parallel.forRange(rows, grain: Swift.max(1, 32_768 / Swift.max(outF, 1))) { r in
                fillRows(pos + r.lowerBound * outF, rows: r.count, stride: outF, with: UnsafePointer(pb.base), outF)
            }
        }
        sgemm(transA: false, transB: true, m: rows, n: outF, k: inF, a: x.storage.pointer, lda: inF,
              b: weight.storage.pointer, ldb: inF, beta: bias == nil ? 0 : 1, c: po, ldc: outF)
        return out
    }
}

/// The gradients of y = x·Wᵀ + b from dy (`g`, `rows × out`): dx = g·W, dW = gᵀ·x, db = Σ_rows g,
/// each only when asked.
struct LinearGradients {
    var input: Tensor?, weight: Tensor?, bias: Tensor?

    init(_ g: Tensor, rows: Int, weight w: Tensor, input x: Tensor, needInput: Bool, needWeight: Bool, needBias: Bool) {
        let inF = w.shape[1], outF = w.shape[0]
        if needInput {
            let t = Tensor(uninitializedShape: x.shape)
            sgemm(transA: false, transB: false, m: rows, n: inF, k: outF, a: g.storage.pointer, lda: outF,
                  b: w.storage.pointer, ldb: inF, c: t.storage.pointer, ldc: inF)
            input = t
        }
        if needWeight {
            let t = Tensor(uninitializedShape: w.shape)
            sgemm(transA: true, transB: false, m: outF, n: inF, k: rows, a: g.storage.pointer, lda: outF,
                  b: x.storage.pointer, ldb: inF, c: t.storage.pointer, ldc: inF)
            weight = t
        }
        if needBias { bias = g.reshapedNoGrad([rows, outF]).sum(axes: [0]) }
    }
}
