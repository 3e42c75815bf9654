import Atomics
import Dispatch
import Foundation
import OfferdCore
import OfferdEventLog
import OfferdLiveState
import OfferdSnapshot
import OfferdWire

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `offerd decide batch` (SPEC 12): many decisions without a server, JSON Lines in, JSON Lines out in input order.
///
/// The pipeline is bounded, so memory stays flat however long the input is:
/// - the calling thread reads the input (lines of a file, or the snapshot's profiles of an audience) in chunks,
///   numbered in order, and hands them to the workers; it waits before each chunk until fewer than
///   ``Configuration/chunksInFlight`` chunks are read but not yet written;
/// - `threads` workers decode, decide and encode whole chunks, each into one output buffer;
/// - a writer thread writes the chunks' outputs in sequence order, holding back those that finish early.
///
/// Every decision takes the server's path: ``DecisionRequest/validationError()``, the snapshot lookup,
/// `DecisionEngine.decide` with the same options, a UUID for an empty request id. Unlike the server, a batch
/// honours `explain` without a flag: whoever runs it holds the catalog and the snapshot anyway. Without an event
/// log nothing is read from or recorded in one (SPEC 12 without `--events`) and `dry_run` changes nothing; with one
/// (``BatchEventLog``) the lines read its counts and consents and record their decision events as Decide does,
/// on one worker thread in input order.
public final class BatchDecider: Sendable {
    /// How to cut and spread the work.
    public struct Configuration: Sendable {
        /// Worker threads (at least 1).
        public var threads: Int
        /// Bytes of input lines per chunk (whole lines; a longer line makes a chunk of its own).
        public var chunkBytes: Int = 256 << 10
        /// Profiles per chunk in audience mode.
        public var chunkProfiles: Int = 2048
        /// The longest input line; a longer one gets an error line and is skipped.
        public var maximumLineBytes: Int = 16 << 20

        public init(threads: Int) {
            self.threads = max(1, threads)
        }

        /// Chunks read and not yet written: bounds the memory of the run.
        var chunksInFlight: Int { threads * 4 }
    }

    /// Where the requests come from.
    public enum Input: Sendable {
        /// JSON Lines, one DecideRequest a line, from a file (`-`: standard input).
        case lines(path: String)
        /// Every profile of the snapshot that is a member of `audience` (nil: every profile), with these scopes.
        case audience(String?, scopes: [ScopeRequest])
    }

    /// A file that could not be read or written: the run stops; the message names the file.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    let catalog: LoadedCatalog
    let snapshot: ProfileSnapshot
    /// The snapshot's folded state as an overlay; nil when it folded nothing.
    let folded: LiveOverlaySnapshot?
    /// The event log of `--events`: read at the start, recorded into as lines are decided; nil without one.
    let events: BatchEventLog?
    let configuration: Configuration
    /// Request time in epoch seconds, read per request as the server does; injectable for tests.
    let now: @Sendable () -> Double

    /// - Parameter events: the event log to read and record into (`--events`); one that records needs
    ///   `configuration.threads == 1` (its decisions are made in input order).
    public init(
        catalog: LoadedCatalog, snapshot: ProfileSnapshot, configuration: Configuration, events: BatchEventLog? = nil,
        now: (@Sendable () -> Double)? = nil
    ) {
        precondition(
            !(events?.records ?? false) || configuration.threads == 1, "a recording batch decides on one thread")
        self.catalog = catalog
        self.snapshot = snapshot
        folded = LiveOverlaySnapshot.foldedOnly(snapshot)
        self.events = events
        self.configuration = configuration
        self.now = now ?? { wallClockSeconds() }
    }

    // MARK: - One request

