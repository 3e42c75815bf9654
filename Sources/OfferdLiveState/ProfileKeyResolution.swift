import OfferdCore
import OfferdEventLog

extension EventLogProfileKey {
    /// The profile key of an event or a Decide for `identity` (SPEC 9.2): the primary identity of the snapshot
    /// profile that holds `identity`, or `identity` itself when no profile does; the namespace ASCII-lower-cased,
    /// the id as given. `primaryIdentity` is that profile's primary identity (nil: not in the snapshot).
    ///
    /// A profile found through a secondary identity (`Email:ana@example.com`) is keyed by its primary one
    /// (`ecid:4711`), so events recorded under either identity count together.
    public init(identity: Identity, primaryIdentity: Identity?) {
        let keyed = primaryIdentity ?? identity
        self.init(namespace: keyed.namespace, id: keyed.id)
    }
}

/// The hash the overlay files a profile key under (``ShardedDictionary``), computed from the key's UTF-8 where the
/// request or the snapshot holds it: a Decide learns from it that a profile key has nothing live without building
/// the key's two strings (``LiveOverlaySnapshot/mayHaveState(_:)``).
///
/// A `Hasher` (SipHash, seeded per process as `String`'s hash is), so that chosen identities cannot crowd one table
/// of the overlay; the namespace's ASCII letters are folded as ``EventLogProfileKey`` folds them.
public struct LiveProfileKeyHash: Hashable, Sendable {
    let value: Int

    /// The hash of the profile key with this namespace (as given: ASCII upper-case letters count as lower-case)
    /// and id.
    public init(namespace: Span<UInt8>, id: Span<UInt8>) {
        value = namespace.withUnsafeBufferPointer { namespace in
            id.withUnsafeBufferPointer { id in Self.hash(namespace: namespace, id: id) }
        }
    }

    /// The hash of `key`.
    public init(_ key: EventLogProfileKey) {
        value = Self.withUTF8(key.namespace) { namespace in
            Self.withUTF8(key.id) { id in Self.hash(namespace: namespace, id: id) }
        }
    }

    private static func withUTF8<Result>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> Result) -> Result {
        // In place for native and small strings (the decoder's and the request's): no copy.
        var text = text
        return text.withUTF8(body)
    }

    private static func hash(namespace: UnsafeBufferPointer<UInt8>, id: UnsafeBufferPointer<UInt8>) -> Int {
        var hasher = Hasher()
        // The length first: ("ab", "c") and ("a", "bc") are different keys.
        hasher.combine(namespace.count)
        if namespace.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: namespace.count) { folded in
                for index in namespace.indices {
                    let byte = namespace[index]
                    folded[index] = byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
                }
                hasher.combine(bytes: UnsafeRawBufferPointer(folded))
            }
        } else {
            hasher.combine(bytes: UnsafeRawBufferPointer(namespace))
        }
        hasher.combine(bytes: UnsafeRawBufferPointer(id))
        return hasher.finalize()
    }
}
