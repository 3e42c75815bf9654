import OfferdCore

/// One profile of a ``ProfileSnapshot``: a view over its record's bytes.
///
/// Creating one reads the record header and walks its identities (all
/// bounds-checked); every other field is read on demand. It holds a strong
/// reference to its snapshot, so a request that still uses it keeps the
/// buffer alive across a reload.
public struct SnapshotProfile: ProfileView, Sendable {
    public let snapshot: ProfileSnapshot
    /// Absolute file offset of the record.
    let recordStart: Int
    let recordLength: Int
    let identityCount: Int
    let audienceCount: Int
    let cappingCount: Int
    let attributeCount: Int
    /// Absolute offsets of the record's parts.
    let audiencesStart: Int
    let cappingStart: Int
    let directoryStart: Int
    let nodesStart: Int
    let recordEnd: Int
    public let consents: ConsentRecord

    /// Reads and checks the record header at `recordStart`; nil when it is inconsistent.
    init?(snapshot: ProfileSnapshot, recordStart: Int) {
        typealias Field = SnapshotFormat.Record
        // The header is read straight from the buffer once it is known to lie inside the records (which the loader
        // checked lie inside the buffer): this runs on every lookup.
        let bytes = snapshot.region.bytes
        guard recordStart >= snapshot.recordsStart, recordStart <= snapshot.recordsEnd - Field.headerLength,
            recordStart <= bytes.count - Field.headerLength, let base = bytes.baseAddress
        else { return nil }
        let header = base + recordStart
        func field(_ offset: Int) -> Int {
            Int(UInt32(littleEndian: header.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
        }
        let length = field(Field.length)
        let identityCount = field(Field.identityCount)
        let audienceCount = field(Field.audienceCount)
        let cappingCount = field(Field.cappingCount)
        let attributeCount = field(Field.attributeCount)
        let audiencesOffset = field(Field.audiencesOffset)
        let cappingOffset = field(Field.cappingOffset)
        let directoryOffset = field(Field.directoryOffset)
        let nodesOffset = field(Field.nodesOffset)
        guard length >= Field.headerLength, recordStart + length <= snapshot.recordsEnd, identityCount >= 1,
            audiencesOffset >= Field.headerLength,
            audiencesOffset + audienceCount * Field.audienceEntryLength <= cappingOffset,
            cappingOffset + cappingCount * Field.cappingEntryLength <= directoryOffset,
            directoryOffset + attributeCount * Field.directoryEntryLength <= nodesOffset,
            nodesOffset <= length
        else { return nil }
        // A byte that is no consent code makes the record unreadable, never some other choice.
        func consent(_ position: Int) -> ConsentChoice? {
            ConsentChoice(rawValue: header.load(fromByteOffset: Field.consents + position, as: UInt8.self))
        }
        guard let personalizeContent = consent(0), let marketingAny = consent(1), let marketingEmail = consent(2),
            let marketingSMS = consent(3), let marketingPush = consent(4), let marketingCall = consent(5),
            // Every identity must lie inside the identity area, so the primary identity is always readable.
            Self.identitiesInBounds(
                base, from: recordStart + Field.headerLength, count: identityCount,
                end: recordStart + audiencesOffset)
        else { return nil }
        self.snapshot = snapshot
        self.recordStart = recordStart
        recordLength = length
        recordEnd = recordStart + length
        self.identityCount = identityCount
        self.audienceCount = audienceCount
        self.cappingCount = cappingCount
        self.attributeCount = attributeCount
        audiencesStart = recordStart + audiencesOffset
        cappingStart = recordStart + cappingOffset
        directoryStart = recordStart + directoryOffset
        nodesStart = recordStart + nodesOffset
        consents = ConsentRecord(
            personalizeContent: personalizeContent, marketingAny: marketingAny, marketingEmail: marketingEmail,
            marketingSMS: marketingSMS, marketingPush: marketingPush, marketingCall: marketingCall)
    }

    private var region: SnapshotBuffer { snapshot.region }

    /// Whether `count` identities (u32 length and bytes of namespace, then of id) starting at `position` in `base`
    /// end by `end` (which lies inside the buffer).
    private static func identitiesInBounds(
        _ base: UnsafeRawPointer, from start: Int, count: Int, end: Int
    ) -> Bool {
        func length(at position: Int) -> Int {
            Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
        }
        var position = start
        for _ in 0..<count {
            guard position + 4 <= end else { return false }
            let namespaceLength = length(at: position)
            guard position + 8 + namespaceLength <= end else { return false }
            let idLength = length(at: position + 4 + namespaceLength)
            guard position + 8 + namespaceLength + idLength <= end else { return false }
            position += 8 + namespaceLength + idLength
        }
        return true
    }

    /// (namespace offset, namespace length, id offset, id length) of each identity that lies in bounds.
    private func identityLocations() -> [(namespace: Int, namespaceLength: Int, id: Int, idLength: Int)] {
        var locations: [(Int, Int, Int, Int)] = []
        var position = recordStart + SnapshotFormat.Record.headerLength
        for _ in 0..<identityCount {
            guard let namespaceLength = region.int32(position),
                let idLength = region.int32(position + 4 + namespaceLength),
                position + 8 + namespaceLength + idLength <= audiencesStart
            else { break }
            locations.append((position + 4, namespaceLength, position + 8 + namespaceLength, idLength))
            position += 8 + namespaceLength + idLength
        }
        return locations
    }

    /// Every identity, primary first.
    public var identities: [Identity] {
        identityLocations().map { location in
            Identity(
                namespace: region.string(location.namespace, location.namespaceLength) ?? "",
                id: region.string(location.id, location.idLength) ?? "")
        }
    }

    public var primaryIdentity: Identity {
        // init checked that every identity, so the first, lies in bounds; the fallbacks are never taken.
        let position = recordStart + SnapshotFormat.Record.headerLength
        let namespaceLength = region.int32(position) ?? 0
        let idLength = region.int32(position + 4 + namespaceLength) ?? 0
        return Identity(
            namespace: region.string(position + 4, namespaceLength) ?? "",
            id: region.string(position + 8 + namespaceLength, idLength) ?? "")
    }

    public func withPrimaryIdentityUTF8<Result>(
        _ body: (_ namespace: Span<UInt8>, _ id: Span<UInt8>) -> Result
    ) -> Result {
        // init checked that every identity, so the first, lies in bounds; the fallbacks are never taken.
        let position = recordStart + SnapshotFormat.Record.headerLength
        let namespaceLength = region.int32(position) ?? 0
        let idLength = region.int32(position + 4 + namespaceLength) ?? 0
        guard region.contains(position + 4, namespaceLength), region.contains(position + 8 + namespaceLength, idLength)
        else { return primaryIdentity.withUTF8(body) }
        // The spans live only for `body`'s call, while the record's mapping is held by `snapshot`.
        let namespace = unsafe Span<UInt8>(
            _unsafeBytes: UnsafeRawBufferPointer(
                rebasing: region.bytes[(position + 4)..<(position + 4 + namespaceLength)]))
        let id = unsafe Span<UInt8>(
            _unsafeBytes: UnsafeRawBufferPointer(
                rebasing: region.bytes[(position + 8 + namespaceLength)..<(position + 8 + namespaceLength + idLength)]))
        return body(namespace, id)
    }

    public func isMember(of audience: InternedName) -> Bool {
        for position in 0..<audienceCount {
            let entry = audiencesStart + position * SnapshotFormat.Record.audienceEntryLength
            if region.u64(entry) == audience.hash, let index = region.u32(entry + 8),
                snapshot.stringEquals(index, audience.name)
            {
                return true
            }
        }
        return false
    }

    public var cappingSummary: UInt64 {
        var summary: UInt64 = 0
        for position in 0..<cappingCount {
            // An unreadable entry could still be asked about: claim nothing then.
            guard let hash = region.u64(cappingStart + position * SnapshotFormat.Record.cappingEntryLength) else {
                return UInt64.max
            }
            summary |= cappingSummaryBit(hash)
        }
        return summary
    }

    public func cappingCount(for offer: InternedName, event: CappingEvent) -> Int {
        for position in 0..<cappingCount {
            let entry = cappingStart + position * SnapshotFormat.Record.cappingEntryLength
            if region.u64(entry) == offer.hash, let index = region.u32(entry + 8),
                snapshot.stringEquals(index, offer.name),
                let count = region.u64(entry + SnapshotFormat.Record.cappingCountOffset(event))
            {
                return Int(clamping: count)
            }
        }
        return 0
    }

    public func attribute(at path: AttributePath) -> RuleValue {
        guard !path.segments.isEmpty else { return .null }
        let entryLength = SnapshotFormat.Record.directoryEntryLength
        // Lower bound of path.hash in the directory, which the builder sorted by hash.
        var low = 0
        var high = attributeCount
        while low < high {
            let middle = (low + high) / 2
            guard let hash = region.u64(directoryStart + middle * entryLength) else { return .null }
            if hash < path.hash { low = middle + 1 } else { high = middle }
        }
        var position = low
        while position < attributeCount, region.u64(directoryStart + position * entryLength) == path.hash {
            if let nodeOffset = region.u32(directoryStart + position * entryLength + 8),
                nodeMatches(Int(nodeOffset), path.segments)
            {
                return value(ofNode: Int(nodeOffset))
            }
            position += 1
        }
        // Not stored: missing, or a path through a scalar (never stored below a scalar), so null.
        return .null
    }

    /// Whether the node at `nodeOffset` has exactly the path `segments`, walking its parents up.
    private func nodeMatches(_ nodeOffset: Int, _ segments: [String]) -> Bool {
        var current = nodeOffset
        for segment in segments.reversed() {
            guard current != Int(SnapshotFormat.noParent),
                let node = nodeHeader(current), snapshot.stringEquals(node.key, segment)
            else { return false }
            // Parents precede their children, which also rules out cycles.
            guard node.parent == Int(SnapshotFormat.noParent) || node.parent < current else { return false }
            current = node.parent
        }
        return current == Int(SnapshotFormat.noParent)
    }

    /// Parent offset, key string index and kind of the node at `nodeOffset` (relative to the node area).
    private func nodeHeader(_ nodeOffset: Int) -> (parent: Int, key: UInt32, kind: UInt8)? {
        let absolute = nodesStart + nodeOffset
        guard absolute + SnapshotFormat.Record.nodeHeaderLength <= recordEnd,
            let parent = region.u32(absolute), let key = region.u32(absolute + 4), let kind = region.u8(absolute + 8)
        else { return nil }
        return (Int(parent), key, kind)
    }

    private func value(ofNode nodeOffset: Int) -> RuleValue {
        guard let node = nodeHeader(nodeOffset) else { return .null }
        let payload = nodesStart + nodeOffset + SnapshotFormat.Record.nodeHeaderLength
        switch SnapshotFormat.Kind(rawValue: node.kind) {
        case .object:
            return .object
        case .array:
            guard let count = region.int32(payload) else { return .null }
            var items: [RuleValue] = []
            var position = payload + 4
            items.reserveCapacity(min(count, 64))
            for _ in 0..<min(count, max(0, recordEnd - position)) {
                guard let kind = region.u8(position), let (item, next) = ruleScalar(kind: kind, at: position + 1)
                else { return .null }
                items.append(item)
                position = next
            }
            return items.count == count ? .list(items) : .null
        default:
            guard let (item, _) = ruleScalar(kind: node.kind, at: payload) else { return .null }
            return item
        }
    }

    /// A scalar payload at `offset` and the offset after it, as the rules read it. Straight to `RuleValue`:
    /// `JSONValue` is an indirect enum, so going through it would box every value a request reads.
    private func ruleScalar(kind: UInt8, at offset: Int) -> (RuleValue, Int)? {
        switch SnapshotFormat.Kind(rawValue: kind) {
        case .null: return (.null, offset)
        case .false: return (.bool(false), offset)
        case .true: return (.bool(true), offset)
        case .number:
            guard offset + 8 <= recordEnd, let bits = region.u64(offset) else { return nil }
            return (.number(Double(bitPattern: bits)), offset + 8)
        case .string:
            guard let length = region.int32(offset), offset + 4 + length <= recordEnd,
                let text = region.string(offset + 4, length)
            else { return nil }
            return (.string(text), offset + 4 + length)
        case .array, .object, nil:
            return nil
        }
    }

    /// A scalar payload as JSON (for ``toInMemoryProfile()``).
    private func scalar(kind: UInt8, at offset: Int) -> (JSONValue, Int)? {
        guard let (value, next) = ruleScalar(kind: kind, at: offset) else { return nil }
        switch value {
        case .null: return (.null, next)
        case .bool(let flag): return (.bool(flag), next)
        case .number(let number): return (.number(number), next)
        case .string(let text): return (.string(text), next)
        case .list, .object: return nil
        }
    }

    /// The whole profile as plain values (for `snapshot get` and tests). Parts of a
    /// damaged record that cannot be read are left out.
    public func toInMemoryProfile() -> InMemoryProfile {
        var audiences: [String] = []
        for position in 0..<audienceCount {
            let entry = audiencesStart + position * SnapshotFormat.Record.audienceEntryLength
            if let index = region.u32(entry + 8), let name = snapshot.string(index) { audiences.append(name) }
        }
        var capping: [(offerID: String, counts: CappingCounts)] = []
        for position in 0..<cappingCount {
            let entry = cappingStart + position * SnapshotFormat.Record.cappingEntryLength
            if let index = region.u32(entry + 8), let offerID = snapshot.string(index) {
                var counts = CappingCounts()
                for event in CappingEvent.allCases {
                    counts[event] = Int(
                        clamping: region.u64(entry + SnapshotFormat.Record.cappingCountOffset(event)) ?? 0)
                }
                capping.append((offerID: offerID, counts: counts))
            }
        }
        return InMemoryProfile(
            identities: identities, consents: consents, audiences: audiences, attributes: decodeAttributes(),
            capping: capping)
    }

    /// Rebuilds the attributes object from the nodes, which are stored in document order.
    private func decodeAttributes() -> JSONValue {
        // Walk nodes in order; a node's parent is an earlier object node.
        struct Pending {
            var offset: Int
            var key: String
            var members: [JSONMember]
        }
        var stack: [Pending] = [Pending(offset: Int(SnapshotFormat.noParent), key: "", members: [])]
        var position = 0
        nodeLoop: for _ in 0..<attributeCount {
            guard let node = nodeHeader(position), let key = snapshot.string(node.key) else { break nodeLoop }
            // Close the open objects that are not this node's parent.
            while stack.count > 1, stack[stack.count - 1].offset != node.parent {
                let finished = stack.removeLast()
                stack[stack.count - 1].members.append(JSONMember(key: finished.key, value: .object(finished.members)))
            }
            guard stack[stack.count - 1].offset == node.parent else { break nodeLoop }
            let payload = nodesStart + position + SnapshotFormat.Record.nodeHeaderLength
            switch SnapshotFormat.Kind(rawValue: node.kind) {
            case .object:
                guard stack.count < JSONParser.maximumDepth else { break nodeLoop }
                stack.append(Pending(offset: position, key: key, members: []))
                position = payload - nodesStart
            case .array:
                guard let count = region.int32(payload) else { break nodeLoop }
                var items: [JSONValue] = []
                var next = payload + 4
                for _ in 0..<min(count, max(0, recordEnd - next)) {
                    guard let kind = region.u8(next), let (item, after) = scalar(kind: kind, at: next + 1) else {
                        break
                    }
                    items.append(item)
                    next = after
                }
                stack[stack.count - 1].members.append(JSONMember(key: key, value: .array(items)))
                position = next - nodesStart
            default:
                guard let (item, next) = scalar(kind: node.kind, at: payload) else { break nodeLoop }
                stack[stack.count - 1].members.append(JSONMember(key: key, value: item))
                position = next - nodesStart
            }
        }
        while stack.count > 1 {
            let finished = stack.removeLast()
            stack[stack.count - 1].members.append(JSONMember(key: finished.key, value: .object(finished.members)))
        }
        return .object(stack[0].members)
    }
}
