import Foundation
@testable import Models
import Protos
import SwiftProtobuf
import Tensor
import TestSupport
import XCTest

/// MindSpore `.ckpt` import and export against the files MindSpore 2.10 wrote from MindCV's own
/// classes (Tests/Fixtures/ckpt, see its README).
final class MindSporeCheckpointTests: XCTestCase {
    /// Each `.ckpt` gives exactly its twin's canonical tensors and reproduces the twin's `logits_eval`.
    func testEveryCheckpointReproducesItsTwin() throws {
        for caseName in FixtureModels.allCases {
            let model = FixtureModels.model(caseName)
            let file = try MindSporeCheckpointFile(path: FixtureModels.ckptPath(caseName))
            let imported = try MindCVImport.stateDict(from: file, family: FixtureModels.family(caseName), expected: FixtureModels.keys(model))
            let (twin, st) = try FixtureModels.canonicalWeights(caseName)
            XCTAssertEqual(Set(imported.stateDict.keys), Set(twin.keys), caseName)
            for (k, v) in twin {
                guard let got = imported.stateDict[k] else { continue }
                XCTAssertEqual(got.shape, v.shape, "\(caseName): \(k)")
                XCTAssertEqual(bitPatterns(got), bitPatterns(v), "\(caseName): \(k) differs from the twin")
            }
            try model.load(stateDict: imported.stateDict, source: caseName)
            model.eval()
            let input = try XCTUnwrap(st.tensors["input"])
            let logits = withNoGrad { model(input) }
            let ref = try XCTUnwrap(st.tensors["logits_eval"])
            XCTAssertLessThanOrEqual(maxAbsDiff(logits, ref), 1e-4 * maxAbs(ref), "\(caseName): logits")
            // Standard files: MindSpore 2.x names (PiT's short forms); fan-in files: full paths plus optimizer state.
            if caseName.hasSuffix("_fanin") {
                XCTAssertFalse(imported.usedShortNames, caseName)
                XCTAssertTrue(imported.skippedSummary.contains("adam_m.* ("), "\(caseName): \(imported.skippedSummary)")
                XCTAssertTrue(imported.skippedSummary.contains("global_step"), caseName)
                XCTAssertTrue(imported.skippedSummary.contains("learning_rate"), caseName)
            } else {
                XCTAssertEqual(imported.usedShortNames, caseName == "pit_tiny", caseName)
                XCTAssertEqual(imported.skippedCount, 0, "\(caseName): \(imported.skippedSummary)")
            }
        }
    }

    /// The hand-written reader agrees with the generated SwiftProtobuf decoder on every fixture file.
    func testReaderAgreesWithGeneratedDecoder() throws {
        for caseName in FixtureModels.allCases {
            let path = FixtureModels.ckptPath(caseName)
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            let decoded = try MindSporeCheckpoint(serializedBytes: data)
            let ours = try MindSporeCheckpointFile(data: data, path: path)
            XCTAssertEqual(ours.entries.map(\.tag), decoded.value.map(\.tag), caseName)
            for (e, v) in zip(ours.entries, decoded.value) {
                XCTAssertEqual(e.dims, v.tensor.dims.map { Int($0) }, "\(caseName): \(e.tag)")
                XCTAssertEqual(e.dtype, v.tensor.tensorType)
                XCTAssertEqual(e.byteCount, v.tensor.tensorContent.count)
            }
        }
    }

    /// canonical → `.ckpt` (MindCV names) → canonical is bit-identical, and the exported entries equal
    /// the ones MindSpore itself wrote (names, dtypes, shapes and bytes): MindSpore 2.x's parameter names
    /// as in the standard files, full cell paths as in the fan-in files.
    func testRoundTripAndExportMatchesMindSpore() throws {
        for caseName in FixtureModels.allCases {
            let model = FixtureModels.model(caseName)
            let keys = FixtureModels.keys(model)
            let family = FixtureModels.family(caseName)
            let (twin, _) = try FixtureModels.canonicalWeights(caseName)
            let fanIn = caseName.hasSuffix("_fanin")
            let entries = try MindCVExport.entries(twin, keys: keys, family: family, cellPaths: fanIn)
            let data = try MindSporeCheckpointWriter.serialize(entries)
            let back = try MindCVImport.stateDict(from: try MindSporeCheckpointFile(data: data), family: family, expected: keys)
            for k in keys {
                XCTAssertEqual(bitPatterns(try XCTUnwrap(back.stateDict[k])), bitPatterns(try XCTUnwrap(twin[k])), "\(caseName): \(k) round trip")
            }
            let mindspore = try MindSporeCheckpointFile(path: FixtureModels.ckptPath(caseName))
            let ours = try MindSporeCheckpointFile(data: data)
            XCTAssertEqual(ours.entries.count, entries.count)
            if !fanIn { XCTAssertEqual(Set(ours.entries.map(\.tag)), Set(mindspore.entries.map(\.tag)), caseName) }
            for e in ours.entries {
                let m = try XCTUnwrap(mindspore.entry(e.tag), "\(caseName): MindSpore's file has no \(e.tag)")
                XCTAssertEqual(e.dtype, m.dtype, "\(caseName): \(e.tag)")
                XCTAssertEqual(e.dims, m.dims, "\(caseName): \(e.tag)")
                XCTAssertEqual(ours.data[e.chunks[0]], mindspore.data[m.chunks[0]], "\(caseName): bytes of \(e.tag)")
            }
        }
    }

