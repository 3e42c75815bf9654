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
/// (there is nothing to load); its reappearance is.
///
/// `onChange` runs on the watcher's private serial queue, one call at a time.
public final class FileChangeWatcher: Sendable {
    private struct PathState {
        var path: String
        /// The state last reported (or seen at start); nil once the path has disappeared.
        var reported: Fingerprint?
        /// A new state seen on an earlier poll, waiting for an identical one at least a poll interval later.
        var candidate: Fingerprint?
        /// When `candidate` was first seen (`DispatchTime` uptime nanoseconds).
        var candidateSince: UInt64 = 0
    }

    /// The stat of the target and of the link itself.
    struct Fingerprint: Equatable {
        var target: FileStatus
        var link: FileStatus?

        static func of(_ path: String) -> Fingerprint? {
            guard let target = FileStatus.of(path, followSymlinks: true) else { return nil }
            return Fingerprint(target: target, link: FileStatus.of(path, followSymlinks: false))
        }
    }

    private struct State {
        var paths: [PathState]
        var timer: (any DispatchSourceTimer)?
    }

    private let pollInterval: Duration
    private let onChange: @Sendable (String) -> Void
    private let queue = DispatchQueue(label: "offerd.file-change-watcher")
    private let state: LockedState<State>

    /// Watches `paths`; nothing happens before ``start()``.
    public init(paths: [String], pollInterval: Duration, onChange: @escaping @Sendable (String) -> Void) {
        self.pollInterval = pollInterval
        self.onChange = onChange
        self.state = LockedState(State(paths: paths.map { PathState(path: $0) }, timer: nil))
    }

    deinit {
        state.withLock { $0.timer?.cancel() }
    }

    /// Records the current state of every path as the baseline and starts polling. Idempotent.
    public func start() {
        let interval = DispatchTimeInterval.nanoseconds(Int(clamping: max(1_000_000, nanoseconds(of: pollInterval))))
        state.withLock { state in
            guard state.timer == nil else { return }
            for index in state.paths.indices {
                state.paths[index].reported = Fingerprint.of(state.paths[index].path)
                state.paths[index].candidate = nil
            }
            // Created and resumed under the lock: libdispatch traps when a never-resumed source is
            // released, which a concurrent stop() could otherwise cause.
            let timer = DispatchSource.makeTimerSource(queue: queue)
            timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(1))
            timer.setEventHandler { [weak self] in self?.poll() }
            timer.resume()
            state.timer = timer
        }
    }

    /// Stops polling; a poll already running finishes. Idempotent.
    public func stop() {
        let timer = state.withLock { state -> (any DispatchSourceTimer)? in
            defer { state.timer = nil }
            return state.timer
        }
        timer?.cancel()
    }

    /// One polling round; runs on `queue`.
    private func poll() {
        let changed = state.withLock { state -> [String] in
            guard state.timer != nil else { return [] }
            let now = DispatchTime.now().uptimeNanoseconds
            // Three quarters of the interval: on-time polls pass despite timer jitter, back-to-back ones do not.
            let settleNanoseconds = UInt64(max(1_000_000, nanoseconds(of: pollInterval))) / 4 * 3
            var changed: [String] = []
            for index in state.paths.indices {
                let current = Fingerprint.of(state.paths[index].path)
                guard let current else {
                    // Gone (deleted, or mid-replacement): wait for it to come back.
                    state.paths[index].reported = nil
                    state.paths[index].candidate = nil
                    continue
                }
                if current == state.paths[index].reported {
                    state.paths[index].candidate = nil
                } else if current == state.paths[index].candidate {
                    // A late timer can run two polls back to back (a busy process, a stopped machine); the file
                    // counts as settled only once it stayed the same for most of an interval of real time.
                    guard now - state.paths[index].candidateSince >= settleNanoseconds else { continue }
                    state.paths[index].reported = current
                    state.paths[index].candidate = nil
                    changed.append(state.paths[index].path)
                } else {
                    state.paths[index].candidate = current
                    state.paths[index].candidateSince = now
                }
            }
            return changed
        }
        for path in changed { onChange(path) }
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
