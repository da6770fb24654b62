// swift-tools-version:6.0
import PackageDescription

import Foundation

// Release builds drop overflow and exclusivity checks in the numeric targets so that the
// counted loops over unsafe buffers vectorize; debug builds keep every check. They also target the
// build machine's vector extensions (like -march=native: vitzoo is built from source where it runs):
// skylake-avx512 (the x86-64-v4 set: AVX-512 F/BW/CD/DQ/VL) or haswell (x86-64-v3: AVX2 + FMA) when
// /proc/cpuinfo lists them, else baseline SSE2 (the clang importer does not take the x86-64-vN names).
// `VITZOO_TARGET_CPU=<llvm cpu>` overrides the choice (`VITZOO_TARGET_CPU=` for the baseline).
let targetCPU: [String] = {
    if let cpu = ProcessInfo.processInfo.environment["VITZOO_TARGET_CPU"] { return cpu.isEmpty ? [] : ["-target-cpu", cpu] }
    #if arch(x86_64) && os(Linux)
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    let flags = Set(line.split(separator: " ").map(String.init))
    if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma", "bmi2"]) {
        return ["-target-cpu", "skylake-avx512"]
    }
    if flags.isSuperset(of: ["avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"]) { return ["-target-cpu", "haswell"] }
    #endif
    return []
}()
// VITZOO_AVX512: kernels with explicit register tiles size them for 32 vector registers.
let avx512Flags: [String] = {
    guard let cpu = targetCPU.last else { return [] }
    let avx512 = ["skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client", "icelake-server", "tigerlake",
                  "sapphirerapids", "graniterapids", "emeraldrapids", "znver4", "znver5", "x86-64-v4"]
    return avx512.contains(cpu) ? ["-D", "VITZOO_AVX512"] : []
}()
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked"] + targetCPU + avx512Flags, .when(configuration: .release)),
]

let package = Package(
    name: "vitzoo",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "zoo", targets: ["Tools"]),
        .library(name: "Tensor", targets: ["Tensor"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "DataPipeline", targets: ["DataPipeline"]),
        .library(name: "Trainer", targets: ["Trainer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        // C libraries, each a small system-library target.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
                       providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        // OpenMPI's header only (types and constants): libmpi is loaded at run time by `--distribute`,
        // so no pkgConfig here (ompi-c would add -lmpi to zoo's link); see Sources/CMPI/shim.h.
        .systemLibrary(name: "CMPI", path: "Sources/CMPI",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),

        // Generated SwiftProtobuf code (committed; docs/protos.md): MindSpore .ckpt, ONNX, TensorBoard events.
        .target(name: "Protos", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
                path: "Sources/Protos", exclude: ["proto"]),

        // The one-way flow: CBLAS → Tensor → Models → Data/Trainer → Distributed → Tools.
        .target(name: "Tensor", dependencies: ["CBLAS"], swiftSettings: fast),
        .target(name: "Models", dependencies: ["Tensor", "Protos", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: fast),
        // `Data` would shadow Foundation's `Data` type, hence the module name.
        .target(name: "DataPipeline", dependencies: ["Tensor", "CTurboJPEG", "CPNG", "CZlib"],
                path: "Sources/Data", swiftSettings: fast),
        .target(name: "Trainer",
                dependencies: ["Tensor", "Models", "DataPipeline", "Protos", .product(name: "Yams", package: "Yams"),
                               .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: fast),
        // `Distributed` is the toolchain's distributed-actors module, hence the module name.
        .target(name: "DistributedMPI", dependencies: ["Tensor", "Models", "Trainer", "CMPI"],
                path: "Sources/Distributed", swiftSettings: fast),
        // The `zoo benchmark` harness: speed, memory and MACs of registered models.
        .target(name: "ZooBenchmark", dependencies: ["Tensor", "Models", "Trainer"],
                path: "Sources/Benchmark", swiftSettings: fast),
        // ONNX export: the forward pass traced op by op and lowered to standard ONNX operators.
        .target(name: "Export", dependencies: ["Tensor", "Models", "Protos", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
                swiftSettings: fast),
        .executableTarget(name: "Tools",
                          dependencies: ["Tensor", "Models", "DataPipeline", "Trainer", "DistributedMPI", "ZooBenchmark", "Export",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/Tools"),

        // Release-mode benchmarks (`swift run -c release opbench`).
        .executableTarget(name: "opbench", dependencies: ["Tensor", "CBLAS"], path: "Benchmarks/OpBench",
                          swiftSettings: fast),
        .executableTarget(name: "onnxcheck", dependencies: ["Export", "Models", "Tensor"], path: "Benchmarks/OnnxCheck",
                          swiftSettings: fast),
        .executableTarget(name: "databench", dependencies: ["DataPipeline", "Tensor"], path: "Benchmarks/DataBench",
                          swiftSettings: fast),

        // Test helpers shared by the test targets: the finite-difference gradient checker and the
        // reference-fixture harness.
        .target(name: "TestSupport", dependencies: ["Tensor", "Models", "DataPipeline"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorTests", dependencies: ["Tensor", "CBLAS", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "Tensor", "TestSupport"]),
        .testTarget(name: "DataTests", dependencies: ["DataPipeline", "Tensor", "Trainer", "TestSupport", "CTurboJPEG", "CPNG", "CZlib"]),
        .testTarget(name: "TrainerTests", dependencies: ["Trainer", "DataPipeline", "Models", "Tensor", "TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["DistributedMPI", "Trainer", "DataPipeline", "Tensor", "TestSupport"]),
        .testTarget(name: "BenchmarkTests", dependencies: ["ZooBenchmark", "Models", "Tensor"]),
        .testTarget(name: "WeightsTests", dependencies: ["Models", "Tensor", "Trainer", "TestSupport", "Protos",
                                                        .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .testTarget(name: "ExportTests", dependencies: ["Export", "Models", "Tensor", "Protos", "TestSupport"]),
    ]
)
