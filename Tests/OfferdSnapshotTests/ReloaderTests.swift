import Foundation
import OfferdCore
import OfferdSnapshotBuilder
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot

/// Collects events from any thread.
private final class EventLog<Event: Sendable>: Sendable {
    private let events = LockedState<[Event]>([])

    func append(_ event: Event) { events.withLock { $0.append(event) } }

    var all: [Event] { events.withLock { $0 } }
}

/// Waits until `condition` holds, checking every 10 ms, or gives up after `seconds` (a bound for a busy
/// machine, never a verdict: the caller expects the result to be true).
private func eventually(seconds: Double = 60, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(10_000)
    }
    return condition()
}

/// A loaded "file" whose content is a version number.
private final class Numbered: Sendable {
    let number: Int

    init(_ number: Int) { self.number = number }

    struct Unreadable: Error {}

    static func load(_ path: String) throws -> Numbered {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8), let number = Int(text) else {
            throw Unreadable()
        }
        return Numbered(number)
    }
}

/// Polling times for watchers driven by hand: the tests choose "now", so no verdict depends on a timer.
private struct ManualClock {
    static let interval = Duration.milliseconds(100)
    static let intervalNanoseconds = UInt64(100_000_000)
    private(set) var now: UInt64 = 1_000_000_000

    /// One poll interval later.
    mutating func tick() -> UInt64 {
        now += Self.intervalNanoseconds
        return now
    }
}

@Suite("File watcher and reloader")
struct ReloaderTests {
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

    // MARK: - Change detection, driven by hand

    @Test func detectorReportsAChangeOnceItHasSettled() {
        var detector = ChangeDetector<Int>(count: 2, settleNanoseconds: 75)
        detector.setBaseline([1, nil])
        #expect(detector.observe([1, nil], at: 0).isEmpty)

        // A new state is a candidate; the same state back to back (a late timer) is not yet settled.
        #expect(detector.observe([2, nil], at: 100).isEmpty)
        #expect(detector.observe([2, nil], at: 101).isEmpty)
        #expect(detector.observe([2, nil], at: 175) == [0])
        #expect(detector.observe([2, nil], at: 275).isEmpty, "reported twice")

        // Still changing at every observation: never reported.
        for (step, state) in [3, 4, 5, 6].enumerated() {
            #expect(detector.observe([state, nil], at: 400 + UInt64(step) * 100).isEmpty)
        }
        #expect(detector.observe([6, nil], at: 800) == [0])

        // The second path appears; the first disappears and comes back as it was: both are changes.
        #expect(detector.observe([nil, 9], at: 900).isEmpty)
        #expect(detector.observe([6, 9], at: 1000) == [1])
        #expect(detector.observe([6, 9], at: 1100) == [0])

        // Back to the reported state before settling: nothing to report.
        #expect(detector.observe([7, 9], at: 1200).isEmpty)
        #expect(detector.observe([6, 9], at: 1300).isEmpty)
        #expect(detector.observe([6, 9], at: 1400).isEmpty)

        // A clock that goes back never settles a candidate.
        #expect(detector.observe([8, 9], at: 2000).isEmpty)
        #expect(detector.observe([8, 9], at: 1000).isEmpty)
    }

    @Test func watcherSeesInPlaceRewriteRenameAndRecreate() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("watched.txt", "one")
        let log = EventLog<String>()
        let watcher = FileChangeWatcher(
            paths: [path], pollInterval: ManualClock.interval, polling: .manual, onChange: { log.append($0) })
        var clock = ManualClock()
        /// Two polls an interval apart: enough for any change made before them to be reported.
        func settle() {
            watcher.poll(at: clock.tick())
            watcher.poll(at: clock.tick())
        }

        watcher.poll(at: clock.tick())
        #expect(log.all.isEmpty, "reported before start()")
        watcher.start()
        settle()
        #expect(log.all.isEmpty, "reported a change that did not happen")

        try directory.write("watched.txt", "two, rewritten in place")
        watcher.poll(at: clock.tick())
        #expect(log.all.isEmpty, "reported before a second poll agreed")
        watcher.poll(at: clock.tick())
        #expect(log.all.count == 1)

        try directory.write("next.txt", "three")
        #expect(rename(directory.file("next.txt"), path) == 0)
        settle()
        #expect(log.all.count == 2)

        try FileManager.default.removeItem(atPath: path)
        settle()
        #expect(log.all.count == 2, "a deletion alone is not a change to load")
        try directory.write("watched.txt", "four")
        settle()
        #expect(log.all.count == 3)
        #expect(log.all.allSatisfy { $0 == path })