    /// MindSpore's CRC trailer (a file it wrote with `crc_check=True`) is stripped and verified; a
    /// damaged byte fails the check; our writer's trailer verifies too.
    func testCRCTrailer() throws {
        let path = Fixtures.path("ckpt/pit_tiny_crc.ckpt")
        let file = try MindSporeCheckpointFile(path: path, verifyCRC: true)
        XCTAssertTrue(file.hasCRCTrailer)
        XCTAssertEqual(file.entries.count, 6)
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[100] ^= 0x01
        XCTAssertNoThrow(try MindSporeCheckpointFile(data: data, path: "damaged.ckpt"))
        XCTAssertThrowsError(try MindSporeCheckpointFile(data: data, path: "damaged.ckpt", verifyCRC: true)) { error in
            guard case .crcMismatch(let p, _, _) = error as? WeightsError else { return XCTFail("\(error)") }
            XCTAssertEqual(p, "damaged.ckpt")
        }
        let ours = try MindSporeCheckpointWriter.serialize([.init(tag: "a", tensor: Tensor(shape: [3], [1, 2, 3]))], crcTrailer: true)
        XCTAssertEqual(Array(ours.suffix(17).prefix(7)), Array("crc_num".utf8))
        XCTAssertTrue(try MindSporeCheckpointFile(data: ours, verifyCRC: true).hasCRCTrailer)
    }

    /// Split tensors (one tag repeated), Float16/BFloat16/Float64 contents, packed dims and scalars.
    func testSplitTensorsAndDTypes() throws {
        func value(_ tag: String, _ dims: [Int64], _ dtype: String, _ bytes: [UInt8]) -> MindSporeCheckpoint.Value {
            var t = MindSporeTensorProto()
            t.dims = dims; t.tensorType = dtype; t.tensorContent = Data(bytes)
            var v = MindSporeCheckpoint.Value()
            v.tag = tag; v.tensor = t
            return v
        }
        func le<T: FixedWidthInteger>(_ xs: [T]) -> [UInt8] { xs.flatMap { x in withUnsafeBytes(of: x.littleEndian) { Array($0) } } }
        var c = MindSporeCheckpoint()
        c.value = [
            value("w", [2, 2], "Float32", le([Float(1).bitPattern, Float(2).bitPattern])),
            value("w", [2, 2], "Float32", le([Float(3).bitPattern, Float(-4).bitPattern])),
            value("h", [3], "Float16", le([UInt16(0x3C00), 0xC000, 0x3555])),        // 1, -2, 0.33325195
            value("b", [2], "BFloat16", le([UInt16(0x3F80), 0x4049])),              // 1, 3.140625
            value("d", [2], "Float64", le([Double(0.5).bitPattern, Double(1e-3).bitPattern])),
            value("s", [0], "Int32", le([Int32(7)])),                               // dims [0]: a scalar
        ]
        let file = try MindSporeCheckpointFile(data: try c.serializedBytes())
        XCTAssertEqual(file.entries.map(\.tag), ["w", "h", "b", "d", "s"])
        XCTAssertEqual(try file.floatTensor(try XCTUnwrap(file.entry("w"))).scalars, [1, 2, 3, -4])
        XCTAssertEqual(try file.floatTensor(try XCTUnwrap(file.entry("h"))).scalars, [1, -2, 0.33325195])
        XCTAssertEqual(try file.floatTensor(try XCTUnwrap(file.entry("b"))).scalars, [1, 3.140625])
        XCTAssertEqual(try file.floatTensor(try XCTUnwrap(file.entry("d"))).scalars, [0.5, Float(1e-3)])
        XCTAssertEqual(file.entry("s")?.dims, [])
        XCTAssertEqual(try file.integers(try XCTUnwrap(file.entry("s"))), [7])
        // Float → half on export rounds to nearest even and reads back exactly for representable values.
        for x: Float in [0, 1, -2, 0.33325195, 65504, 6.1035156e-05, 5.9604645e-08] {
            XCTAssertEqual(halfToFloat(floatToHalf(x)), x, "\(x)")
        }
        XCTAssertEqual(floatToHalf(1 + 1.0 / 2048), 0x3C00)   // halfway: to even
        XCTAssertEqual(floatToHalf(1e6), 0x7C00)
        XCTAssertEqual(floatToHalf(-0.0001), 0x868E)           // -1.00016594e-4, the nearest half
    }

    /// With `ema`, `ema.<name>` entries replace the weights they average.
    func testEMAWeightsOnRequest() throws {
        let caseName = "vit_tiny"
        let model = FixtureModels.model(caseName)
        let keys = FixtureModels.keys(model)
        let (twin, _) = try FixtureModels.canonicalWeights(caseName)
        var entries = try MindCVExport.entries(twin, keys: keys, family: "vit")
        entries += entries.map { .init(tag: "ema." + $0.tag, tensor: $0.tensor * 2) }
        let file = try MindSporeCheckpointFile(data: try MindSporeCheckpointWriter.serialize(entries), path: "ema.ckpt")
        let plain = try MindCVImport.stateDict(from: file, family: "vit", expected: keys)
        XCTAssertEqual(plain.stateDict["head.weight"]?.scalars, twin["head.weight"]?.scalars)
        XCTAssertTrue(plain.skippedSummary.contains("ema.* (\(keys.count))"), plain.skippedSummary)
        let averaged = try MindCVImport.stateDict(from: file, family: "vit", expected: keys, ema: true)
        XCTAssertTrue(averaged.usedEMA)
        XCTAssertEqual(averaged.stateDict["head.weight"]?.scalars, twin["head.weight"].map { ($0 * 2).scalars })
        XCTAssertEqual(averaged.skippedCount, keys.count)
        let noEMA = try MindSporeCheckpointFile(path: FixtureModels.ckptPath(caseName))
        XCTAssertThrowsError(try MindCVImport.stateDict(from: noEMA, family: "vit", expected: keys, ema: true)) { error in
            XCTAssertTrue("\(error)".contains("ema"), "\(error)")
        }
    }
}
