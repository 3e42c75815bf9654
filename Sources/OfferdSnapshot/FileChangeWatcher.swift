import Dispatch
import Foundation

/// Polls files and reports each one that changed, once it is stable.
///
/// A path counts as changed when `stat` (following symlinks) or `lstat` (the
/// path itself, so a retargeted symlink is seen even when both targets look
/// alike) gives a different device, inode, size, modification or change time
/// (nanoseconds). That covers a file replaced by rename, a symlink swap, an
/// in-place rewrite and delete-then-recreate. A change is reported only when
/// two consecutive polls agree on the new state, so a file still being
/// written is not reported half-way. A path that disappears is not reported
/// (there is nothing to load); its reappearance is. The decisions are made by
/// ``ChangeDetector``, a value fed with file states and times.
///
/// `onChange` runs on the thread that polls: the watcher's private serial
/// queue, one call at a time, when a timer drives it (``start()``). Tests
/// drive it by hand instead (``Polling/manual`` and ``poll(at:)``), so no
/// verdict waits for a timer.
public final class FileChangeWatcher: Sendable {
    /// Who calls ``poll(at:)``.
    enum Polling: Sendable {
        /// A dispatch timer on the watcher's queue, every `pollInterval`.
        case timer
        /// Whoever holds the watcher (tests): nothing polls on its own.
        case manual
    }

    /// The stat of the target and of the link itself.
    struct Fingerprint: Equatable, Sendable {
        var target: FileStatus
        var link: FileStatus?

        static func of(_ path: String) -> Fingerprint? {
            guard let target = FileStatus.of(path, followSymlinks: true) else { return nil }
            return Fingerprint(target: target, link: FileStatus.of(path, followSymlinks: false))
        }
    }

    private struct State {
        var detector: ChangeDetector<Fingerprint>
        var running = false
        var timer: (any DispatchSourceTimer)?
    }

    private let paths: [String]
    private let pollInterval: Duration
    private let polling: Polling
    private let onChange: @Sendable (String) -> Void
    private let queue = DispatchQueue(label: "offerd.file-change-watcher")
    private let state: LockedState<State>

    /// Watches `paths`, polled every `pollInterval`; nothing happens before ``start()``.
    public convenience init(paths: [String], pollInterval: Duration, onChange: @escaping @Sendable (String) -> Void) {
        self.init(paths: paths, pollInterval: pollInterval, polling: .timer, onChange: onChange)
    }

    /// Watches `paths`; with ``Polling/manual`` only ``poll(at:)`` polls.
    init(paths: [String], pollInterval: Duration, polling: Polling, onChange: @escaping @Sendable (String) -> Void) {
        self.paths = paths
        self.pollInterval = pollInterval
        self.polling = polling
        self.onChange = onChange
        // Three quarters of the interval: on-time polls pass despite timer jitter, back-to-back ones do not.
        let settle = UInt64(max(1_000_000, nanoseconds(of: pollInterval))) / 4 * 3
        state = LockedState(State(detector: ChangeDetector(count: paths.count, settleNanoseconds: settle)))
    }

    deinit {
        state.withLock { $0.timer?.cancel() }
    }

    /// Records the current state of every path as the baseline and starts polling. Idempotent.
    public func start() {
        start(baseline: paths.map(Fingerprint.of))
    }

