import ArgumentParser
import Foundation
import LoadgenCore
import NIOCore
import NIOPosix

/// The command line: rounds at the given rates, one after the other, each on fresh connections.
@main
struct LoadgenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "offerd-loadgen",
        abstract: "Open-loop gRPC load: unary calls at exact intervals, latency from each call's scheduled time.",
        discussion: """
            Call k of a round is due at start + k/RATE seconds and goes out on connection k % CONNECTIONS as soon \
            as it is due, whatever happened to the calls before it; its latency runs from that scheduled time to \
            the end of its answer, so a stall delays (and shows in) every call it holds up, as a user would see it. \
            A call succeeds on HTTP 200 with grpc-status 0. One line per rate on standard output, one CSV row per \
            rate with --csv. A round whose sends were late (over --late-threshold-us, for more than 0.5% of them) \
            says the generator fell behind: its latencies then include the generator's own delays.
            """
    )

    @Option(help: "gRPC method to call: http://HOST:PORT/package.Service/Method (HTTP/2 without TLS).")
    var url: String

    @Option(
        name: .customLong("body"),
        help: "File holding one gRPC-framed request message (as make_requests.py writes them); repeat to rotate."
    )
    var bodyFiles: [String] = []

    @Option(
        name: .customLong("bodies"),
        help: ArgumentHelp(
            "File of gRPC-framed request messages one after another (make_requests.py, OFFERD_ONE_FILE=1); "
                + "rotated with the --body ones."
        )
    )
    var concatenatedBodyFiles: [String] = []

    @Option(name: .customLong("rate"), help: "Calls per second; repeat for several rounds, run in the given order.")
    var rates: [UInt64]

    @Option(help: "Measured seconds per round.")
    var duration: UInt64 = 10

    @Option(help: "Seconds at the round's rate before measuring (calls sent, not counted).")
    var warmup: UInt64 = 2

    @Option(help: "HTTP/2 connections; calls go round-robin.")
    var connections: Int = 8

    @Option(help: "Seconds to wait for open calls after the last send; calls still open count as unanswered.")
    var drainTimeout: UInt64 = 10

    @Option(name: .customLong("late-threshold-us"), help: "A send this many microseconds after its time is late.")
    var lateThresholdMicroseconds: UInt64 = 1000

    /// Polling saves the cost and the delay of a timer wake-up (tens of microseconds on a virtual machine) but
    /// keeps the core busy at rates above 1/spin. Not under SCHED_FIFO (chrt): the kernel stops a task that keeps
    /// its core busy for more than 95% of a second for the rest of that second (kernel.sched_rt_runtime_us),
    /// which showed here as 50 ms gaps in the sends, even with short rests every millisecond (answers arriving
    /// during a rest keep the task running). So: a dedicated core at normal priority.
    @Option(
        name: .customLong("spin-us"),
        help: ArgumentHelp(
            "Poll instead of sleeping this many microseconds before each send (0: sleep on a timer). Polling "
                + "keeps the core busy at high rates: not with chrt (SCHED_FIFO is throttled 50 ms a second)."
        )
    )
    var spinMicroseconds: UInt64 = 0

    @Option(
        name: .customLong("timer-gap-us"),
        help: ArgumentHelp(
            "Arm send timers at least this many microseconds apart (0: one per call). Calls due in between go out "
                + "when the loop wakes to read answers, or late at the next timer (their lag is counted)."
        )
    )
    var timerGapMicroseconds: UInt64 = 0

    @Option(help: "Seconds to pause between rounds.")
    var pause: UInt64 = 1

    @Option(help: "Name of the run in the report and the CSV's label column.")
    var label: String = "loadgen"

    @Option(help: "CSV file to append one row per round to (with a header if it is new or empty).")
    var csv: String?

    @Option(help: "Pin the generator to this CPU (keep it off the server's).")
    var cpu: Int?

    func validate() throws {
        guard !bodyFiles.isEmpty || !concatenatedBodyFiles.isEmpty else {
            throw ValidationError("--body or --bodies: give at least one request body file")
        }
        guard !rates.isEmpty else {
            throw ValidationError("--rate: give at least one rate (calls per second)")
        }
        for rate in rates where rate == 0 || rate > SendSchedule.maximumCallsPerSecond {
            throw ValidationError("--rate \(rate): must be 1 to \(SendSchedule.maximumCallsPerSecond) calls per second")
        }
        guard duration >= 1 && duration + warmup <= 3600 else {
            throw ValidationError("--duration \(duration) --warmup \(warmup): at least 1 s, an hour at most")
        }
        guard (1...1024).contains(connections) else {
            throw ValidationError("--connections \(connections): must be 1 to 1024")
        }
        guard spinMicroseconds <= 1_000_000 else {
            throw ValidationError("--spin-us \(spinMicroseconds): a second at most")
        }
        guard timerGapMicroseconds <= 1_000_000 else {
            throw ValidationError("--timer-gap-us \(timerGapMicroseconds): a second at most")
        }
        guard drainTimeout <= 3600 else {
            throw ValidationError("--drain-timeout \(drainTimeout): an hour at most")
        }
        if let cpu = cpu, cpu < 0 {
            throw ValidationError("--cpu \(cpu): a CPU number, 0 or more")
        }
    }

    func run() throws {
        let target: CallTarget
        var bodies: [GRPCRequestBody]
        do throws(LoadgenInputError) {
            target = try CallTarget(url: url)
            bodies = try bodyFiles.map { path throws(LoadgenInputError) in
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw LoadgenInputError("--body \(path): cannot be read")
                }
                return try GRPCRequestBody(bytes: [UInt8](data), source: "--body \(path)")
            }
            for path in concatenatedBodyFiles {
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw LoadgenInputError("--bodies \(path): cannot be read")
                }
                bodies += try GRPCRequestBody.split(concatenated: [UInt8](data), source: "--bodies \(path)")
            }
        } catch {
            throw ValidationError(error.description)
        }
        let csv = try csv.map { try CSVFile(path: $0) }

        if let cpu = cpu {
            try pinToCPU(cpu)
        }
        if allowedCPUCount() != 1 {
            reportError(
                "warning: not pinned to one CPU (--cpu, or taskset); pin the generator and the server apart"
            )
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let eventLoop = group.next()
        try eventLoop.submit { tightenTimerSlack() }.wait()

        for (index, rate) in rates.enumerated() {
            if index > 0 && pause > 0 {
                sleep(UInt32(pause))
            }
            let configuration = RoundConfiguration(
                label: label,
                target: target,
                bodies: bodies,
                callsPerSecond: rate,
                warmupSeconds: warmup,
                seconds: duration,
                connections: connections,
                drainTimeoutNanoseconds: drainTimeout * 1_000_000_000,
                lateThresholdNanoseconds: lateThresholdMicroseconds * 1000,
                spinNanoseconds: spinMicroseconds * 1000,
                timerGapNanoseconds: timerGapMicroseconds * 1000
            )
            let report = try OpenLoopRound.run(configuration, on: eventLoop).wait()
            print(report.summary)
            try csv?.append(report)
        }
    }
}

/// The CSV output: appended to, with the header written once; a file with another header is refused rather than
/// mixed.
struct CSVFile {
    let path: String

    init(path: String) throws {
        self.path = path
        if let existing = FileManager.default.contents(atPath: path), !existing.isEmpty {
            let firstLine = String(decoding: existing.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)
            guard firstLine == RoundReport.csvHeader else {
                throw ValidationError("--csv \(path): exists with another header; name a new file")
            }
        } else {
            guard FileManager.default.createFile(atPath: path, contents: Data((RoundReport.csvHeader + "\n").utf8))
            else {
                throw ValidationError("--csv \(path): cannot be created")
            }
        }
    }

    func append(_ report: RoundReport) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw ValidationError("--csv \(path): cannot be opened for writing")
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((report.csvRow + "\n").utf8))
    }
}
