import Foundation
import OfferdCore

@testable import OfferdSnapshot

/// A fresh temporary directory, removed when the value is dropped.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "offerd-snapshot-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `name` and returns the full path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let target = file(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: target))
        return target
    }

    func entries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

/// Bytes of a file.
func readBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// The examples/profiles.jsonl shipped with the repository.
func examplesPath() -> String {
    // Tests/OfferdSnapshotTests/TestSupport.swift -> repository root.
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    return root.appendingPathComponent("examples/profiles.jsonl").path
}

/// Recomputes the header checksum after a test changed bytes on purpose, to
/// model a hostile writer whose file passes the checksum.
func resealChecksum(_ bytes: inout [UInt8]) {
    let headerLength = SnapshotFormat.headerLength
    var header = Array(bytes[0..<headerLength])
    header.storeLE(UInt64(0), at: SnapshotFormat.Header.checksum)
    let body = Array(bytes[headerLength...])
    let bodyDigest = body.withUnsafeBytes { SnapshotChecksum.bodyDigest($0) }
    bytes.storeLE(xxh3(header, seed: bodyDigest), at: SnapshotFormat.Header.checksum)
}

/// Every attribute path of a JSON object (objects included), plus paths that run
/// through scalars or miss, for comparing two ProfileViews.
func probePaths(of attributes: JSONValue) -> [AttributePath] {
    var paths: [AttributePath] = [AttributePath(["missing"]), AttributePath(["loyalty", "tier", "deeper"])]
    func walk(_ value: JSONValue, _ prefix: [String]) {
        guard case .object(let members) = value else { return }
        for member in members {
            let path = prefix + [member.key]
            paths.append(AttributePath(path))
            paths.append(AttributePath(path + ["below"]))
            walk(member.value, path)
        }
    }
    walk(attributes, [])
    return paths
}

/// Lines of a JSON Lines file that are not blank.
func sourceLines(_ path: String) throws -> [[UInt8]] {
    try readBytes(path).split(separator: 0x0A).map(Array.init).filter {
        !$0.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }
}
