import Testing

@testable import OfferdCore

/// The engine's small hand-made containers and lookup tables against the plain code they replace.
@Suite struct LookupStructureTests {
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
            top.offer(
                RankedCandidate(offerIndex: index, representationIndex: 0, rank: 1, tieHash: 0, idOrder: index),
                capacity: 2)
        }
        top.removeAll()
        top.offer(RankedCandidate(offerIndex: 9, representationIndex: 0, rank: 0, tieHash: 0, idOrder: 9), capacity: 3)
        top.sortBestFirst()
        #expect(top.count == 1)
        #expect(top[0].offerIndex == 9)
    }

    /// `ChosenOffers` answers `contains` as a plain list does, past the eight inline slots, with indices that share
    /// their low bits (the filter's bit) and after truncations (`allow_duplicates`).
    @Test func chosenOffersAnswerLikeAList() {
        var random = SplitMix64(seed: 11)
        let probes = (0...1_400).filter { $0 & 255 <= 42 }
        for _ in 0..<50 {
            var chosen = ChosenOffers()
            var list: [Int] = []
            for _ in 0..<Int.random(in: 0...120, using: &random) {
                if random.next() % 10 == 0 {
                    let newCount = Int.random(in: 0...list.count, using: &random)
                    chosen.truncate(to: newCount)
                    list.removeLast(list.count - newCount)
                } else {
                    // Few distinct low bytes (256 apart), so that the filter's bits are shared.
                    let offerIndex =
                        Int.random(in: 0...5, using: &random) * 256 + Int.random(in: 0...40, using: &random)
                    chosen.append(offerIndex)
                    list.append(offerIndex)
                }
                #expect(chosen.count == list.count)
                #expect(probes.filter { chosen.contains($0) != list.contains($0) }.isEmpty)
            }
        }
    }

    /// `InMemoryProfile.cappingCount` through its hash table answers as a scan of the list: the first entry with
    /// the id wins, ids that are absent count 0, and colliding table slots do not mix ids up.
    @Test func cappingLookupAnswersLikeAScan() {
        var random = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let entries = (0..<Int.random(in: 0...40, using: &random)).map { _ in
                (
                    offerID: "offer-\(Int.random(in: 0...30, using: &random))",
                    counts: CappingCounts(decision: Int.random(in: 0...9, using: &random))
                )
            }
            let profile = InMemoryProfile(identities: [Identity(namespace: "ECID", id: "1")], capping: entries)
            for id in 0...31 {
                let offerID = "offer-\(id)"
                let expected = entries.first { $0.offerID == offerID }?.counts.decision ?? 0
                #expect(profile.cappingCount(for: InternedName(offerID)) == expected)
                // The loop skips the lookup when the summary bit is clear: that must never hide a counter.
                let bitSet = profile.cappingSummary & cappingSummaryBit(InternedName(offerID).hash) != 0
                #expect(bitSet || expected == 0, "\(offerID) has a counter but a clear summary bit")
                if entries.contains(where: { $0.offerID == offerID }) { #expect(bitSet) }
            }
            if entries.isEmpty { #expect(profile.cappingSummary == 0) }
        }
    }

    /// `InMemoryProfile.attribute(at:)` through its flattened table answers as a walk of the JSON by key: objects,
    /// scalars, lists, paths through scalars or lists, missing keys, and repeated keys (the first wins).
    @Test func attributeLookupAnswersLikeAWalk() {
        var random = SplitMix64(seed: 11)
        let keys = ["a", "b", "c", "a.b", ""]
        func randomValue(depth: Int) -> JSONValue {
            switch Int.random(in: 0...(depth > 2 ? 4 : 6), using: &random) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &random))
            case 2: return .number(Double(Int.random(in: -5...5, using: &random)))
            case 3: return .string(keys.randomElement(using: &random) ?? "")
            case 4: return .array([.number(1), .string("x")])
            default:
                return .object(
                    (0..<Int.random(in: 0...4, using: &random)).map { _ in
                        JSONMember(key: keys.randomElement(using: &random) ?? "", value: randomValue(depth: depth + 1))
                    })
            }
        }
        func walk(_ node: JSONValue, _ segments: [String]) -> RuleValue {
            var node = node
            for segment in segments {
                guard case .object(let members) = node, let member = members.first(where: { $0.key == segment })
                else { return .null }
                node = member.value
            }
            return RuleValue(json: node)
        }
        for _ in 0..<300 {
            let attributes = JSONValue.object(
                (0..<Int.random(in: 0...5, using: &random)).map { _ in
                    JSONMember(key: keys.randomElement(using: &random) ?? "", value: randomValue(depth: 0))
                })
            let profile = InMemoryProfile(identities: [Identity(namespace: "ECID", id: "1")], attributes: attributes)
            for length in 1...3 {
                for _ in 0..<10 {
                    let segments = (0..<length).map { _ in keys.randomElement(using: &random) ?? "" }
                    #expect(profile.attribute(at: AttributePath(segments)) == walk(attributes, segments))
                }
            }
        }
    }
}