    /// Starts polling with `baseline` (one state per path, in order) as the states already seen: a reloader
    /// passes the states it took before its initial load, so a change between that load and this call is
    /// still reported. Idempotent.
    func start(baseline: [Fingerprint?]) {
        precondition(baseline.count == paths.count, "one baseline state per path")
        let interval = DispatchTimeInterval.nanoseconds(Int(clamping: max(1_000_000, nanoseconds(of: pollInterval))))
        state.withLock { state in
            guard !state.running else { return }
            state.running = true
            state.detector.setBaseline(baseline)
            guard polling == .timer else { return }
            // Created and resumed under the lock: libdispatch traps when a never-resumed source is
            // released, which a concurrent stop() could otherwise cause.
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(1))
            timer.setEventHandler { [weak self] in self?.poll(at: DispatchTime.now().uptimeNanoseconds) }
            timer.resume()
            state.timer = timer
        }
    }

    /// Stops polling; a poll already running finishes, later ones report nothing. Idempotent.
    public func stop() {
        let timer = state.withLock { state -> (any DispatchSourceTimer)? in
            defer {
                state.timer = nil
                state.running = false
            }
            return state.timer
        }
        timer?.cancel()
    }

    /// One polling round at `now` (monotonic nanoseconds, `DispatchTime` uptime for the timer): stats every
    /// path and calls `onChange` on this thread for each one that changed and settled. Does nothing unless
    /// started. The timer calls it on the watcher's queue; a ``Polling/manual`` watcher's owner calls it,
    /// with times of its choosing, from one thread at a time.
    func poll(at now: UInt64) {
        let changed = state.withLock { state -> [String] in
            guard state.running else { return [] }
            return state.detector.observe(paths.map(Fingerprint.of), at: now).map { paths[$0] }
        }
        for path in changed { onChange(path) }
    }
}

/// Decides, from successive observations of some paths' states, which paths changed and settled. A pure
/// value: the watcher feeds it `stat` results and the time; tests feed it any states and times.
///
/// A state different from the last reported one becomes a candidate; it is reported once a later
/// observation, at least `settleNanoseconds` after the candidate was first seen, sees the same state. A
/// late timer can run two polls back to back (a busy process, a stopped machine); the time bound makes
/// "settled" mean "unchanged for most of an interval of real time", not "unchanged between two polls".
/// A missing path (nil) is never reported; it forgets the reported state, so the path's reappearance is
/// a change even with the old state.
struct ChangeDetector<FileState: Equatable> {
    private struct Entry {
        /// The state last reported (or the baseline); nil once the path has disappeared.
        var reported: FileState?
        /// A new state seen on an earlier observation, waiting for an identical one.
        var candidate: FileState?
        /// When `candidate` was first seen.
        var candidateSince: UInt64 = 0
    }

    private var entries: [Entry]
    let settleNanoseconds: UInt64

    /// `count` paths, with no baseline yet (every existing path counts as new until ``setBaseline(_:)``).
    init(count: Int, settleNanoseconds: UInt64) {
        entries = Array(repeating: Entry(), count: count)
        self.settleNanoseconds = settleNanoseconds
    }

    /// Takes `states` (one per path) as already reported, and forgets any candidate.
    mutating func setBaseline(_ states: [FileState?]) {
        precondition(states.count == entries.count, "one state per path")
        for index in entries.indices {
            entries[index] = Entry(reported: states[index])
        }
    }

    /// One observation of every path (one state per path, in order) at `now`; returns the indices of the
    /// paths that changed and settled, each reported once per change.
    mutating func observe(_ states: [FileState?], at now: UInt64) -> [Int] {
        precondition(states.count == entries.count, "one state per path")
        var changed: [Int] = []
        for index in entries.indices {
            guard let current = states[index] else {
                // Gone (deleted, or mid-replacement): wait for it to come back.
                entries[index] = Entry()
                continue
            }
            if current == entries[index].reported {
                entries[index].candidate = nil
            } else if current == entries[index].candidate {
                // `now` may be earlier than `candidateSince` only for a caller with a broken clock: treat as unsettled.
                guard now >= entries[index].candidateSince,
                    now - entries[index].candidateSince >= settleNanoseconds
                else { continue }
                entries[index].reported = current
                entries[index].candidate = nil
                changed.append(index)
            } else {
                entries[index].candidate = current
                entries[index].candidateSince = now
            }
        }
        return changed
    }
}

func nanoseconds(of duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue &+ attoseconds / 1_000_000_000
}

/// A value guarded by a lock (Foundation's `NSLock`, available on every platform offerd runs on).
final class LockedState<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
