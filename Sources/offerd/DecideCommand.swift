import ArgumentParser
import Logging
import OfferdCore
import OfferdEventLog
import OfferdServer
import OfferdSnapshot

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - decide

/// `offerd decide`: one decision from the command line (`offerd decide [one]`, the default) or many (`offerd
/// decide batch`), SPEC 12.
struct DecideCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decide",
        abstract: "Decide without a server: one decision, or a batch.",
        subcommands: [One.self, Batch.self],
        defaultSubcommand: One.self)
}

extension DecideCommand {
    /// `offerd decide --id NS:ID --scope ...`: one decision, printed as proto3 JSON (SPEC 12, last paragraph).
    struct One: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "one",
            abstract:
                "Make one decision and print the DecideResponse as proto3 JSON (the default: `offerd decide ...`).",
            discussion: """
                Ids that hold ':' need `offerd decide batch --input`. Nothing is read from or recorded in an event log.
                """)

        @OptionGroup var engine: EngineArguments
        @Option(help: "The identity to decide for, NAMESPACE:ID (split at the first ':').") var id: String?
        @Option(help: "A decision scope, DECISION:PLACEMENT[:COUNT]; repeat for more.") var scope: [ScopeArgument] = []
        @Option(
            help: ArgumentHelp(
                "A context entry: KEY=VALUE gives a string, KEY:=JSON a number, true, false or null; repeat for more.",
                valueName: "entry"))
        var context: [ContextArgument] = []
        @Flag(help: "Add the explain trace of every walked scope.") var explain = false
        @Flag(help: "Put representation content in the items.") var includeContent = false
        @Flag(help: "Put names, priority and characteristics in the items.") var includeMetadata = false

        func validate() throws {
            guard let id else { throw ValidationError("--id NAMESPACE:ID is required") }
            guard let colon = id.firstIndex(of: ":"), colon != id.startIndex, id.index(after: colon) != id.endIndex
            else {
                throw ValidationError("--id must be NAMESPACE:ID, got '\(id)'")
            }
            guard !scope.isEmpty else {
                throw ValidationError("at least one --scope DECISION:PLACEMENT[:COUNT] is required")
            }
        }

        func run() throws {
            let (catalog, snapshot) = try engine.load()
            // Checked by `validate()`.
            let text = id ?? ""
            let colon = text.firstIndex(of: ":") ?? text.startIndex
            var entries: [String: ContextValue] = [:]
            for entry in context { entries[entry.key] = entry.value }
            let request = DecisionRequest(
                identity: Identity(namespace: String(text[..<colon]), id: String(text[text.index(after: colon)...])),
                scopes: scope.map(\.scope), context: entries, includeContent: includeContent,
                includeMetadata: includeMetadata, explain: explain)
            if let problem = request.validationError() {
                printError("offerd decide: \(problem)")
                throw ExitCode(2)
            }
            let decider = BatchDecider(
                catalog: catalog, snapshot: snapshot, configuration: BatchDecider.Configuration(threads: 1))
            var bytes = decider.decideOne(request)
            bytes.append(UInt8(ascii: "\n"))
            print(String(decoding: bytes, as: UTF8.self), terminator: "")
        }
    }

    // MARK: - decide batch

    /// `offerd decide batch` (SPEC 12).
    struct Batch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decide for many profiles at once: JSON Lines in (or an audience), JSON Lines out, in order.",
            discussion: """
                Each input line is one DecideRequest in proto3 JSON; each output line is its DecideResponse, or \
                {"requestId":..,"line":N,"error":{"code":"invalid_argument","message":..}} for a bad line (the run \
                goes on). With --audience, the request id of each line is the profile's primary identity, \
                NAMESPACE:ID. A file that cannot be read or written stops the run (exit 1). Progress and a summary \
                go to standard error. With --events, the log's counts and consent updates (read once, at the start) \
                count, and each decision records its decision events in the log as Decide would, counted for the \
                lines after it: such a batch decides on one thread, in input order, unless --dry-run.
                """)

        @OptionGroup var engine: EngineArguments
        @Option(help: "JSON Lines of DecideRequests ('-': standard input).") var input: String?
        @Option(help: "Decide for every profile of the snapshot in this audience ('*': every profile).")
        var audience: String?
        @Option(help: "With --audience: a decision scope, DECISION:PLACEMENT[:COUNT]; repeat for more.")
        var scope: [ScopeArgument] = []
        @Option(help: "The JSON Lines file to write ('-': standard output).") var output: String
        @Option(help: ArgumentHelp(Self.eventsHelp)) var events: String?
        private static let eventsHelp =
            "The event log of live state (file:PATH, redis://...): its counts and consents apply, and decision "
            + "events are recorded in it (default: none, as --events none)."
        @Flag(help: "With --events: read the log, record nothing.") var dryRun = false
        @Option(help: "Worker threads (default: number of cores; always 1 when --events records).") var threads: Int?
        @Flag(help: "No progress on standard error (the summary is still printed).") var quiet = false

        func validate() throws {
            switch (input, audience) {
            case (nil, nil): throw ValidationError("give --input FILE or --audience NAME --scope ...")
            case (.some, .some): throw ValidationError("--input and --audience exclude each other")
            case (.some, nil):
                if !scope.isEmpty { throw ValidationError("--scope goes with --audience; with --input the lines say") }
            case (nil, .some):
                if scope.isEmpty {
                    throw ValidationError("--audience needs at least one --scope DECISION:PLACEMENT[:COUNT]")
                }
                let request = DecisionRequest(
                    identity: Identity(namespace: "n", id: "i"), scopes: scope.map(\.scope))
                if let problem = request.validationError() { throw ValidationError("--scope: \(problem)") }
            }
            if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
            if let events {
                do { _ = try EventLogConfiguration(parsing: events) } catch { throw ValidationError(error.description) }
            }
        }

        /// Whether the run records decision events: a log is given and it is not a dry run.
        private var recordsEvents: Bool {
            guard let events, !dryRun, let parsed = try? EventLogConfiguration(parsing: events) else { return false }
            return parsed != .none
        }

        /// The `--events` log, applied up to its end; nil without one (or with `none`). Exits 1 with a message
        /// naming the log when it cannot be opened or read.
        private func openEventLog(snapshot: ProfileSnapshot) throws -> BatchEventLog? {
            guard let events else { return nil }
            do {
                let log: any EventLog
                // Checked by `validate()`.
                switch try EventLogConfiguration(parsing: events) {
                case .none: return nil
                // A dry run only reads: without the file's lock, so beside the server that holds it.
                case .file(let path) where dryRun: log = try FileEventLog(readingOnly: path)
                case let configuration:
                    guard let opened = try configuration.open() else { return nil }
                    log = opened
                }
                let logger = Logger(label: "offerd") { LogfmtLogHandler(label: $0, level: .warning) }
                return try BatchEventLog(
                    log: log, describedLog: events, snapshot: snapshot, records: !dryRun, logger: logger)
            } catch let error as BatchDecider.Failure {
                printError("offerd decide batch: \(error.message)")
            } catch {
                printError("offerd decide batch: \(events): \(error)")
            }
            throw ExitCode(1)
        }

        func run() throws {
            let (catalog, snapshot) = try engine.load()
            var threadCount = threads ?? (recordsEvents ? 1 : activeProcessorCount())
            if recordsEvents && threadCount > 1 {
                printError(
                    "offerd decide batch: --events records decision events in input order: deciding on one thread "
                        + "(--threads \(threadCount) applies with --dry-run)")
                threadCount = 1
            }
            let eventLog = try openEventLog(snapshot: snapshot)
            defer { eventLog?.close() }
            let decider = BatchDecider(
                catalog: catalog, snapshot: snapshot, configuration: BatchDecider.Configuration(threads: threadCount),
                events: eventLog)
            let batchInput: BatchDecider.Input
            if let input {
                batchInput = .lines(path: input)
            } else {
                let name = audience ?? "*"
                batchInput = .audience(name == "*" ? nil : name, scopes: scope.map(\.scope))
            }
            // An unreadable input stops the run before the output is created or truncated.
            if let input, input != "-", access(input, R_OK) != 0 {
                printError("offerd decide batch: cannot read \(input): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            let reporter = ProgressReporter(enabled: !quiet, isTerminal: isatty(STDERR_FILENO) != 0)
            let stats: BatchStats
            do throws(BatchDecider.Failure) {
                let out = try BatchOutput(path: output)
                stats = try decider.run(input: batchInput, output: out) { reporter.update($0) }
                try out.close()
            } catch {
                reporter.finish()
                printError("offerd decide batch: \(error.message)")
                throw ExitCode(1)
            }
            reporter.finish()
            printError(summary(stats, events: eventLog))
        }

        private func summary(_ stats: BatchStats, events eventLog: BatchEventLog?) -> String {
            let rate = stats.seconds > 0 ? Double(stats.requests) / stats.seconds : 0
            var lines = [
                "offerd decide batch: \(stats.requests) decided, \(stats.errors) error lines, "
                    + "\(formatted(stats.seconds, digits: 2)) s, \(Int(rate.rounded())) decisions/s"
            ]
            if let audience {
                lines.append("  audience \(audience): \(stats.requests) of \(stats.profilesWalked) profiles")
            }
            for entry in stats.outcomeCounts {
                let reason = entry.reason == "REASON_UNSPECIFIED" ? "" : " \(entry.reason)"
                lines.append("  \(entry.outcome)\(reason): \(entry.count)")
            }
            if let eventLog, let events {
                var line = "  event log \(events): \(eventLog.replayedEntries) entries read"
                if eventLog.skippedEntries > 0 { line += " (\(eventLog.skippedEntries) malformed, skipped)" }
                line += eventLog.records ? ", \(eventLog.eventsRecorded) decision events recorded" : ", dry run"
                lines.append(line)
            }
            return lines.joined(separator: "\n")
        }
    }
}

