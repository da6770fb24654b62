import Tensor

// BatchNorm folded into a neighbouring convolution for inference. In evaluation mode BatchNorm is the
// per-channel affine map y = s·x + t with s = γ/√(running_var + eps), t = β − running_mean·s, so
//   BN(conv(x))  = conv'(x) with W'[o] = s[o]·W[o], b'[o] = s[o]·b[o] + t[o]       (any conv), and
//   conv(BN(x))  = conv'(x) with W'[o, c] = W[o, c]·s[c], b'[o] = b[o] + Σ_c W[o, c]·t[c]   (1×1, no padding),
// which saves a pass over the activation. Folding happens only when nothing is recorded for backward
// (no tape, the module in eval mode) and no op tracer is installed (the ONNX export sees the layers as
// they are); otherwise the two layers run as written. Training numerics are untouched.

extension BatchNorm2d {
    /// (s, t) of the evaluation-mode affine map, when it may be folded: eval mode, recording off, no tracer.
    func foldableAffine() -> (scale: [Float], shift: [Float])? {
        guard !state.training, !GradMode.isEnabled, OpTrace.current == nil else { return nil }
        let c = weight.value.count
        let g = weight.value.storage.pointer, b = bias.value.storage.pointer
        let m = runningMean.value.storage.pointer, v = runningVar.value.storage.pointer
        var scale = [Float](repeating: 0, count: c), shift = [Float](repeating: 0, count: c)
        for k in 0..<c {
            let r = 1 / (v[k] + eps).squareRoot()
            scale[k] = r * g[k]; shift[k] = b[k] - m[k] * r * g[k]
        }
        return withExtendedLifetime((weight, bias, runningMean, runningVar)) { (scale, shift) }
    }
}

extension Conv2d {
    /// `norm(self(x))`, folded when `norm.foldableAffine()` allows.
    public func followed(by norm: BatchNorm2d, _ x: Tensor) -> Tensor {
        guard let (s, t) = norm.foldableAffine() else { return norm(self(x)) }
        let w0 = weight.value, o = w0.shape[0], per = w0.count / o
        let w = Tensor(uninitializedShape: w0.shape), b = Tensor(uninitializedShape: [o])
        let src = w0.storage.pointer, dst = w.storage.pointer, pb = b.storage.pointer
        let b0 = bias?.value.storage.pointer
        for r in 0..<o {
            for k in 0..<per { dst[r * per + k] = src[r * per + k] * s[r] }
            pb[r] = (b0?[r] ?? 0) * s[r] + t[r]
        }
        return withExtendedLifetime((w0, bias)) {
            Tensor.conv2d(x, weight: w, bias: b, stride: stride, padding: padding, groups: groups)
        }
    }

    /// Weight and bias of `self(norm(x))` as one convolution, for a 1×1 convolution without padding
    /// or groups, when `norm.foldableAffine()` allows; nil otherwise (run `self(norm(x))`).
    public func folded(after norm: BatchNorm2d) -> (weight: Tensor, bias: Tensor)? {
        let w0 = weight.value
        guard w0.shape[2] == 1 && w0.shape[3] == 1 && padding == (0, 0) && groups == 1,
              let (s, t) = norm.foldableAffine() else { return nil }
        let o = w0.shape[0], c = w0.shape[1]
        let w = Tensor(uninitializedShape: w0.shape), b = Tensor(uninitializedShape: [o])
        let src = w0.storage.pointer, dst = w.storage.pointer, pb = b.storage.pointer
        let b0 = bias?.value.storage.pointer
        for r in 0..<o {
            var acc: Float = b0?[r] ?? 0
            for k in 0..<c {
                let v = src[r * c + k]
                dst[r * c + k] = v * s[k]
                acc += v * t[k]
            }
            pb[r] = acc
        }
        return withExtendedLifetime((w0, bias)) { (w, b) }
    }

    /// `self(norm(x))`, folded when `folded(after:)` allows.
    public func preceded(by norm: BatchNorm2d, _ x: Tensor) -> Tensor {
        guard let (w, b) = folded(after: norm) else { return self(norm(x)) }
        return Tensor.conv2d(x, weight: w, bias: b, stride: stride)
    }
}