    /// Decides one input line as the server's Decide decides a request and appends its response line to `output`,
    /// or an error line with the server's INVALID_ARGUMENT message, echoing the line's request id when it has one
    /// that can be read.
    func decideLine(_ line: ArraySlice<UInt8>, lineNumber: Int, into output: inout [UInt8], stats: inout BatchStats) {
        let request: DecisionRequest
        do {
            request = try DecideJSONCodec.decodeRequest(Array(line))
        } catch {
            appendError(requestID: Self.salvageRequestID(line), message: error.message, line: lineNumber, to: &output)
            stats.errors += 1
            return
        }
        if let problem = request.validationError() {
            appendError(requestID: request.requestID, message: problem, line: lineNumber, to: &output)
            stats.errors += 1
            return
        }
        decide(request, profile: snapshot.profile(for: request.identity), into: &output, stats: &stats)
    }

    /// The response to one valid request (one that passed ``DecisionRequest/validationError()``), as proto3 JSON
    /// without a newline: `offerd decide`. An empty request id becomes a UUID, as in the server.
    public func decideOne(_ request: DecisionRequest) -> [UInt8] {
        var output: [UInt8] = []
        var stats = BatchStats()
        decide(request, profile: snapshot.profile(for: request.identity), into: &output, stats: &stats)
        output.removeLast() // the newline
        return output
    }

    /// Whether the profile key of `request` may have folded state (`LiveOverlaySnapshot.mayHaveState`): if not,
    /// and no `total` rule reads the folded totals, the decision is the snapshot's alone, as in the server.
    private static func mayHaveState(
        _ folded: LiveOverlaySnapshot, request: DecisionRequest, profile: borrowing SnapshotProfile?, catalog: Catalog
    ) -> Bool {
        if catalog.hasTotalScopeCaps { return true }
        let keyHash =
            profile?.withPrimaryIdentityUTF8 { LiveProfileKeyHash(namespace: $0, id: $1) }
            ?? request.identity.withUTF8 { LiveProfileKeyHash(namespace: $0, id: $1) }
        return folded.mayHaveState(keyHash)
    }

    /// The decision with the event log's overlay (or the folded snapshot's), as the server makes it, and the
    /// profile key when it was built.
    private func decideWithOverlay(
        _ request: DecisionRequest, profile: SnapshotProfile?, now time: Double
    ) -> (DecisionResult, EventLogProfileKey?) {
        guard let overlay = events?.overlay() ?? folded,
            Self.mayHaveState(overlay, request: request, profile: profile, catalog: catalog.engine.catalog)
        else {
            return (catalog.engine.decide(request, profile: profile, now: time), nil)
        }
        // The overlay's counts and consents under the profile key (SPEC 9.3, 9.5, 9.6).
        let key = EventLogProfileKey(identity: request.identity, primaryIdentity: profile?.primaryIdentity)
        let inputs = overlay.decideInputs(for: key, snapshotConsents: profile?.consents ?? .empty)
        return (
            catalog.engine.decide(request, profile: profile, live: inputs.counts, consents: inputs.consents, now: time),
            key
        )
    }

    /// The server's decision path for a valid request, and the response line.
    func decide(
        _ request: DecisionRequest, profile: consuming SnapshotProfile?, into output: inout [UInt8],
        stats: inout BatchStats
    ) {
        let time = now()
        let (result, key) = decideWithOverlay(request, profile: profile, now: time)
        if let events, events.records, !request.dryRun {
            // Counted for the lines after this one (SPEC 12), as a server counts its own at once (SPEC 9.1).
            events.record(
                LiveStateRuntime.decisionEntries(
                    result, catalog: catalog.engine.catalog, timeMs: CalendarBuckets.milliseconds(time),
                    serverID: events.writerID
                ) {
                    key ?? EventLogProfileKey(identity: request.identity, primaryIdentity: profile?.primaryIdentity)
                }, countingTotals: catalog.engine.catalog.hasTotalScopeCaps)
        }
        stats.record(result)
        let requestID = request.requestID.isEmpty ? UUIDv4.random() : request.requestID
        DecideJSONCodec.appendResponse(
            result, requestID: requestID, snapshotVersion: snapshot.version,
            includeContent: request.includeContent, includeMetadata: request.includeMetadata, to: &output)
        output.append(UInt8(ascii: "\n"))
    }

