import ArgumentParser
import Foundation
import OfferdEventLog
import OfferdLiveState
import OfferdSnapshot

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// MARK: - events

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Read and trim the event log of live state.",
        subcommands: [Export.self, Trim.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the log's entries after a position as JSON Lines (for snapshot build --events).")

        @Option(help: "The event log: file:PATH or redis://[USER:PASSWORD@]HOST:PORT[/DB][?key=KEY].")
        var events: String
        @Option(help: "Export the entries after this position (default: from the log's start).")
        var after: String?
        @Option(help: "The JSON Lines file to write (replaced atomically), or - for standard output.")
        var output: String

        func run() throws {
            let log = try openForReading(events)
            defer { log.close() }
            let start = try parsePosition(after, option: "--after")
            let sink = try LineSink(path: output)
            var count = 0
            var last: EventLogPosition?
            do {
                try forEachRecord(in: log, after: start) { record in
                    sink.write(EventLogExport.line(record))
                    count += 1
                    last = record.position
                }
                try sink.finish()
            } catch {
                sink.abandon()
                throw error
            }
            printError("\(count) entries exported\(last.map { ", last position \($0)" } ?? "")")
        }
    }

    struct Trim: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: ArgumentHelp(abstractText).abstract)
        private static let abstractText =
            "Remove the log's entries before the earlier of --keep-after and the first entry of the previous "
            + "calendar month (UTC)."

        @Option(help: "The event log: redis://... (shared) or file:PATH (only while no server holds it).")
        var events: String
        @Option(help: "A position every snapshot still served has folded (its watermark): entries after it stay.")
        var keepAfter: String
        /// The clock, for tests that need "the previous calendar month" to lie behind the log.
        @Option(help: .hidden) var nowMs: Int64?

        func run() throws {
            guard let keepAfter = EventLogPosition(keepAfter) else {
                throw ValidationError("--keep-after \(keepAfter) is not a log position")
            }
            let log: any EventLog
            do {
                guard let opened = try EventLogConfiguration(parsing: events).open() else {
                    throw ValidationError("--events none has nothing to trim")
                }
                log = opened
            } catch let error as EventLogConfigurationError {
                throw ValidationError(error.description)
            } catch let error as EventLogError {
                printError("\(events): \(error)")
                if case .locked = error {
                    printError("a running server trims its own file log after each snapshot swap")
                }
                throw ExitCode(1)
            }
            defer { log.close() }
            do {
                let now = nowMs ?? Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
                guard let cut = try EventLogTrimming.cut(log: log, keepAfter: keepAfter, nowMs: now) else {
                    print("nothing to trim: no entry comes before \(keepAfter)")
                    return
                }
                try log.trim(before: cut)
                print("removed the entries before \(cut)")
            } catch {
                printError("\(events): \(error)")
                throw ExitCode(1)
            }
        }
    }
}

/// Opens `--events` for reading: a file log without its lock (a running server may hold it), a Redis stream.
func openForReading(_ events: String) throws -> any EventLog {
    let configuration: EventLogConfiguration
    do {
        configuration = try EventLogConfiguration(parsing: events)
    } catch {
        throw ValidationError(error.description)
    }
    do {
        switch configuration {
        case .file(let path): return try FileEventLog(readingOnly: path)
        case .redis(let redis): return RedisStreamEventLog(configuration: redis)
        case .none: throw ValidationError("--events none has no entries")
        }
    } catch let error as EventLogError {
        printError("\(events): \(error)")
        throw ExitCode(1)
    }
}

func parsePosition(_ text: String?, option: String) throws -> EventLogPosition? {
    guard let text else { return nil }
    guard let position = EventLogPosition(text) else {
        throw ValidationError("\(option) \(text) is not a log position")
    }
    return position
}

/// Calls `body` with every entry of `log` after `start`, in order, up to the end the log has now.
func forEachRecord(
    in log: any EventLog, after start: EventLogPosition?, _ body: (EventLogRecord) throws -> Void
) throws {
    var position = start
    while true {
        let records: [EventLogRecord]
        do {
            records = try log.read(after: position, maxCount: 4096, timeout: .zero)
        } catch {
            printError("reading the event log: \(error)")
            throw ExitCode(1)
        }
        guard let last = records.last else { return }
        for record in records { try body(record) }
        position = last.position
    }
}

/// Calls `body` with every entry of a JSON Lines export, in file order; errors name the line.
func forEachExportedRecord(path: String, _ body: (EventLogRecord) throws -> Void) throws {
    guard let file = fopen(path, "rb") else {
        printError("\(path): \(String(cString: strerror(errno)))")
        throw ExitCode(1)
    }
    defer { fclose(file) }
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    defer { free(line) }
    var number = 0
    while true {
        let length = getline(&line, &capacity, file)
        if length < 0 { break }
        number += 1
        guard let line else { continue }
        var bytes = [UInt8](UnsafeRawBufferPointer(start: line, count: length))
        while let last = bytes.last, last == 0x0A || last == 0x0D { bytes.removeLast() }
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
        do {
            try body(try EventLogExport.record(fromLine: bytes))
        } catch let error as EventLogExportError {
            printError("\(path):\(number): \(error)")
            throw ExitCode(1)
        }
    }
    if ferror(file) != 0 {
        printError("\(path): read error")
        throw ExitCode(1)
    }
}

/// Writes lines to a temporary file renamed over `path` when finished (or to standard output for `-`).
final class LineSink {
    private let path: String
    private let temporary: String?
    private let file: UnsafeMutablePointer<FILE>
    private var closed = false

    init(path: String) throws {
        self.path = path
        if path == "-" {
            temporary = nil
            // A FILE of its own on descriptor 1 (the C global `stdout` is shared mutable state to Swift 6).
            guard let opened = fdopen(dup(STDOUT_FILENO), "wb") else {
                printError("standard output: \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
            file = opened
            return
        }
        let directory = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let temporary = (directory.isEmpty ? "" : directory + "/") + ".\(name).tmp-\(getpid())"
        guard let opened = fopen(temporary, "wb") else {
            printError("\(temporary): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        self.temporary = temporary
        file = opened
    }

    func write(_ line: [UInt8]) {
        _ = line.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fputc(0x0A, file)
    }

    func finish() throws {
        guard fflush(file) == 0, ferror(file) == 0 else {
            printError("\(path): could not write")
            abandon()
            throw ExitCode(1)
        }
        guard let temporary else { return }
        let synced = fsync(fileno(file)) == 0
        closed = true
        guard fclose(file) == 0, synced, rename(temporary, path) == 0 else {
            printError("\(path): \(String(cString: strerror(errno)))")
            unlink(temporary)
            throw ExitCode(1)
        }
    }

    /// Removes the temporary file; nothing is written to `path`.
    func abandon() {
        guard let temporary, !closed else { return }
        closed = true
        fclose(file)
        unlink(temporary)
    }
}
