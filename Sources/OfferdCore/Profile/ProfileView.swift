/// A profile identity: an identity namespace and an id within it.
///
/// Namespaces compare case-insensitively in ASCII only; ids compare exactly.
public struct Identity: Sendable, Hashable, CustomStringConvertible {
    public var namespace: String
    public var id: String

    public init(namespace: String, id: String) {
        self.namespace = namespace
        self.id = id
    }

    /// The namespace with ASCII letters lower-cased: the form used for lookups,
    /// duplicate checks and the tie-break hash.
    public var foldedNamespace: String { asciiLowercased(namespace) }

    /// Whether both identities name the same profile key (namespace folded, id exact).
    public func matches(_ other: Identity) -> Bool {
        id == other.id && foldedNamespace == other.foldedNamespace
    }

    public var description: String { "\(namespace):\(id)" }
}

/// Lower-cases ASCII letters only; every other scalar is kept as is.
public func asciiLowercased(_ text: String) -> String {
    var needsChange = false
    for byte in text.utf8 where byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") {
        needsChange = true
        break
    }
    guard needsChange else { return text }
    var bytes = Array(text.utf8)
    for i in bytes.indices where bytes[i] >= UInt8(ascii: "A") && bytes[i] <= UInt8(ascii: "Z") {
        bytes[i] += 32
    }
    return String(decoding: bytes, as: UTF8.self)
}

// swift-format-ignore: AlwaysUseLowerCamelCase
// The cases are XDM's own spellings of the choice values (`LI`, `CT`, ...), which the profile source uses.
/// An XDM consent choice value, or empty when the profile has none.
///
/// The raw values are the snapshot's on-disk codes: never renumber them.
public enum ConsentChoice: UInt8, Sendable, CaseIterable {
    case empty = 0
    case y = 1
    case n = 2
    case p = 3
    case u = 4
    case dy = 5
    case dn = 6
    case LI = 7
    case CT = 8
    case CP = 9
    case VI = 10
    case PI = 11

    /// Parses an XDM `val` string (case-sensitive). `""` is not a value.
    public init?(xdmValue: String) {
        switch xdmValue {
        case "y": self = .y
        case "n": self = .n
        case "p": self = .p
        case "u": self = .u
        case "dy": self = .dy
        case "dn": self = .dn
        case "LI": self = .LI
        case "CT": self = .CT
        case "CP": self = .CP
        case "VI": self = .VI
        case "PI": self = .PI
        default: return nil
        }
    }

    /// The XDM `val` string, or nil for empty.
    public var xdmValue: String? {
        switch self {
        case .empty: nil
        case .y: "y"
        case .n: "n"
        case .p: "p"
        case .u: "u"
        case .dy: "dy"
        case .dn: "dn"
        case .LI: "LI"
        case .CT: "CT"
        case .CP: "CP"
        case .VI: "VI"
        case .PI: "PI"
        }
    }
}

/// The consent values offerd reads from a profile (SPEC 5.1), pre-parsed.
public struct ConsentRecord: Sendable, Equatable, Hashable {
    public var personalizeContent: ConsentChoice
    public var marketingAny: ConsentChoice
    public var marketingEmail: ConsentChoice
    public var marketingSMS: ConsentChoice
    public var marketingPush: ConsentChoice
    public var marketingCall: ConsentChoice

    public init(
        personalizeContent: ConsentChoice = .empty,
        marketingAny: ConsentChoice = .empty,
        marketingEmail: ConsentChoice = .empty,
        marketingSMS: ConsentChoice = .empty,
        marketingPush: ConsentChoice = .empty,
        marketingCall: ConsentChoice = .empty
    ) {
        self.personalizeContent = personalizeContent
        self.marketingAny = marketingAny
        self.marketingEmail = marketingEmail
        self.marketingSMS = marketingSMS
        self.marketingPush = marketingPush
        self.marketingCall = marketingCall
    }

    /// Every field empty: what an unknown profile has.
    public static let empty = ConsentRecord()
}

/// A name (audience id, offer id) with its ``stableHash(_:)`` computed once, at
/// catalog load, so per-request lookups never hash strings.
public struct InternedName: Sendable, Hashable {
    public let name: String
    public let hash: UInt64

    public init(_ name: String) {
        self.name = name
        hash = stableHash(name.utf8)
    }

