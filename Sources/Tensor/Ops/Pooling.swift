import Foundation

// Average pooling (fixed window) and adaptive average pooling over NCHW.

extension Tensor {
    /// Average pooling with a k×k window. Padded positions count in the divisor when
    /// `countIncludePad` (PyTorch's default).
    public static func avgPool2d(_ x: Tensor, kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                                 countIncludePad: Bool = true) -> Tensor {
        let s = stride ?? kernel
        let n = x.shape[0], c = x.shape[1], ih = x.shape[2], iw = x.shape[3]
        let oh = (ih + 2 * padding.0 - kernel.0) / s.0 + 1, ow = (iw + 2 * padding.1 - kernel.1) / s.1 + 1
        var windows: [(Int, Int, Int, Int, Float)] = []  // y0, y1, x0, x1, 1/divisor
        for oy in 0..<oh {
            for ox in 0..<ow {
                let y0 = oy * s.0 - padding.0, x0 = ox * s.1 - padding.1
                let y1 = y0 + kernel.0, x1 = x0 + kernel.1
                let cy0 = Swift.max(y0, 0), cy1 = Swift.min(y1, ih), cx0 = Swift.max(x0, 0), cx1 = Swift.min(x1, iw)
                let div = countIncludePad ? kernel.0 * kernel.1 : (cy1 - cy0) * (cx1 - cx0)
                windows.append((cy0, cy1, cx0, cx1, 1 / Float(div)))
            }
        }
        return pool(x, windows: windows, outH: oh, outW: ow, op: "avg_pool2d",
                    attributes: ["kernel": .ints([kernel.0, kernel.1]), "stride": .ints([s.0, s.1]),
                                 "padding": .ints([padding.0, padding.1]), "countIncludePad": .bool(countIncludePad)])
    }

    /// Adaptive average pooling to `output` (PyTorch's window rule: start = ⌊i·H/out⌋,
    /// end = ⌈(i+1)·H/out⌉).
    public static func adaptiveAvgPool2d(_ x: Tensor, output: (Int, Int)) -> Tensor {
        let ih = x.shape[2], iw = x.shape[3]
        var windows: [(Int, Int, Int, Int, Float)] = []
        for oy in 0..<output.0 {
            let y0 = oy * ih / output.0, y1 = ((oy + 1) * ih + output.0 - 1) / output.0
            for ox in 0..<output.1 {
                let x0 = ox * iw / output.1, x1 = ((ox + 1) * iw + output.1 - 1) / output.1
                windows.append((y0, y1, x0, x1, 1 / Float((y1 - y0) * (x1 - x0))))
            }
        }
        return pool(x, windows: windows, outH: output.0, outW: output.1, op: "adaptive_avg_pool2d", attributes: [:])
    }

    static func pool(_ x: Tensor, windows: [(Int, Int, Int, Int, Float)], outH: Int, outW: Int, op: String,
                     attributes: @autoclosure () -> OpAttributes) -> Tensor {
        precondition(x.rank == 4, "\(op): input \(x.shape) must be [N, C, H, W]")
        let n = x.shape[0], c = x.shape[1], ih = x.shape[2], iw = x.shape[3]
        let out = Tensor(uninitializedShape: [n, c, outH, outW])
        let px = x.storage.pointer.sendable, po = out.storage.pointer.sendable
        let wins = windows
        Parallel.forRange(n * c, grain: 64) { r in
            for plane in r {
                let src = px + plane * ih * iw, dst = po + plane * outH * outW
                for (k, w) in wins.enumerated() {
                    var s: Float = 0
                    for y in w.0..<w.1 { for xx in w.2..<w.3 { s += src[y * iw + xx] } }
                    dst[k] = s * w.4
                }
            }
        }
        let inShape = x.shape
        return record(op, out, inputs: [x], attributes: attributes()) { g in
            let dx = Tensor.zeros(inShape)
            let pg = g.storage.pointer.sendable, pd = dx.storage.pointer.sendable
            Parallel.forRange(n * c, grain: 64) { r in
                for plane in r {
                    let gs = pg + plane * outH * outW, dst = pd + plane * ih * iw
                    for (k, w) in wins.enumerated() {
                        let v = gs[k] * w.4
                        for y in w.0..<w.1 { for xx in w.2..<w.3 { dst[y * iw + xx] += v } }
                    }
                }
            }
            return [dx]
        }
    }
}
