import Foundation

/// What a reloader did, for logs and metrics.
public enum ReloadEvent: Sendable, Equatable {
    /// A new version was loaded, validated and published; `seconds` is the load time.
    case loaded(version: String, seconds: Double)
    /// Loading `path` failed; the previous version keeps serving.
    case failed(path: String, message: String)
}

/// Keeps the latest valid version of a file-backed object published in an
/// ``AtomicReferenceStore``: loads it, and reloads it when the file changes
/// (through a ``FileChangeWatcher``) or when asked (SIGHUP).
///
/// A reload loads and validates the new version beside the old one and
/// publishes it only on success; on failure the old version stays published
/// and `onEvent` gets `.failed`. Reloads are serialised, so two quick changes
/// never publish out of order. Used for the snapshot (``SnapshotReloader``)
/// and, with another load closure, for the catalog.
public final class FileReloader<Value: AnyObject & Sendable>: Sendable {
    public let path: String
    /// Where requests read the current version from.
    public let store: AtomicReferenceStore<Value>
    private let loadValue: @Sendable (String) throws -> Value
    private let versionOf: @Sendable (Value) -> String
    private let onEvent: @Sendable (ReloadEvent) -> Void
    private let watcher: FileChangeWatcher
    private let reloadLock = NSLock()

    /// - Parameters:
    ///   - load: reads and validates the file; throws with a message on any problem.
    ///   - version: the version string of a loaded value, for events.
    ///   - onEvent: told about every load and failed load (not about the initial ``loadInitial()``'s failure,
    ///     which is thrown).
    public init(
        path: String, pollInterval: Duration = .seconds(1),
        load: @escaping @Sendable (String) throws -> Value,
        version: @escaping @Sendable (Value) -> String,
        onEvent: @escaping @Sendable (ReloadEvent) -> Void
    ) {
        self.path = path
        self.store = AtomicReferenceStore(nil)
        self.loadValue = load
        self.versionOf = version
        self.onEvent = onEvent
        let relay = WeakRelay()
        self.watcher = FileChangeWatcher(paths: [path], pollInterval: pollInterval) { _ in
            relay.reload()
        }
        relay.set { [weak self] in self?.reload() }
    }

    deinit {
        watcher.stop()
    }

    /// The version currently published, if any.
    public var current: Value? { store.load() }

    /// Loads the file for the first time and publishes it; throws when it is missing or invalid.
    @discardableResult
    public func loadInitial() throws -> Value {
        try reloadLock.withLock {
            let started = monotonicSeconds()
            let value = try loadValue(path)
            store.publish(value)
            onEvent(.loaded(version: versionOf(value), seconds: monotonicSeconds() - started))
            return value
        }
    }

    /// Loads the file again; publishes on success, keeps the old version on failure.
    /// Returns whether a new version was published.
    @discardableResult
    public func reload() -> Bool {
        reloadLock.withLock {
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
    }

    /// Starts watching the file (baseline: its state now). Call after ``loadInitial()``.
    public func start() { watcher.start() }

    /// Stops watching.
    public func stop() { watcher.stop() }
}

/// Lets the watcher's callback reach its reloader without a reference cycle.
private final class WeakRelay: Sendable {
    private let action = LockedState<(@Sendable () -> Void)?>(nil)

    func set(_ body: @escaping @Sendable () -> Void) { action.withLock { $0 = body } }

    func reload() {
        let body = action.withLock { $0 }
        body?()
    }
}

/// The reloader of the profile snapshot: ``FileReloader`` with ``ProfileSnapshot/load(path:)``.
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

    /// Reloads now (SIGHUP); keeps the old snapshot on failure.
    @discardableResult
    public func reload() -> Bool { reloader.reload() }

    public func start() { reloader.start() }
    public func stop() { reloader.stop() }
}