        watcher.stop()
        try directory.write("watched.txt", "five, after stop")
        settle()
        #expect(log.all.count == 3, "reported after stop()")
    }

    @Test func watcherWaitsForAGrowingFileToSettle() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("growing.txt", "")
        let log = EventLog<String>()
        let watcher = FileChangeWatcher(
            paths: [path], pollInterval: ManualClock.interval, polling: .manual, onChange: { log.append($0) })
        var clock = ManualClock()
        watcher.start()
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }

        // Written to between every two polls: never reported, however many polls see it.
        for _ in 0..<20 {
            handle.write(Data("chunk\n".utf8))
            watcher.poll(at: clock.tick())
        }
        #expect(log.all.isEmpty, "reported while the file was still growing")

        // Unchanged, but for less than most of an interval (two polls back to back): not settled yet.
        watcher.poll(at: clock.now + 1_000_000)
        #expect(log.all.isEmpty, "two polls a millisecond apart counted as settled")
        watcher.poll(at: clock.tick())
        #expect(log.all == [path])
        watcher.poll(at: clock.tick())
        #expect(log.all == [path], "reported twice")
    }

    /// The timer really polls: only what always holds is checked (a change is reported, eventually).
    @Test func watcherTimerPollsOnItsOwn() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("watched.txt", "one")
        let log = EventLog<String>()
        let watcher = FileChangeWatcher(paths: [path], pollInterval: .milliseconds(20)) { log.append($0) }
        watcher.start()
        defer { watcher.stop() }
        try directory.write("next.txt", "two")
        #expect(rename(directory.file("next.txt"), path) == 0)
        #expect(eventually { log.all.count == 1 })
        #expect(log.all.allSatisfy { $0 == path })
    }

    // MARK: - Reloader

    @Test func reloaderFollowsRenameSymlinkSwapRewriteRecreateAndKeepsOldOnCorruption() throws {
        let directory = try TemporaryDirectory()
        let target = try build(directory, "snap-v1", version: "v1")
        let link = directory.file("current.snap")
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)

        let log = EventLog<ReloadEvent>()
        let reloader = FileReloader<ProfileSnapshot>(
            path: link, pollInterval: ManualClock.interval, polling: .manual,
            load: { try ProfileSnapshot.load(path: $0) }, version: { $0.version }, onEvent: { log.append($0) })
        var clock = ManualClock()
        /// Two polls an interval apart, then the reload they requested has run.
        func settle() {
            reloader.pollWatcher(at: clock.tick())
            reloader.pollWatcher(at: clock.tick())
            reloader.waitUntilIdle()
        }
        try reloader.loadInitial()
        #expect(reloader.current?.version == "v1")
        #expect(log.all.isEmpty, "the initial load is the caller's to report")
        reloader.start()
        defer { reloader.stop() }
        settle()
        #expect(log.all.isEmpty, "reloaded a file that did not change")

        // Symlink retargeted (atomically, through a rename of a new link).
        _ = try build(directory, "snap-v2", version: "v2")
        try FileManager.default.createSymbolicLink(
            atPath: directory.file("tmp-link"), withDestinationPath: directory.file("snap-v2"))
        #expect(rename(directory.file("tmp-link"), link) == 0)
        settle()
        #expect(reloader.current?.version == "v2")

        // Replaced by rename: the builder renames over the link's target.
        _ = try build(directory, "snap-v2", version: "v3")
        settle()
        #expect(reloader.current?.version == "v3")

        // Rewritten in place (same inode).
        _ = try build(directory, "staging", version: "v4")
        let v4 = try readBytes(directory.file("staging"))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: directory.file("snap-v2")))
        try handle.truncate(atOffset: 0)
        handle.write(Data(v4))
        try handle.close()
        settle()
        #expect(reloader.current?.version == "v4")

        // Corrupt replacement: the old version keeps serving.
        let held = try #require(reloader.current)
        var corrupt = v4
        corrupt[corrupt.count / 2] ^= 0xFF
        try writeBytes(corrupt, to: directory.file("corrupt"))
        #expect(rename(directory.file("corrupt"), directory.file("snap-v2")) == 0)
        settle()
        #expect(failures(log.all) == 1)
        #expect(reloader.current === held)
        #expect(held.profile(for: Identity(namespace: "ECID", id: "4711")) != nil)

        // Deleted: nothing to load, the old version keeps serving; then recreated.
        try FileManager.default.removeItem(atPath: directory.file("snap-v2"))
        settle()
        #expect(reloader.current === held)
        #expect(failures(log.all) == 1)
        _ = try build(directory, "snap-v2", version: "v5")
        settle()
        #expect(reloader.current?.version == "v5")
        #expect(loadedVersions(log.all) == ["v2", "v3", "v4", "v5"])
    }

    @Test func aChangeBetweenTheInitialLoadAndStartIsStillSeen() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("value", "1")
        let reloader = FileReloader<Numbered>(
            path: path, pollInterval: ManualClock.interval, polling: .manual, load: Numbered.load(_:),
            version: { "\($0.number)" }, onEvent: { _ in })
        var clock = ManualClock()
        try reloader.loadInitial()
        try directory.write("next", "2")
        #expect(rename(directory.file("next"), path) == 0)
        reloader.start()
        reloader.pollWatcher(at: clock.tick())
        reloader.pollWatcher(at: clock.tick())
        reloader.waitUntilIdle()
        #expect(reloader.current?.number == 2)
    }

    @Test func initialLoadFailureThrowsAndExplicitReloadKeepsTheOld() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("profiles.snap")
        let log = EventLog<ReloadEvent>()
        let reloader = SnapshotReloader(path: path) { log.append($0) }
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
            path: path,
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

    /// Requests made while a reload runs are served by one more reload, which starts after all of them.
    @Test func requestsCoalesceWhileALoadRuns() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("value", "1")
        let loads = LockedState(0)
        let blocking = LockedState(false)
        let entered = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let reloader = FileReloader<Numbered>(
            path: path,
            load: { path in
                loads.withLock { $0 += 1 }
                if blocking.withLock({ $0 }) {
                    entered.signal()
                    release.wait()
                }
                return try Numbered.load(path)
            },
            version: { "\($0.number)" }, onEvent: { _ in })
        try reloader.loadInitial()
        blocking.withLock { $0 = true }
        reloader.requestReload()
        try #require(entered.wait(timeout: .now() + 60) == .success, "the requested reload never started")
        blocking.withLock { $0 = false }

        // The running load read "1"; the file changes, then a storm of requests from several threads.
        try directory.write("next", "2")
        #expect(rename(directory.file("next"), path) == 0)
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<50 { reloader.requestReload() }
        }
        release.signal()
        reloader.waitUntilIdle()
        #expect(loads.withLock { $0 } == 3, "initial + running + one for all 200 requests")
        #expect(reloader.current?.number == 2)
    }

    /// SIGHUP storms, watcher reports and blocking reloads from several threads while the file is replaced
    /// with ever higher versions: readers never see a version go back, and the last file is published.
    @Test func reloadStormWhileTheFileIsReplacedNeverGoesBack() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("value", "0")
        let published = EventLog<Int>()
        let reloader = FileReloader<Numbered>(
            path: path, pollInterval: ManualClock.interval, polling: .manual, load: Numbered.load(_:),
            version: { "\($0.number)" },
            onEvent: { event in
                if case .loaded(let version, _) = event, let number = Int(version) { published.append(number) }
            })
        try reloader.loadInitial()
        reloader.start()
        defer { reloader.stop() }

        let lastVersion = 400
        let writing = LockedState(true)
        let finished = DispatchGroup()
        func spawn(_ body: @escaping @Sendable () -> Void) {
            finished.enter()
            Thread {
                body()
                finished.leave()
            }.start()
        }
        // Replaces the file by rename, each version higher than the last.
        let stagingPrefix = directory.file("staging-")
        spawn {
            for version in 1...lastVersion {
                let staging = stagingPrefix + "\(version)"
                try? "\(version)".write(toFile: staging, atomically: false, encoding: .utf8)
                _ = rename(staging, path)
            }
            writing.withLock { $0 = false }
        }
        // SIGHUP-style requests from two threads, blocking reloads from a third, the watcher from a fourth.
        for _ in 0..<2 {
            spawn { while writing.withLock({ $0 }) { reloader.requestReload() } }
        }
        spawn { while writing.withLock({ $0 }) { reloader.reload() } }
        spawn {
            var clock = ManualClock()
            while writing.withLock({ $0 }) { reloader.pollWatcher(at: clock.tick()) }
        }
        // Readers: every version they see, in order.
        let regressions = LockedState<[String]>([])
        for _ in 0..<2 {
            spawn {
                var last = 0
                var keepReading = true
                while keepReading {
                    keepReading = writing.withLock { $0 }
                    let number = reloader.current?.number ?? -1
                    if number < last { regressions.withLock { $0.append("\(last) -> \(number)") } }
                    last = number
                }
            }
        }
        #expect(finished.wait(timeout: .now() + 120) == .success, "the storm did not end")

        reloader.requestReload()
        #expect(eventually { reloader.current?.number == lastVersion }, "the last file was not published")
        #expect(regressions.withLock { $0 }.isEmpty, "readers saw versions go back")
        let order = published.all
        #expect(zip(order, order.dropFirst()).allSatisfy { $0 <= $1 }, "published out of order: \(order)")
        #expect(order.last == lastVersion)
    }
}