/// The options every decide command shares with `serve`: the files and the engine's policies.
struct EngineArguments: ParsableArguments {
    @Option(help: "The catalog JSON file.") var catalog: String
    @Option(help: "The profile snapshot file (built by `offerd snapshot build`).") var snapshot: String
    @Option(help: "How empty and `u` consents resolve: granted or denied.") var consentDefault: ConsentDefault =
        .granted
    @Option(help: "Identities not in the snapshot: decide or fallback.") var unknownProfile: UnknownProfilePolicy =
        .decide

    /// The catalog compiled with these policies, and the snapshot; a failure names the file and exits 1.
    func load() throws -> (LoadedCatalog, ProfileSnapshot) {
        do {
            let options = EngineOptions(consentDefault: consentDefault, unknownProfile: unknownProfile)
            return (try loadCatalog(path: catalog, options: options), try loadSnapshot(path: snapshot))
        } catch {
            printError(error.message)
            throw ExitCode(1)
        }
    }
}

/// `DECISION:PLACEMENT[:COUNT]`. A third part that is not a number belongs to neither: the form is refused.
struct ScopeArgument: ExpressibleByArgument {
    let scope: ScopeRequest

    init?(argument: String) {
        let parts = argument.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 2: scope = ScopeRequest(decisionID: parts[0], placementID: parts[1], itemCount: 1)
        case 3:
            guard let count = UInt32(parts[2]) else { return nil }
            scope = ScopeRequest(decisionID: parts[0], placementID: parts[1], itemCount: count)
        default: return nil
        }
        if scope.decisionID.isEmpty || scope.placementID.isEmpty { return nil }
    }
}

