extension ProfileSnapshot {
    /// The snapshot's profiles in file order, one at a time, for batch work over a whole snapshot (`offerd decide
    /// batch --audience`): unlike ``allProfiles()`` it holds one profile at a time, so walking 10M profiles costs
    /// no memory beyond the mapping.
    ///
    /// The walk ends at the end of the records, or early at a record that fails its header checks (as
    /// ``allProfiles()`` does): a hostile file with a valid checksum yields fewer profiles, never a bad read.
    public var profiles: Profiles { Profiles(snapshot: self) }

    /// A sequence over a snapshot's profiles in file order; see ``ProfileSnapshot/profiles``.
    public struct Profiles: Sequence, Sendable {
        let snapshot: ProfileSnapshot

        public func makeIterator() -> Iterator {
            Iterator(snapshot: snapshot, position: snapshot.recordsStart)
        }

        /// Steps from one record to the next by the record's own length.
        public struct Iterator: IteratorProtocol, Sendable {
            let snapshot: ProfileSnapshot
            var position: Int

            public mutating func next() -> SnapshotProfile? {
                guard position < snapshot.recordsEnd,
                    let profile = SnapshotProfile(snapshot: snapshot, recordStart: position)
                else {
                    // Stay at the end: a later call returns nil again.
                    position = snapshot.recordsEnd
                    return nil
                }
                position += profile.recordLength
                return profile
            }
        }
    }
}
