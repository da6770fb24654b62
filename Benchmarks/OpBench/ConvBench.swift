// opbench --conv: the convolution shapes of Visformer-Ti, PiT-Ti and PVT-Tiny at 224 (forward at batch 1,
// forward and forward + backward at batch 32), in milliseconds: median wall clock and median process
// CPU time ÷ threads.
import Foundation
import Tensor

struct ConvShape {
    let name: String, inC: Int, outC: Int, side: Int, kernel: Int, stride: Int, pad: Int, groups: Int
    /// How many times the model runs this conv per image.
    let uses: Int
}

let convShapes: [ConvShape] = [
    ConvShape(name: "visformer stem 7x7/2", inC: 3, outC: 16, side: 224, kernel: 7, stride: 2, pad: 3, groups: 1, uses: 1),
    ConvShape(name: "visformer patch1 4x4/4", inC: 16, outC: 96, side: 112, kernel: 4, stride: 4, pad: 0, groups: 1, uses: 1),
    ConvShape(name: "visformer s1 conv1 1x1", inC: 96, outC: 192, side: 28, kernel: 1, stride: 1, pad: 0, groups: 1, uses: 7),
    ConvShape(name: "visformer s1 conv2 3x3 g8", inC: 192, outC: 192, side: 28, kernel: 3, stride: 1, pad: 1, groups: 8, uses: 7),
    ConvShape(name: "visformer s1 conv3 1x1", inC: 192, outC: 96, side: 28, kernel: 1, stride: 1, pad: 0, groups: 1, uses: 7),
    ConvShape(name: "visformer patch2 2x2/2", inC: 96, outC: 192, side: 28, kernel: 2, stride: 2, pad: 0, groups: 1, uses: 1),
    ConvShape(name: "visformer s2 q/k/v 1x1", inC: 192, outC: 192, side: 14, kernel: 1, stride: 1, pad: 0, groups: 1, uses: 12),
    ConvShape(name: "visformer s2 mlp1 1x1", inC: 192, outC: 768, side: 14, kernel: 1, stride: 1, pad: 0, groups: 1, uses: 4),
    ConvShape(name: "visformer s2 mlp3 1x1", inC: 768, outC: 192, side: 14, kernel: 1, stride: 1, pad: 0, groups: 1, uses: 4),
    ConvShape(name: "visformer patch3 2x2/2", inC: 192, outC: 384, side: 14, kernel: 2, stride: 2, pad: 0, groups: 1, uses: 1),
    ConvShape(name: "visformer s3 q/k/v 1x1", inC: 384, outC: 384, side: 7, kernel: 1, stride: 1, pad: 0, groups: 1, uses: 12),
    ConvShape(name: "visformer s3 mlp1 1x1", inC: 384, outC: 1536, side: 7, kernel: 1, stride: 1, pad: 0, groups: 1, uses: 4),
    ConvShape(name: "visformer s3 mlp3 1x1", inC: 1536, outC: 384, side: 7, kernel: 1, stride: 1, pad: 0, groups: 1, uses: 4),
    ConvShape(name: "pit patch 16x16/8", inC: 3, outC: 64, side: 224, kernel: 16, stride: 8, pad: 0, groups: 1, uses: 1),
    ConvShape(name: "pit pool1 dw 3x3/2", inC: 64, outC: 128, side: 27, kernel: 3, stride: 2, pad: 1, groups: 64, uses: 1),
    ConvShape(name: "pit pool2 dw 3x3/2", inC: 128, outC: 256, side: 14, kernel: 3, stride: 2, pad: 1, groups: 128, uses: 1),
    ConvShape(name: "pvt patch1 4x4/4", inC: 3, outC: 64, side: 224, kernel: 4, stride: 4, pad: 0, groups: 1, uses: 1),
    ConvShape(name: "pvt sr1 8x8/8", inC: 64, outC: 64, side: 56, kernel: 8, stride: 8, pad: 0, groups: 1, uses: 2),
    ConvShape(name: "pvt patch2 2x2/2", inC: 64, outC: 128, side: 56, kernel: 2, stride: 2, pad: 0, groups: 1, uses: 1),
    ConvShape(name: "pvt sr2 4x4/4", inC: 128, outC: 128, side: 28, kernel: 4, stride: 4, pad: 0, groups: 1, uses: 2),
    ConvShape(name: "pvt patch3 2x2/2", inC: 128, outC: 320, side: 28, kernel: 2, stride: 2, pad: 0, groups: 1, uses: 1),
    ConvShape(name: "pvt sr3 2x2/2", inC: 320, outC: 320, side: 14, kernel: 2, stride: 2, pad: 0, groups: 1, uses: 2),
    ConvShape(name: "pvt patch4 2x2/2", inC: 320, outC: 512, side: 14, kernel: 2, stride: 2, pad: 0, groups: 1, uses: 1),
]