    private func appendError(requestID: String, message: String, line: Int, to output: inout [UInt8]) {
        DecideJSONCodec.appendError(
            requestID: requestID, code: "invalid_argument", message: message, line: line, to: &output)
        output.append(UInt8(ascii: "\n"))
    }

    /// The `requestId` (or `request_id`) string of a line that is a JSON object but not a valid request, so the
    /// error line can be matched to it; "" otherwise.
    static func salvageRequestID(_ line: ArraySlice<UInt8>) -> String {
        guard case .object(let members) = try? JSONParser.parse(Array(line)) else { return "" }
        for member in members where member.key == "requestId" || member.key == "request_id" {
            if case .string(let text) = member.value, !text.utf8.contains(0) { return text }
        }
        return ""
    }

    // MARK: - The run

    /// Reads `input`, decides every request on `threads` workers and writes the responses to `output` in input
    /// order. `progress` is called on the writer thread after each chunk is written.
    ///
    /// - Throws: ``Failure`` when the input cannot be read or the output cannot be written; what was written
    ///   before stays written.
    public func run(
        input: Input, output: BatchOutput, progress: (@Sendable (BatchProgress) -> Void)? = nil
    ) throws(Failure) -> BatchStats {
        let started = monotonicSeconds()
        let work = WorkQueue()
        let results = ResultBuffer()
        let slots = DispatchSemaphore(value: configuration.chunksInFlight)
        let failed = ManagedAtomic(false)
        // Signalled once by each worker, then once by the writer, which cannot end before the workers have (it waits
        // for `results.finish`, called after their signals).
        let finished = DispatchSemaphore(value: 0)
        let totalUnits: Int?
        switch input {
        case .audience: totalUnits = snapshot.profileCount
        case .lines(let path): totalUnits = path == "-" ? nil : fileSize(path)
        }

        for index in 0..<configuration.threads {
            let thread = Thread { [self] in
                while let chunk = work.pop() {
                    results.put(process(chunk))
                }
                finished.signal()
            }
            thread.name = "batch-\(index)"
            thread.start()
        }

        // The writer: chunk results in sequence order; a failed write stops reading (through `failed`) and keeps
        // releasing slots so the reader never blocks on a dead writer.
        let writerState = WriterState()
        let writer = Thread {
            var totals = BatchStats()
            var units = 0
            var next = 0
            while let result = results.take(sequence: next) {
                next += 1
                if writerState.failure == nil {
                    do throws(Failure) {
                        if let failure = result.failure { throw failure }
                        try output.write(result.output)
                    } catch {
                        writerState.failure = error
                        failed.store(true, ordering: .relaxed)
                    }
                }
                totals.add(result.stats)
                units += result.units
                slots.signal()
                progress?(
                    BatchProgress(
                        stats: totals, units: units, totalUnits: totalUnits, seconds: monotonicSeconds() - started))
            }
            writerState.totals = totals
            finished.signal()
        }
        writer.name = "batch-writer"
        writer.start()

        var sequence = 0
        var readFailure: Failure?
        let submit: (BatchChunk.Work, Int) -> Bool = { chunkWork, units in
            slots.wait()
            if failed.load(ordering: .relaxed) {
                slots.signal()
                return false
            }
            work.push(BatchChunk(sequence: sequence, work: chunkWork, units: units))
            sequence += 1
            return true
        }
        do {
            switch input {
            case .lines(let path):
                try readLines(path: path, submit: submit)
            case .audience(let audience, let scopes):
                readAudience(audience, scopes: scopes, submit: submit)
            }
        } catch {
            readFailure = error
        }
        for _ in 0..<configuration.threads { work.push(nil) }
        for _ in 0..<configuration.threads { finished.wait() }
        results.finish(after: sequence)
        finished.wait()
        if let failure = writerState.failure { throw failure }
        if let readFailure { throw readFailure }
        try output.flush()
        var totals = writerState.totals
        totals.seconds = monotonicSeconds() - started
        return totals
    }

