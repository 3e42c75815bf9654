import Dispatch
import Foundation

/// What a reloader did, for logs and metrics.
public enum ReloadEvent: Sendable, Equatable {
    /// A new version was loaded, validated and published; `seconds` is the load time.
    case loaded(version: String, seconds: Double)
    /// Loading `path` failed; the previous version keeps serving.
    case failed(path: String, message: String)
}

/// Keeps the latest valid version of a file-backed object published in an
/// ``AtomicReferenceStore``: loads it at start-up, and reloads it when the
/// file changes (its own ``FileChangeWatcher``) or when asked (SIGHUP). The
/// server's one reload path, for the catalog and for the snapshot.
///
/// A load reads and validates the new version beside the old one and
/// publishes it only on success; on failure the old version stays published
/// and `onEvent` gets `.failed`.
///
/// ## Concurrency contract
///
/// - **One serial queue.** Every load and publish runs on the reloader's
///   private serial queue, one at a time, in the order requested:
///   ``loadInitial()``, ``reload()``, ``requestReload()`` and the watcher all
///   go through it. A load that started later publishes later, so content
///   read earlier never replaces content read later, however long each load
///   takes: the published versions follow the file's history and never go
///   back.
/// - **"Older" means read earlier.** The reloader never compares version
///   strings. An operator who puts an older file back (a rollback) makes a new
///   change; it is loaded and published like any other.
/// - ``requestReload()`` may be called from any thread, including a signal
///   handler's task or `onEvent`, and never blocks. Requests coalesce: those
///   made while a reload is queued and not yet started are served by that
///   one, which starts after each of them and so reads a file at least as new
///   as any of them saw. A storm of requests costs at most the load in
///   progress plus one more.
/// - ``loadInitial()`` and ``reload()`` block until their own load has run,
///   after every load requested before them. They may be called from any
///   thread except the reloader's queue: not from `onEvent` (a deadlock, which
///   a `dispatchPrecondition` traps).
/// - `onEvent` runs on the queue, right after the publish (or failure) it
///   reports and before the next load starts: ``current`` read inside it is the
///   value the event is about. The initial load reports nothing (its caller
///   gets the value, or the error, from ``loadInitial()``).
/// - Readers call ``AtomicReferenceStore/load()`` on ``store`` from any
///   thread, lock-free, at any time (nil before the first successful load),
///   and see the published versions in publish order.
/// - ``start()`` watches the file from the state it had just before the
///   initial load, so a change made between ``loadInitial()`` and ``start()`` is
///   still seen. ``stop()`` stops the watching; requests still work.
public final class FileReloader<Value: AnyObject & Sendable>: Sendable {
    public let path: String
    /// Where requests read the current version from.
    public let store: AtomicReferenceStore<Value>
    private let loadValue: @Sendable (String) throws -> Value
    private let versionOf: @Sendable (Value) -> String
    private let onEvent: @Sendable (ReloadEvent) -> Void
    private let pollInterval: Duration
    private let polling: FileChangeWatcher.Polling
    /// Runs every load and publish, one at a time, in request order.
    private let queue = DispatchQueue(label: "offerd.file-reloader")
    private let state = LockedState(State())

    private struct State {
        /// A ``requestReload()`` work item is on the queue and has not started: later requests join it.
        var reloadQueued = false
        /// The file's state just before the initial load, when there was one: the watcher's baseline.
        var initialState: FileChangeWatcher.Fingerprint??
        var watcher: FileChangeWatcher?
    }

    /// - Parameters:
    ///   - store: where the reloader publishes; it must be the store's only publisher. A new, empty one
    ///     by default.
    ///   - pollInterval: how often the watcher started by ``start()`` checks the file.
    ///   - load: reads and validates the file; throws with a message on any problem.
    ///   - version: the version string of a loaded value, for events.
    ///   - onEvent: told about every reload and failed reload, on the reloader's queue (see the type's
    ///     contract); not about the initial load.
    public convenience init(
        path: String, store: AtomicReferenceStore<Value> = AtomicReferenceStore(nil),
        pollInterval: Duration = .seconds(1),
        load: @escaping @Sendable (String) throws -> Value,
        version: @escaping @Sendable (Value) -> String,
        onEvent: @escaping @Sendable (ReloadEvent) -> Void
    ) {
        self.init(
            path: path, store: store, pollInterval: pollInterval, polling: .timer, load: load, version: version,
            onEvent: onEvent)
    }

    /// With ``FileChangeWatcher/Polling/manual``, the watcher polls only through ``pollWatcher(at:)`` (tests).
    init(
        path: String, store: AtomicReferenceStore<Value> = AtomicReferenceStore(nil), pollInterval: Duration,
        polling: FileChangeWatcher.Polling,
        load: @escaping @Sendable (String) throws -> Value,
        version: @escaping @Sendable (Value) -> String,
        onEvent: @escaping @Sendable (ReloadEvent) -> Void
    ) {
        self.path = path
        self.store = store
        loadValue = load
        versionOf = version
        self.onEvent = onEvent
        self.pollInterval = pollInterval
        self.polling = polling
    }

