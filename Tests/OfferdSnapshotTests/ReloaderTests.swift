import Foundation
import OfferdCore
import Testing

@testable import OfferdSnapshot

/// Collects events and waits for them with a deadline.
private final class EventLog<Event: Sendable>: Sendable {
    private let events = LockedState<[Event]>([])

    func append(_ event: Event) { events.withLock { $0.append(event) } }

    var all: [Event] { events.withLock { $0 } }

    /// Waits until `condition` holds for the events, or fails after `seconds`.
    func wait(seconds: Double = 10, until condition: ([Event]) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(all) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition(all)
    }
}

@Suite("File watcher and reloader", .serialized)
struct ReloaderTests {
    static let poll = Duration.milliseconds(20)

    private func build(_ directory: TemporaryDirectory, _ name: String, version: String) throws -> String {
        let output = directory.file(name)
        _ = try SnapshotBuilder.build(input: examplesPath(), output: output, version: version, progress: nil)
        return output
    }

    private func loadedVersions(_ events: [ReloadEvent]) -> [String] {
        events.compactMap { if case .loaded(let version, _) = $0 { version } else { nil } }
    }

    private func failures(_ events: [ReloadEvent]) -> Int {
        events.filter { if case .failed = $0 { true } else { false } }.count
    }

    @Test func watcherSeesInPlaceRewriteRenameAndRecreate() async throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("watched.txt", "one")
        let log = EventLog<String>()
        let watcher = FileChangeWatcher(paths: [path], pollInterval: Self.poll) { log.append($0) }
        watcher.start()
        defer { watcher.stop() }
        try await Task.sleep(for: .milliseconds(60))
        #expect(log.all.isEmpty, "reported a change that did not happen")

        try directory.write("watched.txt", "two, rewritten in place")
        #expect(await log.wait { $0.count == 1 })

        try directory.write("next.txt", "three")
        #expect(rename(directory.file("next.txt"), path) == 0)
        #expect(await log.wait { $0.count == 2 })

        try FileManager.default.removeItem(atPath: path)
        try await Task.sleep(for: .milliseconds(80))
        #expect(log.all.count == 2, "a deletion alone is not a change to load")
        try directory.write("watched.txt", "four")
        #expect(await log.wait { $0.count == 3 })
        #expect(log.all.allSatisfy { $0 == path })