func runConvSection(filter: String?) {
    print("## convolutions (ms; cpu: median process CPU time ÷ threads; ×uses: per-image total of the model;")
    print("   f+b: forward and backward, the input gradient only for convs not on the 3-channel image)")
    print(pad("shape", 28) + lpad("b1 fwd", 8) + lpad("cpu", 7) + lpad("×uses", 7) + lpad("b32 fwd", 9) + lpad("cpu", 8)
          + lpad("b32 f+b", 9) + lpad("cpu", 8) + lpad("GFLOP/s", 9))
    var totals: [String: (Double, Double, Double)] = [:]
    // shapes that take the direct kernel run again through im2col + GEMM or the scalar depthwise loops
    // (stride-1 grouped ones also with only the weight gradient through im2col + GEMM), for comparison
    let runs = convShapes.filter { filter.map($0.name.contains) ?? true }.flatMap { s -> [(ConvShape, Bool, Bool)] in
        guard Tensor.convUsesDirectKernel(inChannels: s.inC, outChannels: s.outC, kernel: s.kernel, stride: s.stride, padding: s.pad,
                                          groups: s.groups) else { return [(s, true, true)] }
        let grouped = s.stride == 1 && s.groups > 1 && s.groups < s.inC
        return grouped ? [(s, true, true), (s, true, false), (s, false, false)] : [(s, true, true), (s, false, false)]
    }
    for (s, direct, directWeightGradient) in runs {
        Conv2dOptions.directKernel = direct
        Conv2dOptions.directWeightGradient = directWeightGradient
        defer { Conv2dOptions.directKernel = true; Conv2dOptions.directWeightGradient = true }
        let w = leaf(randn([s.outC, s.inC / s.groups, s.kernel, s.kernel], std: 0.1))
        func conv(_ x: Tensor) -> Tensor {
            Tensor.conv2d(x, weight: w, bias: nil, stride: (s.stride, s.stride), padding: (s.pad, s.pad), groups: s.groups)
        }
        let x1 = randn([1, s.inC, s.side, s.side])
        let b1 = median(reps: 21) { _ = withNoGrad { conv(x1) } }
        let b1CPU = lastCPUPerThread
        // convs on the image (3 channels) need no input gradient, as in the models
        let x32 = s.inC == 3 ? randn([32, s.inC, s.side, s.side]) : leaf(randn([32, s.inC, s.side, s.side]))
        let f32 = median(reps: 7) { _ = withNoGrad { conv(x32) } }
        let f32CPU = lastCPUPerThread
        let y = conv(x32)
        let g = randn(y.shape)
        let fb = median(reps: 7) {
            x32.zeroGrad(); w.zeroGrad()
            conv(x32).backward(gradient: g)
        }
        let fbCPU = lastCPUPerThread
        let macs = Double(y.count) * Double(s.inC / s.groups * s.kernel * s.kernel)
        let model = String(s.name.prefix { $0 != " " })
        if direct && directWeightGradient {
            let t = totals[model] ?? (0, 0, 0)
            totals[model] = (t.0 + b1 * Double(s.uses), t.1 + f32 * Double(s.uses), t.2 + fb * Double(s.uses))
        }
        print(pad(direct && directWeightGradient ? s.name : direct ? "  (dW: im2col + GEMM)" : s.groups == s.inC ? "  (scalar depthwise loops)" : "  (im2col + GEMM)", 28) + lpad(f2(b1 * 1e3), 8) + lpad(f2(b1CPU * 1e3), 7) + lpad(f2(b1 * 1e3 * Double(s.uses)), 7)
              + lpad(f2(f32 * 1e3), 9) + lpad(f2(f32CPU * 1e3), 8) + lpad(f2(fb * 1e3), 9) + lpad(f2(fbCPU * 1e3), 8)
              + lpad(f1(Double(s.inC == 3 ? 4 : 6) * macs / fb / 1e9), 9))
    }
    for (model, t) in totals.sorted(by: { $0.key < $1.key }) {
        print("total \(model) per image ×uses: b1 fwd \(f2(t.0 * 1e3)) ms, b32 fwd \(f2(t.1 * 1e3)) ms, b32 f+b \(f2(t.2 * 1e3)) ms")
    }
    print("")
}