    deinit {
        state.withLock { $0.watcher }?.stop()
    }

    /// The version currently published, if any.
    public var current: Value? { store.load() }

    /// Loads the file for the first time and publishes it; throws what `load` throws when the file is
    /// missing or invalid (nothing is published then). Blocks; not from `onEvent`.
    @discardableResult
    public func loadInitial() throws -> Value {
        dispatchPrecondition(condition: .notOnQueue(queue))
        return try queue.sync {
            let fileState = FileChangeWatcher.Fingerprint.of(path)
            let value = try loadValue(path)
            store.publish(value)
            state.withLock { $0.initialState = .some(fileState) }
            return value
        }
    }

    /// Loads the file again, now, after every load already requested; publishes on success, keeps the old
    /// version on failure. Returns whether a new version was published. Blocks; not from `onEvent`.
    @discardableResult
    public func reload() -> Bool {
        dispatchPrecondition(condition: .notOnQueue(queue))
        return queue.sync { loadAndPublish() }
    }

    /// Asks for a reload and returns at once (SIGHUP, the watcher). The reload starts after this call, so it
    /// reads the file as it is now or newer; requests made before it starts are served by it (see the
    /// type's contract).
    public func requestReload() {
        let alreadyQueued = state.withLock { state in
            defer { state.reloadQueued = true }
            return state.reloadQueued
        }
        guard !alreadyQueued else { return }
        queue.async {
            // Cleared before loading: a request arriving from here on may find the file changed after this
            // load opened it, so it queues a load of its own.
            self.state.withLock { $0.reloadQueued = false }
            self.loadAndPublish()
        }
    }

    /// Runs on `queue`.
    @discardableResult
    private func loadAndPublish() -> Bool {
        let started = monotonicSeconds()
        do {
            let value = try loadValue(path)
            store.publish(value)
            onEvent(.loaded(version: versionOf(value), seconds: monotonicSeconds() - started))
            return true
        } catch {
            onEvent(.failed(path: path, message: String(describing: error)))
            return false
        }
    }

    /// Starts watching the file; each change it sees is a ``requestReload()``. Call after ``loadInitial()``.
    /// Idempotent.
    public func start() {
        let (watcher, baseline) = state.withLock { state -> (FileChangeWatcher, FileChangeWatcher.Fingerprint?) in
            let watcher =
                state.watcher
                ?? FileChangeWatcher(paths: [path], pollInterval: pollInterval, polling: polling) {
                    [weak self] _ in self?.requestReload()
                }
            state.watcher = watcher
            // The state before the initial load, once: a later start() (after a stop()) starts from now.
            defer { state.initialState = nil }
            return (watcher, state.initialState ?? FileChangeWatcher.Fingerprint.of(path))
        }
        watcher.start(baseline: [baseline])
    }

    /// Stops watching; a change seen by a poll already running may still request a reload.
    public func stop() {
        state.withLock { $0.watcher }?.stop()
    }

    /// One poll of the watcher at `now` (tests with ``FileChangeWatcher/Polling/manual``): a change it
    /// reports is requested before this returns.
    func pollWatcher(at now: UInt64) {
        state.withLock { $0.watcher }?.poll(at: now)
    }

    /// Returns once every load requested before this call has run (tests).
    func waitUntilIdle() {
        dispatchPrecondition(condition: .notOnQueue(queue))
        queue.sync {}
    }
}

/// The reloader of the profile snapshot with ``ProfileSnapshot/load(path:)``: a ``FileReloader``
/// (and its contract) for callers that want ``SnapshotLoadError``s as they are.
public final class SnapshotReloader: Sendable {
    public let reloader: FileReloader<ProfileSnapshot>

    public init(
        path: String, pollInterval: Duration = .seconds(1), onEvent: @escaping @Sendable (ReloadEvent) -> Void
    ) {
        reloader = FileReloader(
            path: path, pollInterval: pollInterval,
            load: { path in try ProfileSnapshot.load(path: path) },
            version: { $0.version },
            onEvent: onEvent)
    }

    /// Where requests read the current snapshot from.
    public var store: AtomicReferenceStore<ProfileSnapshot> { reloader.store }
    public var current: ProfileSnapshot? { reloader.current }

    /// Loads the snapshot at start-up; throws ``SnapshotLoadError`` when it is missing or invalid.
    @discardableResult
    public func loadInitial() throws -> ProfileSnapshot { try reloader.loadInitial() }

    /// Reloads now and waits; keeps the old snapshot on failure.
    @discardableResult
    public func reload() -> Bool { reloader.reload() }

    /// Asks for a reload without waiting (SIGHUP).
    public func requestReload() { reloader.requestReload() }

    public func start() { reloader.start() }
    public func stop() { reloader.stop() }
}
