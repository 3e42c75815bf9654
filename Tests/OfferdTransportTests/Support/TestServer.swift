import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OfferdTransport

/// The service behind the end-to-end tests. Paths:
/// - `/test.Echo/Echo` answers the request message unchanged;
/// - `/test.Echo/Fail` answers INVALID_ARGUMENT with the request message as the status message;
/// - `/test.Echo/Slow` sleeps 50 ms (a test-only breach of the "never block" rule) and then echoes;
/// - anything else is UNIMPLEMENTED.
final class EchoService: GRPCUnaryService {
    private let calls = NIOLockedValueBox(0)

    /// Number of times the service was called.
    var callCount: Int { calls.withLockedValue { $0 } }

    func handle(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        calls.withLockedValue { $0 += 1 }
        switch call.path {
        case "/test.Echo/Echo":
            return .message(call.message)
        case "/test.Echo/Fail":
            return .failure(GRPCStatus(.invalidArgument, String(buffer: call.message)))
        case "/test.Echo/Slow":
            usleep(50_000)
            return .message(call.message)
        default:
            return .failure(GRPCStatus(.unimplemented, "unknown method \(call.path)"))
        }
    }
}

/// Starts a server on 127.0.0.1 port 0 with its own single-threaded event loop group, runs `body`, and shuts
/// everything down again even when `body` throws.
func withTestServer<Result>(
    configure: (inout GRPCServerConfiguration) -> Void = { _ in },
    service: EchoService = EchoService(),
    _ body: (GRPCServer, Int, EchoService) async throws -> Result
) async throws -> Result {
    var configuration = GRPCServerConfiguration()
    configuration.port = 0
    configure(&configuration)
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var logger = Logger(label: "offerd.transport.tests")
    logger.logLevel = .warning
    let server: GRPCServer
    do {
        server = try await GRPCServer.start(
            configuration: configuration,
            service: service,
            group: group,
            logger: logger
        )
    } catch {
        try? await group.shutdownGracefully()
        throw error
    }
    guard let port = server.localAddress?.port else {
        await server.shutdown(grace: .seconds(1))
        try? await group.shutdownGracefully()
        throw TestFailure("server has no bound port")
    }
    do {
        let result = try await body(server, port, service)
        await server.shutdown(grace: .seconds(2))
        try await group.shutdownGracefully()
        return result
    } catch {
        await server.shutdown(grace: .seconds(1))
        try? await group.shutdownGracefully()
        throw error
    }
}

/// A test precondition that did not hold.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) {
        self.description = description
    }
}

/// A gRPC length-prefixed message.
func grpcFrame(_ payload: [UInt8], compressed: Bool = false) -> [UInt8] {
    let length = UInt32(payload.count)
    return [
        compressed ? 1 : 0, UInt8(length >> 24), UInt8(truncatingIfNeeded: length >> 16),
        UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length),
    ] + payload
}

/// Output of a finished child process.
struct ProcessOutput {
    var status: Int32
    var standardOutput: String
    var standardError: String
}

/// Runs a program to completion (killing it after `timeout` seconds) and captures its output.
func runProcess(_ executable: String, _ arguments: [String], timeout: Double = 60) async throws -> ProcessOutput {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let outputFile = FileManager.default.temporaryDirectory.appendingPathComponent("offerd-out-\(UUID().uuidString)")
    let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("offerd-err-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outputFile)
        try? FileManager.default.removeItem(at: errorFile)
    }
    let outputHandle = try FileHandle(forWritingTo: outputFile)
    let errorHandle = try FileHandle(forWritingTo: errorFile)
    process.standardOutput = outputHandle
    process.standardError = errorHandle
    try process.run()
    let started = Date()
    while process.isRunning {
        if Date().timeIntervalSince(started) > timeout {
            process.terminate()
        }
        try await Task.sleep(nanoseconds: 10_000_000)
    }
    try outputHandle.close()
    try errorHandle.close()
    let output = try Data(contentsOf: outputFile)
    let error = try Data(contentsOf: errorFile)
    return ProcessOutput(
        status: process.terminationStatus,
        standardOutput: String(decoding: output, as: UTF8.self),
        standardError: String(decoding: error, as: UTF8.self)
    )
}

/// Writes bytes to a fresh temporary file and returns its path.
func temporaryFile(_ bytes: [UInt8]) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("offerd-body-\(UUID().uuidString)")
    try Data(bytes).write(to: url)
    return url.path
}

/// One call made with the `nghttp` client; `headers` holds every response header and trailer field received.
struct NGHTTPCall {
    var headers: [(name: String, value: String)]
    var output: ProcessOutput

    func value(_ name: String) -> String? {
        headers.last { $0.name == name }?.value
    }

    /// Runs `nghttp -v` for one request and parses the header fields it reports as received.
    static func run(
        port: Int,
        path: String,
        method: String = "POST",
        contentType: String? = "application/grpc",
        extraHeaders: [String] = [],
        body: [UInt8]?
    ) async throws -> NGHTTPCall {
        var arguments = ["-v", "-H", ":method: \(method)"]
        if let contentType {
            arguments += ["-H", "content-type: \(contentType)"]
        }
        for header in extraHeaders {
            arguments += ["-H", header]
        }
        var bodyPath: String?
        if let body {
            let path = try temporaryFile(body)
            bodyPath = path
            arguments += ["-d", path]
        }
        defer {
            if let bodyPath {
                try? FileManager.default.removeItem(atPath: bodyPath)
            }
        }
        arguments.append("http://127.0.0.1:\(port)\(path)")
        let output = try await runProcess("/usr/bin/nghttp", arguments, timeout: 20)
        var headers: [(String, String)] = []
        // Lines look like: "[  0.002] recv (stream_id=13) grpc-status: 0"
        for line in output.standardOutput.split(separator: "\n") {
            guard let marker = line.range(of: "] recv (stream_id=") else {
                continue
            }
            let rest = line[marker.upperBound...]
            guard let close = rest.range(of: ") ") else {
                continue
            }
            let field = rest[close.upperBound...]
            // Pseudo-headers start with ':', so split at the first ": " after the first character.
            let searchStart = field.index(after: field.startIndex)
            guard let separator = field[searchStart...].range(of: ": ") else {
                continue
            }
            headers.append((String(field[..<separator.lowerBound]), String(field[separator.upperBound...])))
        }
        return NGHTTPCall(headers: headers, output: output)
    }
}

/// Runs a blocking call (a raw socket read) on a Dispatch thread instead of a
/// Swift concurrency pool thread.
///
/// Tests run in parallel on a pool with as many threads as cores (2 here):
/// a blocking read there can starve the very task it waits for (a shutdown
/// that must send the GOAWAY being read).
func offCooperativePool<T>(_ body: @escaping () throws -> T) async throws -> T {
    let unchecked = UncheckedBox(body)
    return try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try unchecked.value() }.map { UncheckedBox($0) })
        }
    }.value
}

/// Moves a non-Sendable value across the one hop `offCooperativePool` makes;
/// the caller is suspended meanwhile, so nothing else touches it.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