    private func process(_ chunk: BatchChunk) -> BatchChunkResult {
        var output: [UInt8] = []
        var stats = BatchStats()
        switch chunk.work {
        case .lines(let bytes, let firstLine, let skippedLine):
            output.reserveCapacity(bytes.count * 2)
            // The skipped line came before this chunk's lines: its error line comes first.
            if let skippedLine {
                appendError(
                    requestID: "",
                    message: "line \(skippedLine) is longer than \(configuration.maximumLineBytes) bytes",
                    line: skippedLine, to: &output)
                stats.errors += 1
            }
            var lineNumber = firstLine
            var start = bytes.startIndex
            while start < bytes.endIndex {
                let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
                var line = bytes[start..<end]
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                // Blank lines are skipped, as in profile sources.
                if line.contains(where: { $0 != 0x20 && $0 != 0x09 }) {
                    decideLine(line, lineNumber: lineNumber, into: &output, stats: &stats)
                }
                lineNumber += 1
                start = end + 1
            }
        case .profiles(let profiles, let audience, let scopes):
            stats.profilesWalked = profiles.count
            for profile in profiles {
                if let audience, !profile.isMember(of: audience) { continue }
                let identity = profile.primaryIdentity
                let request = DecisionRequest(
                    requestID: identity.namespace + ":" + identity.id, identity: identity, scopes: scopes)
                decide(request, profile: profile, into: &output, stats: &stats)
            }
        }
        // The chunk's decision events are in the log before its lines are written (SPEC 12: recorded as Decide
        // would); if they cannot be, its lines are not written and the run stops.
        var failure: Failure?
        if let events, events.records {
            do throws(Failure) {
                try events.flush()
            } catch {
                failure = error
            }
        }
        return BatchChunkResult(
            sequence: chunk.sequence, output: output, stats: stats, units: chunk.units, failure: failure)
    }

    /// Cuts the input into chunks of whole lines. A line longer than the limit is skipped up to its end and
    /// reported by an error line in the chunk where it ends.
    private func readLines(path: String, submit: (BatchChunk.Work, Int) -> Bool) throws(Failure) {
        let file: PosixFile
        do {
            file = path == "-" ? try PosixFile.openForReading("/dev/stdin") : try PosixFile.openForReading(path)
        } catch {
            throw Failure(message: "cannot read \(path): \(error.reason)")
        }
        defer { try? file.close() }
        let blockSize = configuration.chunkBytes
        var pending: [UInt8] = []
        var lineNumber = 1
        var skipping: Int? // the number of a too-long line being skipped
        var reported: Int?
        var block = [UInt8](repeating: 0, count: blockSize)
        while true {
            let count: Int
            do {
                count = try file.read(into: &block, from: 0)
            } catch {
                throw Failure(message: "cannot read \(path): \(error.reason)")
            }
            if count == 0 { break }
            var slice = block[0..<count]
            if skipping != nil {
                guard let newline = slice.firstIndex(of: UInt8(ascii: "\n")) else { continue }
                slice = slice[(newline + 1)...]
                reported = skipping
                skipping = nil
                lineNumber += 1
            }
            if let lastNewline = slice.lastIndex(of: UInt8(ascii: "\n")) {
                pending.append(contentsOf: slice[..<(lastNewline + 1)])
                let lines = pending.count(where: { $0 == UInt8(ascii: "\n") })
                pending.removeLast() // the final newline: the chunk ends there
                guard submit(.lines(pending, firstLine: lineNumber, skippedLine: reported), pending.count + 1) else {
                    return
                }
                reported = nil
                lineNumber += lines
                pending = Array(slice[(lastNewline + 1)...])
            } else {
                pending.append(contentsOf: slice)
            }
            if pending.count > configuration.maximumLineBytes {
                pending = []
                skipping = lineNumber
            }
        }
        if let skipping {
            _ = submit(.lines([], firstLine: lineNumber, skippedLine: skipping), 0)
        } else if !pending.isEmpty || reported != nil {
            _ = submit(.lines(pending, firstLine: lineNumber, skippedLine: reported), pending.count)
        }
    }

