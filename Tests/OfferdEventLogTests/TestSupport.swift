import Foundation
import OfferdEventLog

/// A fresh temporary directory, removed when the value is dropped.
final class TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "offerd-eventlog-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    func file(_ name: String) -> String { path + "/" + name }
}

func readBytes(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeBytes(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// A small deterministic generator (SplitMix64), so a failing random case can be replayed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A sample entry; `number` varies every field that varies in practice.
func sampleEntry(_ number: Int, server: String = "server-a", batch: UInt64 = 1) -> EventLogEntry {
    let types = EventLogEventType.allCases
    let type = types[number % types.count]
    return EventLogEntry(
        key: EventLogProfileKey(namespace: "ECID", id: "profile-\(number)"),
        type: type,
        timeMs: 1_733_540_000_000 + Int64(number),
        eventID: type == .decision ? "" : "event-\(number)",
        offerIDs: type == .consent ? [] : ["offer-\(number)", "offer-\(number + 1)"],
        propositionID: number % 3 == 0 ? "" : "proposition-\(number)",
        consents: type == .consent ? ["marketing.email": "n", "personalize.content": "y"] : [:],
        serverID: server,
        batchNumber: batch)
}

/// A batch of `count` sample entries from one writer.
func sampleBatch(_ count: Int, from start: Int = 0, server: String = "server-a", batch: UInt64 = 1) -> [EventLogEntry] {
    (start..<(start + count)).map { sampleEntry($0, server: server, batch: batch) }
}

/// Runs a blocking call on a thread of its own (never on the cooperative pool that runs the tests).
func onThread<Result: Sendable>(_ body: @escaping @Sendable () -> Result) async -> Result {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.start()
    }
}

/// Reads until `count` records came (or `attempts` reads, each with a generous timeout, found nothing more).
func readAll(_ log: any EventLog, after: EventLogPosition? = nil, count: Int, maxCount: Int = 1000) throws
    -> [EventLogRecord]
{
    var records: [EventLogRecord] = []
    var position = after
    var emptyReads = 0
    while records.count < count && emptyReads < 3 {
        let got = try log.read(after: position, maxCount: maxCount, timeout: .seconds(5))
        if got.isEmpty { emptyReads += 1 }
        records += got
        position = got.last?.position ?? position
    }
    return records
}

/// A real `redis-server` on a free port of 127.0.0.1, run in the foreground without persistence.
final class RedisTestServer: @unchecked Sendable {
    /// The `redis-server` binary, if installed.
    static let binary: String? = {
        let candidates = ["/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"]
        let fromPath = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map {
            "\($0)/redis-server"
        }
        return (candidates + fromPath).first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    let port: Int
    let extraArguments: [String]
    /// The server's working directory (where an append-only file goes), removed with the server.
    private let directory: TemporaryDirectory
    private var process: Process?

    /// Starts a server on a free port (or on `port`, to restart one), waiting until it answers PING.
    init(port: Int? = nil, extraArguments: [String] = []) throws {
        self.port = try port ?? Self.freePort()
        self.extraArguments = extraArguments
        directory = try TemporaryDirectory()
        try start()
    }

    deinit { kill() }

    var configuration: RedisEventLogConfiguration {
        RedisEventLogConfiguration(host: "127.0.0.1", port: port, key: "test:events")
    }

    func start() throws {
        guard let binary = Self.binary else { throw RedisTestError("redis-server is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments =
            [
                "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", "", "--dir", directory.path,
            ] + extraArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        // Wait for the server to accept connections: a bound for start-up, not a verdict of any test.
        let probe = RedisStreamEventLog(
            configuration: configuration, timeouts: RedisTimeouts(connect: .seconds(1), command: .seconds(1)))
        defer { probe.close() }
        let deadline = Date().addingTimeInterval(20)
        while true {
            do {
                try probe.ping()
                return
            } catch EventLogError.rejected {
                return // up, but wants a password: answering is all this waits for
            } catch {
                guard Date() < deadline, process.isRunning else {
                    throw RedisTestError("redis-server on port \(port) did not come up: \(error)")
                }
                usleep(20_000)
            }
        }
    }

    /// Kills the server at once (SIGKILL: no shutdown, no save) and waits for it to exit.
    func kill() {
        guard let process else { return }
        self.process = nil
        if process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    /// A port no socket of this machine listens on now: bind port 0, read it, release it.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RedisTestError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw RedisTestError("bind failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw RedisTestError("getsockname failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct RedisTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