        watcher.stop()
        try directory.write("watched.txt", "five, after stop")
        try await Task.sleep(for: .milliseconds(100))
        #expect(log.all.count == 3)
    }

    @Test func watcherWaitsForAGrowingFileToSettle() async throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("growing.txt", "")
        let log = EventLog<String>()
        // The writer appends every 2 ms while polls are 200 ms apart, so no two polls can see the same size. It runs
        // on its own thread, not the test's concurrency pool, which parallel tests keep busy on a 2-core machine.
        let watcher = FileChangeWatcher(paths: [path], pollInterval: .milliseconds(200)) { log.append($0) }
        watcher.start()
        defer { watcher.stop() }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        let writerDone = DispatchSemaphore(value: 0)
        // The longest pause between two writes: a machine busy enough to stall the writer for a poll interval
        // (dirty-page throttling under a parallel build does) really leaves the file settled for that long, and
        // the watcher is then right to report it.
        let longestPause = EventLog<Double>()
        // What the watcher had reported by the writer's last write, read on the writer's thread: the test's own
        // task may resume long after (a busy pool), when the file has rightly settled.
        let reportedWhileGrowing = EventLog<[String]>()
        let writer = Thread {
            let end = Date().addingTimeInterval(1.0)
            var last = Date()
            var longest = 0.0
            while Date() < end {
                handle.write(Data("chunk\n".utf8))
                let now = Date()
                longest = max(longest, now.timeIntervalSince(last))
                last = now
                usleep(2_000)
            }
            reportedWhileGrowing.append(log.all)
            longestPause.append(longest)
            writerDone.signal()
        }
        writer.start()
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                writerDone.wait()
                continuation.resume()
            }
        }
        let pause = longestPause.all.first ?? 0
        if pause < 0.1 {
            #expect(reportedWhileGrowing.all.first?.isEmpty == true, "reported while the file was still growing")
        }
        try handle.close()
        #expect(await log.wait { $0.count == 1 })
    }

    @Test func reloaderFollowsRenameSymlinkSwapRewriteRecreateAndKeepsOldOnCorruption() async throws {
        let directory = try TemporaryDirectory()
        let target = try build(directory, "snap-v1", version: "v1")
        let link = directory.file("current.snap")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)

        let log = EventLog<ReloadEvent>()
        let reloader = SnapshotReloader(path: link, pollInterval: Self.poll) { log.append($0) }
        try reloader.loadInitial()
        #expect(reloader.current?.version == "v1")
        reloader.start()
        defer { reloader.stop() }

        // Symlink retargeted (atomically, through a rename of a new link).
        _ = try build(directory, "snap-v2", version: "v2")
        try FileManager.default.createSymbolicLink(
            atPath: directory.file("tmp-link"), withDestinationPath: directory.file("snap-v2"))
        #expect(rename(directory.file("tmp-link"), link) == 0)
        #expect(await log.wait { loadedVersions($0).last == "v2" })
        #expect(reloader.current?.version == "v2")

        // Replaced by rename: the builder renames over the link's target.
        _ = try build(directory, "snap-v2", version: "v3")
        #expect(await log.wait { loadedVersions($0).last == "v3" })

        // Rewritten in place (same inode).
        _ = try build(directory, "staging", version: "v4")
        let v4 = try readBytes(directory.file("staging"))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.file("snap-v2")))
        try handle.truncate(atOffset: 0)
        handle.write(Data(v4))
        try handle.close()
        #expect(await log.wait { loadedVersions($0).last == "v4" })

        // Corrupt replacement: the old version keeps serving.
        let held = try #require(reloader.current)
        var corrupt = v4
        corrupt[corrupt.count / 2] ^= 0xFF
        try writeBytes(corrupt, to: directory.file("corrupt"))
        #expect(rename(directory.file("corrupt"), directory.file("snap-v2")) == 0)
        #expect(await log.wait { failures($0) >= 1 })
        #expect(reloader.current?.version == "v4")
        #expect(reloader.current === held)
        #expect(held.profile(for: Identity(namespace: "ECID", id: "4711")) != nil)

        // Deleted, then recreated.
        try FileManager.default.removeItem(atPath: directory.file("snap-v2"))
        try await Task.sleep(for: .milliseconds(80))
        #expect(reloader.current?.version == "v4")
        _ = try build(directory, "snap-v2", version: "v5")
        #expect(await log.wait { loadedVersions($0).last == "v5" })
        #expect(reloader.current?.version == "v5")
        #expect(loadedVersions(log.all) == ["v1", "v2", "v3", "v4", "v5"])
    }

    @Test func initialLoadFailureThrowsAndExplicitReloadKeepsTheOld() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("profiles.snap")
        let log = EventLog<ReloadEvent>()
        let reloader = SnapshotReloader(path: path, pollInterval: Self.poll) { log.append($0) }
        #expect(throws: SnapshotLoadError.self) { try reloader.loadInitial() }
        #expect(reloader.current == nil)

        _ = try build(directory, "profiles.snap", version: "a")
        #expect(reloader.reload())
        #expect(reloader.current?.version == "a")
        try writeBytes(Array("garbage".utf8), to: path)
        #expect(!reloader.reload())
        #expect(reloader.current?.version == "a")
        let failure = log.all.last
        guard case .failed(let failedPath, let message) = failure else {
            Issue.record("expected a failure event, got \(String(describing: failure))")
            return
        }
        #expect(failedPath == path)
        #expect(message.contains("not an offerd snapshot"))
    }

    @Test func fileReloaderWorksForOtherValueTypes() throws {
        final class Text: Sendable {
            let content: String
            init(_ content: String) { self.content = content }
        }
        struct Empty: Error {}
        let directory = try TemporaryDirectory()
        let path = try directory.write("catalog.json", "first")
        let reloader = FileReloader<Text>(
            path: path, pollInterval: Self.poll,
            load: { path in
                let content = try String(contentsOfFile: path, encoding: .utf8)
                guard !content.isEmpty else { throw Empty() }
                return Text(content)
            },
            version: { $0.content }, onEvent: { _ in })
        try reloader.loadInitial()
        try directory.write("catalog.json", "")
        #expect(!reloader.reload())
        #expect(reloader.current?.content == "first")
        try directory.write("catalog.json", "second")
        #expect(reloader.reload())
        #expect(reloader.store.load()?.content == "second")
    }
}
