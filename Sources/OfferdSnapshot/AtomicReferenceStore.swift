import Atomics

/// A slot holding the current version of an immutable object (a snapshot, a
/// catalog), read by every request without locks and replaced by a reloader.
///
/// ## Concurrency contract
///
/// - ``load()`` is lock-free: it never blocks on a writer or on other
///   readers, and it returns a **strong** reference. Whatever a reader loaded
///   stays alive and unchanged for as long as the reader holds it, even when
///   ``publish(_:)`` replaces it a moment later: a request finishes on the
///   version it started with.
/// - ``publish(_:)`` makes the new value visible to every later ``load()``
///   at once (release/acquire ordering: all writes that built the value
///   happen-before any read through a reference loaded after the publish). It
///   gives up the store's reference to the old value; the old value is
///   deinitialised (a snapshot frees its buffer) when the last reader drops
///   it, by ordinary reference counting. Nothing is freed while a reader can
///   still reach it.
/// - Versions never go backwards for one reader: a thread that loaded version
///   `n` never loads an older one afterwards (the store is a single atomic
///   word pair; there is no per-thread cache).
/// - Publishers may race each other; the last publish wins. The reloaders of
///   this module serialise their publishes.
///
/// ## Why this implementation
///
/// A plain atomic pointer cannot hand out strong references safely: between
/// reading the pointer and retaining the object, a writer could release the
/// last reference. swift-atomics' `ManagedAtomic` over an `AtomicReference`
/// class solves exactly that (a double-word compare-and-exchange pairs the
/// pointer with a count of in-flight loads, so the writer knows how many
/// retains it owes). `ManagedAtomicLazyReference` would be cheaper but can be
/// set only once. The stored value is wrapped in a small final box class
/// because `AtomicReference` must be adopted by the exact stored class, while
/// this store is generic over any `AnyObject & Sendable`.
public final class AtomicReferenceStore<Value: AnyObject & Sendable>: Sendable {
    private let current: ManagedAtomic<StoreBox<Value>?>

    /// A store holding `initial` (nil: nothing published yet).
    public init(_ initial: Value?) {
        current = ManagedAtomic(initial.map(StoreBox.init))
    }

    /// The latest published value, as a strong reference. Lock-free.
    @inline(__always)
    public func load() -> Value? {
        current.load(ordering: .acquiring)?.value
    }

    /// Makes `value` the current one for every later ``load()``.
    public func publish(_ value: Value) {
        current.store(StoreBox(value), ordering: .releasing)
    }
}

/// The exact class an atomic strong reference requires; holds one published value.
final class StoreBox<Value: AnyObject & Sendable>: AtomicReference, Sendable {
    let value: Value

    init(_ value: Value) {
        self.value = value
    }
}