    private func readAudience(_ audience: String?, scopes: [ScopeRequest], submit: (BatchChunk.Work, Int) -> Bool) {
        let name = audience.map(InternedName.init)
        var chunk: [SnapshotProfile] = []
        chunk.reserveCapacity(configuration.chunkProfiles)
        for profile in snapshot.profiles {
            chunk.append(profile)
            if chunk.count == configuration.chunkProfiles {
                guard submit(.profiles(chunk, audience: name, scopes: scopes), chunk.count) else { return }
                chunk.removeAll(keepingCapacity: true)
            }
        }
        if !chunk.isEmpty { _ = submit(.profiles(chunk, audience: name, scopes: scopes), chunk.count) }
    }

    private func fileSize(_ path: String) -> Int? {
        guard let file = try? PosixFile.openForReading(path) else { return nil }
        defer { try? file.close() }
        guard let status = try? FileStatus.of(file), status.isRegularFile else { return nil }
        return Int(status.size)
    }
}

// MARK: - Counts and progress

/// What a batch decided: requests, error lines, and propositions per outcome and reason.
public struct BatchStats: Sendable, Equatable {
    /// Requests decided (lines answered with a response).
    public var requests = 0
    /// Lines answered with an error line.
    public var errors = 0
    /// Profiles of the snapshot looked at in audience mode (members or not).
    public var profilesWalked = 0
    /// Propositions per `outcome * 8 + reason` (raw values).
    public var propositions = [Int](repeating: 0, count: 5 * 8)
    /// Wall-clock seconds of the run (set at the end).
    public var seconds: Double = 0

    public init() {}

    mutating func record(_ result: DecisionResult) {
        requests += 1
        for proposition in result.propositions {
            propositions[proposition.outcome.rawValue * 8 + proposition.reason.rawValue] += 1
        }
    }

    mutating func add(_ other: BatchStats) {
        requests += other.requests
        errors += other.errors
        profilesWalked += other.profilesWalked
        for index in propositions.indices { propositions[index] += other.propositions[index] }
    }

    /// The count of propositions with this outcome and reason.
    public func count(_ outcome: Outcome, _ reason: Reason) -> Int {
        propositions[outcome.rawValue * 8 + reason.rawValue]
    }

    /// Non-zero counts, as `(OUTCOME_X, REASON_Y, count)`, in enum order.
    public var outcomeCounts: [(outcome: String, reason: String, count: Int)] {
        propositions.indices.compactMap { index in
            let count = propositions[index]
            guard count > 0 else { return nil }
            return (DecideJSONCodec.outcomeNames[index / 8], DecideJSONCodec.reasonNames[index % 8], count)
        }
    }
}

/// Where a batch stands, after each chunk written.
public struct BatchProgress: Sendable {
    public var stats: BatchStats
    /// Input consumed: bytes of a file, or profiles of the snapshot walked.
    public var units: Int
    /// All the input, when known (a regular file's size, the snapshot's profile count).
    public var totalUnits: Int?
    public var seconds: Double
}

// MARK: - Pipeline parts

struct BatchChunk: Sendable {
    enum Work: Sendable {
        /// Lines (without the final newline), the number of the first, and a too-long line skipped before them.
        case lines([UInt8], firstLine: Int, skippedLine: Int?)
        case profiles([SnapshotProfile], audience: InternedName?, scopes: [ScopeRequest])
    }

    let sequence: Int
    let work: Work
    /// Input units the chunk covers (for progress).
    let units: Int
}