    public static func == (lhs: InternedName, rhs: InternedName) -> Bool {
        lhs.hash == rhs.hash && lhs.name == rhs.name
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }
}

/// A profile attribute path (`profile.loyalty.tier` is `["loyalty", "tier"]`),
/// resolved once at catalog load.
///
/// ``canonicalBytes`` encodes the segments unambiguously (each segment as a
/// 4-byte little-endian length then its UTF-8 bytes), since a segment written
/// in brackets may contain any character, dots included; ``hash`` is
/// ``stableHash(_:)`` of those bytes. Snapshots key attributes the same way.
public struct AttributePath: Sendable, Hashable, CustomStringConvertible {
    public let segments: [String]
    public let canonicalBytes: [UInt8]
    public let hash: UInt64

    public init(_ segments: [String]) {
        self.segments = segments
        canonicalBytes = AttributePath.encode(segments)
        hash = stableHash(canonicalBytes)
    }

    public static func encode(_ segments: [String]) -> [UInt8] {
        var bytes: [UInt8] = []
        for segment in segments {
            let count = UInt32(segment.utf8.count)
            bytes.append(UInt8(truncatingIfNeeded: count))
            bytes.append(UInt8(truncatingIfNeeded: count >> 8))
            bytes.append(UInt8(truncatingIfNeeded: count >> 16))
            bytes.append(UInt8(truncatingIfNeeded: count >> 24))
            bytes.append(contentsOf: segment.utf8)
        }
        return bytes
    }

    public static func == (lhs: AttributePath, rhs: AttributePath) -> Bool {
        lhs.hash == rhs.hash && lhs.canonicalBytes == rhs.canonicalBytes
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    public var description: String { "profile" + segments.map { "[\"\($0)\"]" }.joined() }
}

/// A rule value (SPEC section 4): what a path, literal or operator yields.
public enum RuleValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    /// A list of scalars (null, bool, number, string).
    case list([RuleValue])
    /// A JSON object attribute: non-null, equal to nothing, only walked into.
    case object
}

/// Read access to one profile, as the decision engine needs it.
///
/// Implemented by ``InMemoryProfile`` (tests, `snapshot get`) and by the
/// snapshot's zero-copy record view. Every lookup is by a key resolved at
/// catalog load, never by a string hashed per request.
public protocol ProfileView {
    /// The profile's first identity (used by the tie-break hash).
    var primaryIdentity: Identity { get }
    var consents: ConsentRecord { get }
    /// The attribute at `path`: `.null` when missing, when the path runs
    /// through a scalar, or when the stored JSON value is null; `.object` when
    /// it ends at a JSON object.
    func attribute(at path: AttributePath) -> RuleValue
    func isMember(of audience: InternedName) -> Bool
    /// The profile's lifetime count of `event` events for `offer` as the snapshot holds it (SPEC 5.1; 0 when
    /// unknown): what `profile`/`lifetime` capping rules start from.
    func cappingCount(for offer: InternedName, event: CappingEvent) -> Int
    /// A 64-bit summary of the offers this profile has capping counters for: bit `hash % 64` is set for the
    /// ``InternedName/hash`` of each. A clear bit proves ``cappingCount(for:event:)`` is 0 for every offer with such a
    /// hash, so the decision loop asks only about offers whose bit is set (a handful of counters leave most bits
    /// clear). `UInt64.max`, the default, claims nothing.
    var cappingSummary: UInt64 { get }
    /// Lends the UTF-8 of ``primaryIdentity``'s namespace and id to `body`, so that the tie-break hash can read
    /// them where they are stored instead of building two strings per request.
    func withPrimaryIdentityUTF8<Result>(
        _ body: (_ namespace: Span<UInt8>, _ id: Span<UInt8>) -> Result
    ) -> Result
}

/// The ``ProfileView/cappingSummary`` bit of an offer hash.
@inline(__always)
public func cappingSummaryBit(_ hash: UInt64) -> UInt64 { 1 &<< (hash & 63) }

extension ProfileView {
    public var cappingSummary: UInt64 { UInt64.max }

    /// How many times `offer` was already proposed to this profile (the decision count; 0 when unknown).
    public func cappingCount(for offer: InternedName) -> Int { cappingCount(for: offer, event: .decision) }

