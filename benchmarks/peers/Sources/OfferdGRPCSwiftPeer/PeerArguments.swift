/// The peer's command line: `--catalog PATH --snapshot PATH --port N [--host H] [--threads N]`.
///
/// Parsed by hand to keep swift-argument-parser out of the benchmark build.
struct PeerArguments {
    var catalogPath = ""
    var snapshotPath = ""
    var host = "127.0.0.1"
    var port = 50051
    var threads = 1

    static let usage = "usage: offerd-grpc-swift-peer --catalog PATH --snapshot PATH --port N [--host H] [--threads N]"

    /// Parses the arguments after the program name; the error is a message for stderr.
    static func parse(_ arguments: ArraySlice<String>) -> Result<PeerArguments, PeerArgumentError> {
        var parsed = PeerArguments()
        var remaining = arguments
        while let option = remaining.popFirst() {
            guard let value = remaining.popFirst() else { return .failure(.init("\(option) needs a value")) }
            switch option {
            case "--catalog": parsed.catalogPath = value
            case "--snapshot": parsed.snapshotPath = value
            case "--host": parsed.host = value
            case "--port":
                guard let port = Int(value), (0...65535).contains(port) else {
                    return .failure(.init("--port must be 0...65535, got \(value)"))
                }
                parsed.port = port
            case "--threads":
                guard let threads = Int(value), threads >= 1 else {
                    return .failure(.init("--threads must be at least 1, got \(value)"))
                }
                parsed.threads = threads
            default: return .failure(.init("unknown option \(option)"))
            }
        }
        if parsed.catalogPath.isEmpty || parsed.snapshotPath.isEmpty {
            return .failure(.init("--catalog and --snapshot are required"))
        }
        return .success(parsed)
    }
}

/// A command line the peer cannot run with.
struct PeerArgumentError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
