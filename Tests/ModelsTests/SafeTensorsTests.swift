import Foundation
@testable import Models
import Tensor
import XCTest

final class SafeTensorsTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    /// A file with the given header JSON and data bytes.
    func raw(header: String, data: [UInt8], headerLength: UInt64? = nil) -> Data {
        var d = Data()
        let h = Data(header.utf8)
        withUnsafeBytes(of: (headerLength ?? UInt64(h.count)).littleEndian) { d.append(contentsOf: $0) }
        d.append(h)
        d.append(contentsOf: data)
        return d
    }

    func expectError(_ data: Data, _ check: (SafeTensorsError) -> Bool, file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try SafeTensorsFile(data: data, path: "bad.safetensors")
            XCTFail("accepted a malformed file", file: file, line: line)
        } catch let e as SafeTensorsError {
            XCTAssertTrue(check(e), "unexpected error \(e)", file: file, line: line)
            XCTAssertTrue(e.description.contains("bad.safetensors"), "error names the file: \(e)", file: file, line: line)
        } catch { XCTFail("unexpected error type \(error)", file: file, line: line) }
    }

    func testRoundTripF32WithMetadata() throws {
        let path = dir.appendingPathComponent("w.safetensors").path
        let a = Tensor(shape: [2, 3], [1, -2, 3.5, 4, 5, 6e-8]), b = Tensor(shape: [], [7])
        try SafeTensorsFile.write(["a": a, "b.c": b], metadata: ["format": "pt"], to: path)
        let f = try SafeTensorsFile(path: path)
        XCTAssertEqual(f.tensors["a"]?.shape, [2, 3])
        XCTAssertEqual(f.tensors["a"]?.scalars, a.scalars)
        XCTAssertEqual(f.tensors["b.c"]?.scalars, [7])
        XCTAssertEqual(f.metadata["format"], "pt")
        XCTAssertEqual(f.names, ["a", "b.c"])
        // No temporary file is left behind.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["w.safetensors"])
    }

    func testReadsF16AndBF16AndIntegers() throws {
        // 1.0, -2.0, 0.5 (half: 0x3C00, 0xC000, 0x3800); bf16 1.0 = 0x3F80, 3.0 = 0x4040; i64 [3, -6]
        var bytes: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38]
        bytes += [0x80, 0x3F, 0x40, 0x40]
        for v: Int64 in [3, -6] { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        let header = #"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[6,10]},"l":{"dtype":"I64","shape":[2],"data_offsets":[10,26]}}"#
        let f = try SafeTensorsFile(data: raw(header: header, data: bytes))
        XCTAssertEqual(f.tensors["h"]?.scalars, [1, -2, 0.5])
        XCTAssertEqual(f.tensors["b"]?.scalars, [1, 3])
        XCTAssertEqual(f.integers["l"]?.values, [3, -6])
        XCTAssertEqual(halfToFloat(0x0001), Float(sign: .plus, exponent: -24, significand: 1))  // smallest subnormal
        XCTAssertEqual(halfToFloat(0x7C00), .infinity)
    }

    func testRejectsMalformedFiles() {
        expectError(Data([1, 2, 3])) { if case .truncatedHeader = $0 { return true }; return false }
        expectError(raw(header: "{}", data: [], headerLength: 1000)) { if case .headerPastEnd = $0 { return true }; return false }
        expectError(raw(header: "{not json", data: [])) { if case .badHeader = $0 { return true }; return false }
        expectError(raw(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0])) {
            if case .badOffsets(_, "a", _, _, _) = $0 { return true }; return false
        }
        expectError(raw(header: #"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])) {
            if case .unknownDType(_, "a", "Q4") = $0 { return true }; return false
        }
        expectError(raw(header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))) {
            if case .lengthMismatch(_, "a", [3], "F32", 8) = $0 { return true }; return false
        }
        expectError(raw(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                        data: [UInt8](repeating: 0, count: 12))) { if case .overlap = $0 { return true }; return false }
        expectError(raw(header: #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])) {
            if case .badHeader = $0 { return true }; return false
        }
        expectError(raw(header: #"{"a":{"dtype":"F32","shape":[4611686018427387904, 4],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])) {
            switch $0 { case .lengthMismatch, .badHeader: return true; default: return false }
        }
    }

    /// Mutated and truncated copies of a valid file either load into tensors whose element counts
    /// match their shapes, or throw a `SafeTensorsError` that names the file; both outcomes occur.
    func testRandomMutationsLoadConsistentlyOrThrowNamedErrors() {
        var g = RandomGenerator(seed: 7)
        let valid = raw(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
        var loaded = 0, refused = 0
        for _ in 0..<300 {
            var d = valid
            for _ in 0..<(1 + g.nextInt(below: 4)) { d[g.nextInt(below: d.count)] = UInt8(g.nextInt(below: 256)) }
            if g.nextInt(below: 3) == 0 { d = d.prefix(g.nextInt(below: d.count)) }
            do {
                let file = try SafeTensorsFile(data: d)
                for (name, t) in file.tensors {
                    XCTAssertEqual(t.count, t.shape.reduce(1, *), "tensor \(name): count vs shape \(t.shape)")
                    XCTAssertLessThanOrEqual(t.count * 4, d.count, "tensor \(name) claims more data than the file holds")
                }
                loaded += 1
            } catch let error as SafeTensorsError {
                XCTAssertFalse(error.description.isEmpty)
                refused += 1
            } catch {
                XCTFail("unexpected error type \(type(of: error)): \(error)")
            }
        }
        XCTAssertGreaterThan(loaded, 0, "no mutation kept the file loadable")
        XCTAssertGreaterThan(refused, 0, "no mutation was refused")
    }

    func testStrictLoadReportsEveryMismatchByName() throws {
        final class Tiny: Module {
            let lin: Linear, bn: BatchNorm2d
            init() {
                var g = RandomGenerator(seed: 1)
                lin = Linear(3, 2, generator: &g)
                bn = BatchNorm2d(2, state: ModelState())
            }
            func visit(_ v: inout ModuleVisitor) { v.child("lin", lin); v.child("bn", bn) }
        }
        let m = Tiny()
        XCTAssertEqual(m.namedParameters().map { $0.name }, ["lin.weight", "lin.bias", "bn.weight", "bn.bias"])
        XCTAssertEqual(m.namedBuffers().map { $0.name }, ["bn.running_mean", "bn.running_var"])
        var sd = m.stateDict()
        sd["lin.weight"] = Tensor.zeros([2, 4])
        sd["bn.bias"] = nil
        sd["extra.thing"] = Tensor.zeros([1])
        let before = m.lin.bias!.value.scalars
        sd["lin.bias"] = Tensor(shape: [2], [9, 9])
        XCTAssertThrowsError(try m.load(stateDict: sd, source: "ckpt.safetensors")) { e in
            let r = e as! StateDictMismatch
            XCTAssertEqual(r.missing, ["bn.bias"])
            XCTAssertEqual(r.unexpected, ["extra.thing"])
            XCTAssertEqual(r.shapeMismatches.map { $0.name }, ["lin.weight"])
            XCTAssertEqual(r.shapeMismatches.first?.expected, [2, 3])
            XCTAssertEqual(r.shapeMismatches.first?.found, [2, 4])
            XCTAssertTrue(r.description.contains("ckpt.safetensors") && r.description.contains("[2, 3]") && r.description.contains("[2, 4]"))
        }
        XCTAssertEqual(m.lin.bias!.value.scalars, before, "a failed strict load writes nothing")
        let report = try m.load(stateDict: sd, strict: false)
        XCTAssertFalse(report.isEmpty)
        XCTAssertEqual(m.lin.bias!.value.scalars, [9, 9], "non-strict load writes the matching keys")
    }
}
