// Helpers shared by OfferdSnapshotTests and OfferdSnapshotBuilderTests. The read path's internals they need
// (format constants, checksums) are `package`, so no `@testable` import here: this module also builds in release.
import Foundation
import OfferdCore
import OfferdSnapshot

/// A fresh temporary directory, removed when the value is dropped.
public final class TemporaryDirectory {
    public let path: String

    public init() throws {
        path = NSTemporaryDirectory() + "offerd-snapshot-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes `text` to `name` and returns the full path.
    @discardableResult
    public func write(_ name: String, _ text: String) throws -> String {
        let target = file(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: target))
        return target
    }

    public func entries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

/// Bytes of a file.
public func readBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

public func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// The examples/profiles.jsonl shipped with the repository.
public func examplesPath() -> String {
    // Tests/OfferdSnapshotTestSupport/TestSupport.swift -> repository root.
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    return root.appendingPathComponent("examples/profiles.jsonl").path
}

/// Recomputes the header checksum after a test changed bytes on purpose, to
/// model a hostile writer whose file passes the checksum.
public func resealChecksum(_ bytes: inout [UInt8]) {
    let headerLength = SnapshotFormat.headerLength
    var header = Array(bytes[0..<headerLength])
    header.storeLE(UInt64(0), at: SnapshotFormat.Header.checksum)
    let body = Array(bytes[headerLength...])
    let bodyDigest = body.withUnsafeBytes { SnapshotChecksum.bodyDigest($0) }
    bytes.storeLE(xxh3(header, seed: bodyDigest), at: SnapshotFormat.Header.checksum)
}

/// Every attribute path of a JSON object (objects included), plus paths that run
/// through scalars or miss, for comparing two ProfileViews.
public func probePaths(of attributes: JSONValue) -> [AttributePath] {
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
public func sourceLines(_ path: String) throws -> [[UInt8]] {
    try readBytes(path).split(separator: 0x0A).map(Array.init).filter {
        !$0.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }
}

/// Runs `/bin/sh -c script` with `arguments` as $1, $2...: the writer is another process, as in production
/// (`cp new.snap live.snap`), so that the kernel's lease break is what makes it wait.
public final class ShellProcess: @unchecked Sendable {
    public let process = Process()
    public let input = Pipe()
    public let output = Pipe()

    public init(_ script: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, "sh"] + arguments
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    /// Waits up to `seconds` for the process to end; its exit status, or nil if it is still running.
    public func wait(seconds: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// The first line the process printed (blocks until it prints one).
    public func readLine() -> String {
        var line = Data()
        while true {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line.append(byte)
        }
        return String(decoding: line, as: UTF8.self)
    }

    public func finish() {
        try? input.fileHandleForWriting.close()
        _ = wait(seconds: 10)
        if process.isRunning { process.terminate() }
    }
}