    public func withPrimaryIdentityUTF8<Result>(
        _ body: (_ namespace: Span<UInt8>, _ id: Span<UInt8>) -> Result
    ) -> Result {
        primaryIdentity.withUTF8(body)
    }
}

extension Identity {
    /// Lends the UTF-8 of the namespace and the id to `body`.
    public func withUTF8<Result>(
        _ body: (_ namespace: Span<UInt8>, _ id: Span<UInt8>) -> Result
    ) -> Result {
        namespace.withUTF8Span { namespaceBytes in
            id.withUTF8Span { idBytes in body(namespaceBytes, idBytes) }
        }
    }
}

/// A profile held as plain Swift values.
///
/// The parsed form of one profile source line (SPEC 5.1), and the profile the
/// engine's tests decide on.
public struct InMemoryProfile: ProfileView, Sendable, Equatable {
    public var identities: [Identity]
    public var consents: ConsentRecord
    public var audiences: [String] {
        didSet { index = Index(audiences: audiences, attributes: attributes, capping: capping) }
    }
    /// The `attributes` object (always a `.object`, possibly empty).
    public var attributes: JSONValue {
        didSet { index = Index(audiences: audiences, attributes: attributes, capping: capping) }
    }
    /// Offer id -> lifetime counts per event type (SPEC 5.1), in source order.
    public var capping: [(offerID: String, counts: CappingCounts)] {
        didSet { index = Index(audiences: audiences, attributes: attributes, capping: capping) }
    }
    /// Lookup structures kept in step with the three lists above, in one shared object so that copying a profile
    /// costs one reference more, not one per table.
    private var index: Index

    public init(
        identities: [Identity],
        consents: ConsentRecord = .empty,
        audiences: [String] = [],
        attributes: JSONValue = .object([]),
        capping: [(offerID: String, counts: CappingCounts)] = []
    ) {
        precondition(!identities.isEmpty, "a profile has at least one identity")
        self.identities = identities
        self.consents = consents
        self.audiences = audiences
        self.attributes = attributes
        self.capping = capping
        index = Index(audiences: audiences, attributes: attributes, capping: capping)
    }

    /// The engine asks for every candidate offer and for every attribute path a rule reads, so each answer is a
    /// precomputed 64-bit hash compared first (``InternedName/hash``, ``AttributePath/hash``), and strings only on
    /// a real match.
    private final class Index: Sendable {
        /// `stableHash` of each audience (a handful: scanned).
        let audienceHashes: [UInt64]
        /// Capping offer ids (tens of counters): a table.
        let capping: HashPositionTable
        /// See ``ProfileView/cappingSummary``.
        let cappingSummary: UInt64
        /// Every path that leads somewhere in `attributes` (``AttributePath/canonicalBytes``) with its value, in
        /// document order, and a table of their ``AttributePath/hash``.
        let attributePaths: [[UInt8]]
        let attributeValues: [RuleValue]
        let attributeTable: HashPositionTable

        init(audiences: [String], attributes: JSONValue, capping: [(offerID: String, counts: CappingCounts)]) {
            audienceHashes = audiences.map { stableHash($0.utf8) }
            let cappingHashes = capping.map { stableHash($0.offerID.utf8) }
            self.capping = HashPositionTable(cappingHashes)
            cappingSummary = cappingHashes.reduce(0) { $0 | cappingSummaryBit($1) }
            var paths: [[UInt8]] = []
            var values: [RuleValue] = []
            Self.flatten(attributes, prefix: [], paths: &paths, values: &values)
            attributePaths = paths
            attributeValues = values
            attributeTable = HashPositionTable(paths.map { stableHash($0) })
        }

        /// Records every member of `node` (an object) and, depth first, what lies below it. A repeated key is
        /// skipped with its subtree: a walk by key would only ever reach the first.
        private static func flatten(
            _ node: JSONValue, prefix: [UInt8], paths: inout [[UInt8]], values: inout [RuleValue]
        ) {
            guard case .object(let members) = node else { return }
            var seen: [String] = []
            for member in members where !seen.contains(where: { sameCodePoints($0, member.key) }) {
                seen.append(member.key)
                let path = prefix + AttributePath.encode([member.key])
                paths.append(path)
                values.append(RuleValue(json: member.value))
                flatten(member.value, prefix: path, paths: &paths, values: &values)
            }
        }
    }

