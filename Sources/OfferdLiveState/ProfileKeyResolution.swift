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