/// `KEY=VALUE` (a string) or `KEY:=JSON` (a number, true, false or null).
struct ContextArgument: ExpressibleByArgument {
    let key: String
    let value: ContextValue

    init?(argument: String) {
        guard let equals = argument.firstIndex(of: "=") else { return nil }
        let beforeEquals = argument[..<equals]
        let text = String(argument[argument.index(after: equals)...])
        if beforeEquals.hasSuffix(":") {
            key = String(beforeEquals.dropLast())
            switch try? JSONParser.parse(text) {
            case .number(let number): value = .number(number)
            case .bool(let flag): value = .bool(flag)
            case .null: value = .null
            default: return nil
            }
        } else {
            key = String(beforeEquals)
            value = .string(text)
        }
        if key.isEmpty { return nil }
    }
}

/// Progress on standard error: a bar redrawn at most 5 times a second on a terminal, a line every 10 s otherwise.
final class ProgressReporter: @unchecked Sendable {
    // `@unchecked Sendable`: `update` runs on the batch's writer thread only; `finish` after the run returned.
    private let enabled: Bool
    private let isTerminal: Bool
    private var lastReport = 0.0
    private var drewBar = false

    init(enabled: Bool, isTerminal: Bool) {
        self.enabled = enabled
        self.isTerminal = isTerminal
    }

    func update(_ progress: BatchProgress) {
        guard enabled else { return }
        let interval = isTerminal ? 0.2 : 10
        guard progress.seconds - lastReport >= interval else { return }
        lastReport = progress.seconds
        let rate = progress.seconds > 0 ? Double(progress.stats.requests) / progress.seconds : 0
        let decided = "\(progress.stats.requests) decided, \(Int(rate.rounded()))/s"
        var fraction: Double?
        if let total = progress.totalUnits, total > 0 { fraction = min(1, Double(progress.units) / Double(total)) }
        if isTerminal {
            var line = "\r"
            if let fraction {
                let width = 30
                let filled = Int((fraction * Double(width)).rounded(.down))
                line +=
                    "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
                line += "\(Int((fraction * 100).rounded(.down)))% "
            }
            line += decided
            if let fraction, fraction > 0 {
                let left = progress.seconds * (1 - fraction) / fraction
                line += ", \(formatted(left, digits: 0)) s left"
            }
            writeError(line + "\u{1B}[K")
            drewBar = true
        } else {
            var line = "offerd decide batch: \(decided), \(formatted(progress.seconds, digits: 0)) s"
            if let fraction { line += ", \(Int((fraction * 100).rounded(.down)))% of the input" }
            writeError(line + "\n")
        }
    }

    /// Ends the bar's line, so the summary starts on its own.
    func finish() {
        if drewBar { writeError("\n") }
        drewBar = false
    }
}

private func writeError(_ text: String) {
    var bytes = Array(text.utf8)
    bytes.withUnsafeMutableBytes { buffer in
        _ = write(STDERR_FILENO, buffer.baseAddress, buffer.count)
    }
}

private func formatted(_ value: Double, digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    return digits == 0 ? String(Int(rounded)) : String(rounded)
}

private func activeProcessorCount() -> Int {
    max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
}