struct BatchChunkResult: Sendable {
    let sequence: Int
    let output: [UInt8]
    let stats: BatchStats
    let units: Int
    /// Why the chunk's output must not be written (its decision events could not be recorded).
    var failure: BatchDecider.Failure? = nil
}

/// Chunks waiting for a worker; nil tells a worker to stop. Unbounded by itself: the run's slot semaphore bounds
/// what is in it.
private final class WorkQueue: @unchecked Sendable {
    // `@unchecked Sendable`: `waiting` is only touched under `lock`.
    private let lock = NSLock()
    private var waiting: [BatchChunk?] = []
    private var head = 0
    private let available = DispatchSemaphore(value: 0)

    func push(_ chunk: BatchChunk?) {
        lock.lock()
        waiting.append(chunk)
        lock.unlock()
        available.signal()
    }

    func pop() -> BatchChunk? {
        available.wait()
        lock.lock()
        defer { lock.unlock() }
        let chunk = waiting[head]
        waiting[head] = nil
        head += 1
        if head == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            head = 0
        }
        return chunk
    }
}

/// Results by sequence number, handed to the writer in order.
private final class ResultBuffer: @unchecked Sendable {
    // `@unchecked Sendable`: the fields are only touched under `condition`'s lock.
    private let condition = NSCondition()
    private var results: [Int: BatchChunkResult] = [:]
    private var end: Int?

    func put(_ result: BatchChunkResult) {
        condition.lock()
        results[result.sequence] = result
        condition.unlock()
        condition.broadcast()
    }

    /// No chunk at or after `sequence` will come.
    func finish(after sequence: Int) {
        condition.lock()
        end = sequence
        condition.unlock()
        condition.broadcast()
    }

    /// The result of chunk `sequence`, waiting for it; nil once every chunk was taken.
    func take(sequence: Int) -> BatchChunkResult? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let result = results.removeValue(forKey: sequence) { return result }
            if let end, sequence >= end { return nil }
            condition.wait()
        }
    }
}

/// The writer thread's outcome, read by the caller after the writer signalled it finished.
private final class WriterState: @unchecked Sendable {
    // `@unchecked Sendable`: written by the writer thread only, read after its `finished` signal.
    var failure: BatchDecider.Failure?
    var totals = BatchStats()
}

// MARK: - Output

/// The output file (`-`: standard output), written in large blocks.
public final class BatchOutput: @unchecked Sendable {
    // `@unchecked Sendable`: used by the writer thread only, after the caller made it.
    private let descriptor: Int32
    private let path: String
    private var owned: Bool
    private var buffer: [UInt8] = []
    private static let blockSize = 1 << 20

    /// Opens (creates or truncates) `path`; `-` is standard output.
    public init(path: String) throws(BatchDecider.Failure) {
        self.path = path
        if path == "-" {
            descriptor = STDOUT_FILENO
            owned = false
        } else {
            let opened = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard opened >= 0 else {
                throw BatchDecider.Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            descriptor = opened
            owned = true
        }
        buffer.reserveCapacity(Self.blockSize)
    }

    deinit {
        if owned { _ = systemClose(descriptor) }
    }

    func write(_ bytes: [UInt8]) throws(BatchDecider.Failure) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.blockSize { try flush() }
    }

    /// Writes what is buffered.
    func flush() throws(BatchDecider.Failure) {
        var written = 0
        while written < buffer.count {
            let count = buffer.withUnsafeBytes { raw in
                systemWrite(descriptor, raw.baseAddress! + written, raw.count - written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                throw BatchDecider.Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            written += count
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Closes the file, reporting a late write error (NFS, a full disk reported at close).
    public func close() throws(BatchDecider.Failure) {
        guard owned else { return }
        owned = false
        if systemClose(descriptor) != 0 {
            throw BatchDecider.Failure(message: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}

// The system calls under names that the methods `write` and `close` do not shadow.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}

private func systemClose(_ descriptor: Int32) -> Int32 {
    close(descriptor)
}