    public var primaryIdentity: Identity { identities[0] }

    public func attribute(at path: AttributePath) -> RuleValue {
        if path.segments.isEmpty { return RuleValue(json: attributes) }
        let table = index.attributeTable
        var slot = table.firstSlot(path.hash)
        while let position = table.position(at: slot, hash: path.hash) {
            if position >= 0 && index.attributePaths[position] == path.canonicalBytes {
                return index.attributeValues[position]
            }
            slot = table.nextSlot(slot)
        }
        return .null
    }

    public func isMember(of audience: InternedName) -> Bool {
        for (position, hash) in index.audienceHashes.enumerated()
        where hash == audience.hash && sameCodePoints(audiences[position], audience.name) {
            return true
        }
        return false
    }

    public var cappingSummary: UInt64 { index.cappingSummary }

    public func cappingCount(for offer: InternedName, event: CappingEvent) -> Int {
        let table = index.capping
        var slot = table.firstSlot(offer.hash)
        while let position = table.position(at: slot, hash: offer.hash) {
            if position >= 0 && sameCodePoints(capping[position].offerID, offer.name) {
                return capping[position].counts[event]
            }
            slot = table.nextSlot(slot)
        }
        return 0
    }

    public static func == (lhs: InMemoryProfile, rhs: InMemoryProfile) -> Bool {
        lhs.identities == rhs.identities && lhs.consents == rhs.consents && lhs.audiences == rhs.audiences
            && lhs.attributes == rhs.attributes
            && lhs.capping.map(\.offerID) == rhs.capping.map(\.offerID)
            && lhs.capping.map(\.counts) == rhs.capping.map(\.counts)
    }
}

extension RuleValue {
    /// The rule value of a profile attribute's JSON value. Arrays keep their
    /// scalar items; a nested array or object inside an array reads as null.
    public init(json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let value): self = .bool(value)
        case .number(let value): self = .number(value)
        case .string(let value): self = .string(value)
        case .object: self = .object
        case .array(let items):
            self = .list(
                items.map { item in
                    switch item {
                    case .array, .object: .null
                    default: RuleValue(json: item)
                    }
                })
        }
    }
}

/// An open-addressing table from 64-bit hashes to positions in a list, for lookups the engine makes per
/// candidate or per scope: one probe answers most questions, where a binary search over tens of counters took
/// five and a `Dictionary<String, _>` hashed the whole string with SipHash.
///
/// Entries are inserted in list order and probed in insertion order, so among equal ids the first in the list
/// wins, as in a scan.
struct HashPositionTable: Sendable {
    /// `hashes[slot]` and `positions[slot]`; a position of -1 marks an empty slot.
    private var hashes: [UInt64]
    private var positions: [Int]
    private let mask: Int

    init(_ entryHashes: [UInt64]) {
        var size = 4
        while size < entryHashes.count * 2 { size *= 2 }
        mask = size - 1
        hashes = Array(repeating: 0, count: size)
        positions = Array(repeating: -1, count: size)
        for (position, hash) in entryHashes.enumerated() {
            var slot = Int(truncatingIfNeeded: hash) & mask
            while positions[slot] >= 0 { slot = (slot + 1) & mask }
            hashes[slot] = hash
            positions[slot] = position
        }
    }

    func firstSlot(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash) & mask }

    func nextSlot(_ slot: Int) -> Int { (slot + 1) & mask }

    /// Nil at an empty slot (the end of the probe); -1 at a slot holding another hash; else the list position.
    func position(at slot: Int, hash: UInt64) -> Int? {
        let position = positions[slot]
        if position < 0 { return nil }
        return hashes[slot] == hash ? position : -1
    }
}

extension HashPositionTable {
    /// A table of `ids` by ``stableHash(_:)`` of their UTF-8.
    init(ids: [String]) {
        self.init(ids.map { stableHash($0.utf8) })
    }

    /// The position of the first of `ids` (the list this table was built from) whose UTF-8 equals `id`'s.
    func position(of id: String, in ids: [String]) -> Int? {
        let hash = contiguousStableHash(id)
        var slot = firstSlot(hash)
        while let position = position(at: slot, hash: hash) {
            if position >= 0 && sameCodePoints(ids[position], id) { return position }
            slot = nextSlot(slot)
        }
        return nil
    }
}
