// databench — release benchmark of the data pipeline.
//
//   swift run -c release databench [--quick]
//
// 1. The full MindCV training transform on one thread: decode a 500x375 JPEG (libjpeg-turbo),
//    RandomResizedCrop to 224 (bicubic), horizontal flip, RandAugment m9, random erasing, normalise.
//    Target: ≥ 150 images/s per worker thread. Median of several repeats.
// 2. Each stage on its own, for orientation.
// 3. A 2-worker DataLoader over in-memory JPEGs (batch 32).
import Foundation
import Tensor

import DataPipeline

let quick = CommandLine.arguments.contains("--quick")
let repeats = quick ? 3 : 7
let imagesPerRepeat = quick ? 60 : 200

/// Gradients, a few shapes and noise: compresses and decodes like a photo rather than like noise.
func naturalImage(width: Int, height: Int, seed: UInt64) -> RGBImage {
    var rng = RandomGenerator(seed: seed)
    let cx = Double(rng.nextInt(below: width)), cy = Double(rng.nextInt(below: height))
    return RGBImage(width: width, height: height) { p in
        for y in 0..<height {
            for x in 0..<width {
                let dx = Double(x) - cx, dy = Double(y) - cy
                let r = (dx * dx + dy * dy).squareRoot()
                let disc = r < Double(min(width, height)) / 4 ? 60.0 : 0.0
                let noise = Double(rng.next() % 24) - 12
                let i = (y * width + x) * 3
                p[i] = UInt8(max(0, min(255, 40 + 150 * Double(x) / Double(width) + disc + noise)))
                p[i + 1] = UInt8(max(0, min(255, 60 + 120 * Double(y) / Double(height) + 0.5 * disc + noise)))
                p[i + 2] = UInt8(max(0, min(255, 90 + 80 * sin(Double(x + y) / 40) + noise)))
            }
        }
    }
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Seconds of CPU time used by the calling thread (or the whole process).
func cpuSeconds(process: Bool = false) -> Double {
    var t = timespec()
    clock_gettime(process ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

func wallSeconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Images per second of `body` run `count` times, median over `repeats`: by the wall clock and by the
/// thread's CPU time (which stays meaningful when other processes share the cores).
func rate(_ count: Int, _ body: (Int) -> Void) -> (wall: Double, cpu: Double) {
    body(0)  // warm-up
    var wall: [Double] = [], cpu: [Double] = []
    for _ in 0..<repeats {
        let w0 = wallSeconds(), c0 = cpuSeconds()
        for i in 0..<count { body(i) }
        wall.append(Double(count) / (wallSeconds() - w0))
        cpu.append(Double(count) / (cpuSeconds() - c0))
    }
    return (median(wall), median(cpu))
}

func line(_ label: String, _ r: (wall: Double, cpu: Double)) {
    print(label.padding(toLength: 58, withPad: " ", startingAt: 0)
          + String(format: "%8.1f images/s wall  %8.1f per CPU-second  (%.2f ms CPU)", r.wall, r.cpu, 1000 / r.cpu))
}

do {
    let source = naturalImage(width: 500, height: 375, seed: 1)
    let jpeg = try ImageEncoder.jpeg(source, quality: 90)
    print("databench: 500x375 JPEG (\(jpeg.count) bytes), 224x224 output, \(repeats) repeats x \(imagesPerRepeat) images")

    let full = try TrainTransform(imageSize: 224, interpolation: .bicubic, hflip: 0.5,
                                  autoAugment: "randaug-m9-mstd0.5-inc1", reProb: 0.25, reValue: .random)
    let fullAlwaysErase = try TrainTransform(imageSize: 224, interpolation: .bicubic, hflip: 0.5,
                                             autoAugment: "randaug-m9-mstd0.5", reProb: 1, reValue: .random)
    let decoder = ImageDecoder()
    let output = UnsafeMutablePointer<Float>.allocate(capacity: 3 * 224 * 224)
    defer { output.deallocate() }

    func fullTransform(_ transform: TrainTransform) -> (Int) -> Void {
        { i in
            var rng = DataSeeds.generator(42, epoch: 0, position: i, stream: .transform)
            let image = try! decoder.decode(jpeg)
            transform.apply(image, rng: &rng, into: output)
        }
    }
    let headline = rate(imagesPerRepeat, fullTransform(full))
    line("full transform, 1 thread (randaug-m9-inc1, re_prob 0.25)", headline)
    line("full transform, 1 thread (randaug-m9, re_prob 1)", rate(imagesPerRepeat, fullTransform(fullAlwaysErase)))

    print("stages:")
    line("  decode 500x375 JPEG", rate(imagesPerRepeat) { _ in _ = try! decoder.decode(jpeg) })
    let crop = try RandomResizedCrop(size: 224, interpolation: .bicubic)
    line("  RandomResizedCrop 224 bicubic", rate(imagesPerRepeat) { i in
        var rng = RandomGenerator(seed: UInt64(i))
        _ = crop.apply(source, rng: &rng)
    })
    let cropped = source.resized(width: 224, height: 224, interpolation: .bicubic)
    let policy = try AutoAugmentPolicy("randaug-m9-mstd0.5", interpolation: .bicubic)
    line("  RandAugment m9 n2 (224x224)", rate(imagesPerRepeat) { i in
        var rng = RandomGenerator(seed: UInt64(i))
        var image = cropped
        policy.apply(to: &image, rng: &rng)
    })
    line("  rotate 224x224 bicubic", rate(imagesPerRepeat) { _ in
        _ = cropped.rotated(degrees: 17, interpolation: .bicubic, fill: (124, 116, 104))
    })
    let normalization = try Normalization()
    line("  normalise + CHW", rate(imagesPerRepeat) { _ in normalization.write(cropped, into: output) })
    let erasing = try RandomErasing(probability: 1, value: .random)
    line("  random erasing (p = 1, random fill)", rate(imagesPerRepeat) { i in
        var rng = RandomGenerator(seed: UInt64(i))
        erasing.apply(to: output, width: 224, height: 224, rng: &rng)
    })

    var digit = [UInt8](repeating: 0, count: 28 * 28)
    for i in 0..<digit.count { digit[i] = UInt8((i * 37 + (i / 28) * 11) % 256) }
    line("  encode 28x28 grayscale PNG (fashion-mnist converter)", rate(imagesPerRepeat * 20) { _ in
        _ = try! ImageEncoder.png(pixels: digit, width: 28, height: 28, channels: 1)
    })

    // Loader throughput with 2 workers.
    let variants = 32
    var encoded: [[UInt8]] = []
    for v in 0..<variants {
        encoded.append(try ImageEncoder.jpeg(naturalImage(width: 500, height: 375, seed: UInt64(v + 2)), quality: 90))
    }
    let dataset = InMemoryDataset(encoded: encoded, labels: (0..<variants).map { $0 % 4 }, classes: ["a", "b", "c", "d"])
    let samples = quick ? 128 : 384
    let repeated = InMemoryDataset(encoded: (0..<samples).map { encoded[$0 % variants] },
                                   labels: (0..<samples).map { dataset.labels[$0 % variants] }, classes: dataset.classes)
    let mixup = try MixupCutmix(mixupAlpha: 0.8, cutmixAlpha: 1.0, numClasses: 4)
    for workers in [1, 2] {
        let loader = try DataLoader(dataset: repeated, transform: full,
                                    options: LoaderOptions(batchSize: 32, numParallelWorkers: workers, prefetchBatches: 2, seed: 1),
                                    mixup: mixup)
        var wall: [Double] = [], cpu: [Double] = []
        for epoch in 0..<(quick ? 2 : 3) {
            let c0 = cpuSeconds(process: true)
            let it = loader.epoch(epoch)
            var n = 0
            while let batch = try it.next() { n += batch.count }
            wall.append(it.summary.imagesPerSecond)
            cpu.append(Double(n) / (cpuSeconds(process: true) - c0))
            precondition(n == loader.batchesPerEpoch * 32)
        }
        line("DataLoader, \(workers) worker\(workers == 1 ? "" : "s"), batch 32, mixup/cutmix", (median(wall), median(cpu)))
    }
    var load = [Double](repeating: 0, count: 3)
    if getloadavg(&load, 3) > 0 {
        print(String(format: "load average during the run: %.2f (on %d cores)", load[0], ProcessInfo.processInfo.activeProcessorCount))
    }
    print(String(format: "per-worker-thread target 150 images/s: %@ (%.1f wall, %.1f per CPU-second)",
                 min(headline.wall, headline.cpu) >= 150 ? "met" : (headline.cpu >= 150 ? "met by CPU time" : "NOT met"),
                 headline.wall, headline.cpu))
} catch {
    print("databench failed: \(error)")
    exit(1)
}
