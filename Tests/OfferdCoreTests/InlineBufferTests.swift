import Testing

@testable import OfferdCore

/// The engine's small hand-made containers against the plain code they replace.
@Suite struct InlineBufferTests {
    /// `TopCandidates` keeps exactly the `capacity` best of a stream, best first, as a full sort would, whatever
    /// the arrival order, with many ties (few distinct ranks and tie hashes) and capacities past the inline eight.
    @Test(arguments: [1, 2, 3, 8, 9, 20])
    func topCandidatesKeepWhatAFullSortKeeps(capacity: Int) {
        var random = SplitMix64(seed: UInt64(capacity))
        for _ in 0..<300 {
            let count = Int.random(in: 0...40, using: &random)
            let candidates = (0..<count).map { index in
                RankedCandidate(
                    offerIndex: index,
                    representationIndex: 0,
                    rank: Double(Int.random(in: 0...3, using: &random)),
                    tieHash: UInt64.random(in: 0...5, using: &random),
                    idOrder: index
                )
            }
            var top = TopCandidates()
            for candidate in candidates { top.offer(candidate, capacity: capacity) }
            top.sortBestFirst()
            let expected = candidates.sorted { $0.isBetter(than: $1) }.prefix(capacity).map(\.offerIndex)
            #expect((0..<top.count).map { top[$0].offerIndex } == expected)
        }
    }

    /// After `removeAll`, a new criterion with another capacity starts from nothing.
    @Test func topCandidatesStartAfreshAfterRemoveAll() {
        var top = TopCandidates()
        for index in 0..<5 {
            top.offer(RankedCandidate(offerIndex: index, representationIndex: 0, rank: 1, tieHash: 0, idOrder: index),
                capacity: 2)
        }
        top.removeAll()
        top.offer(RankedCandidate(offerIndex: 9, representationIndex: 0, rank: 0, tieHash: 0, idOrder: 9), capacity: 3)
        top.sortBestFirst()
        #expect(top.count == 1)
        #expect(top[0].offerIndex == 9)
    }

    /// `InMemoryProfile.cappingCount` through its hash table answers as a scan of the list: the first entry with
    /// the id wins, ids that are absent count 0, and colliding table slots do not mix ids up.
    @Test func cappingLookupAnswersLikeAScan() {
        var random = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let entries = (0..<Int.random(in: 0...40, using: &random)).map { _ in
                (offerID: "offer-\(Int.random(in: 0...30, using: &random))", count: Int.random(in: 0...9, using: &random))
            }
            let profile = InMemoryProfile(identities: [Identity(namespace: "ECID", id: "1")], capping: entries)
            for id in 0...31 {
                let offerID = "offer-\(id)"
                let expected = entries.first { $0.offerID == offerID }?.count ?? 0
                #expect(profile.cappingCount(for: InternedName(offerID)) == expected)
            }
        }
    }
}
