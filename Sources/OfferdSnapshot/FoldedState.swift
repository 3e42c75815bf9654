/// A profile key of folded state (SPEC 9.2): the namespace ASCII-lower-cased, the id as given. The event log's
/// own key type is not used here so that this module keeps depending on OfferdCore alone.
public struct FoldedKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var namespace: String
    public var id: String

    /// `namespace` must already be ASCII-lower-cased (the event log's keys are).
    public init(namespace: String, id: String) {
        self.namespace = namespace
        self.id = id
    }

    public var description: String { "\(namespace):\(id)" }

    public static func < (lhs: FoldedKey, rhs: FoldedKey) -> Bool {
        if lhs.namespace != rhs.namespace { return lhs.namespace.utf8.lexicographicallyPrecedes(rhs.namespace.utf8) }
        return lhs.id.utf8.lexicographicallyPrecedes(rhs.id.utf8)
    }
}

/// Lifetime counts of one offer by event type (SPEC 9.6: per profile key, offer and event type).
public struct FoldedCounts: Hashable, Sendable {
    public var decision: Int
    public var display: Int
    public var interact: Int

    public init(decision: Int = 0, display: Int = 0, interact: Int = 0) {
        self.decision = decision
        self.display = display
        self.interact = interact
    }
}

/// What a snapshot folded for one profile key: lifetime counts per offer and consent values (consent key such
/// as `marketing.email` to an XDM choice value), the last update in log order winning key by key.
public struct FoldedProfile: Hashable, Sendable {
    public var counts: [String: FoldedCounts]
    public var consents: [String: String]

    public init(counts: [String: FoldedCounts] = [:], consents: [String: String] = [:]) {
        self.counts = counts
        self.consents = consents
    }
}

/// The event log folded into a snapshot (SPEC 9.6): kept apart from the profile source's values, with the
/// position of the last folded entry (the **watermark**).
///
/// A snapshot built without folding has an empty folded state and no watermark: every entry of the log counts
/// as after it. The encoding (docs/snapshot-format.md) is deterministic: keys and offers sorted, so the same
/// fold writes the same bytes.
public struct FoldedState: Hashable, Sendable {
    /// The log position of the last folded entry, as the log writes it (opaque to this module); nil: none.
    public var watermark: String?
    public var profiles: [FoldedKey: FoldedProfile]
    /// Total lifetime counts per offer (every key's).
    public var totals: [String: FoldedCounts]

    public init(
        watermark: String? = nil, profiles: [FoldedKey: FoldedProfile] = [:], totals: [String: FoldedCounts] = [:]
    ) {
        self.watermark = watermark
        self.profiles = profiles
        self.totals = totals
    }

    /// No watermark and nothing folded.
    public var isEmpty: Bool { watermark == nil && profiles.isEmpty && totals.isEmpty }

    static let magic: [UInt8] = Array("OFRDFOLD".utf8)

    /// The section's bytes: magic, watermark, totals, then profiles; strings are u32 length + UTF-8, counts u64.
    package func encoded() -> [UInt8] {
        var bytes = Self.magic
        func appendString(_ text: String) {
            bytes.appendLE(UInt32(text.utf8.count))
            bytes.append(contentsOf: text.utf8)
        }
        func appendCounts(_ counts: [String: FoldedCounts]) {
            bytes.appendLE(UInt32(counts.count))
            for offer in counts.keys.sorted(by: Self.utf8Order) {
                let value = counts[offer]!
                appendString(offer)
                bytes.appendLE(UInt64(max(0, value.decision)))
                bytes.appendLE(UInt64(max(0, value.display)))
                bytes.appendLE(UInt64(max(0, value.interact)))
            }
        }
        bytes.append(watermark == nil ? 0 : 1)
        appendString(watermark ?? "")
        appendCounts(totals)
        bytes.appendLE(UInt64(profiles.count))
        for key in profiles.keys.sorted() {
            let profile = profiles[key]!
            appendString(key.namespace)
            appendString(key.id)
            appendCounts(profile.counts)
            bytes.appendLE(UInt32(profile.consents.count))
            for consentKey in profile.consents.keys.sorted(by: Self.utf8Order) {
                appendString(consentKey)
                appendString(profile.consents[consentKey]!)
            }
        }
        return bytes
    }

    private static func utf8Order(_ lhs: String, _ rhs: String) -> Bool {
        lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
    }

    /// Decodes ``encoded()``; nil names what is wrong. Every count and length is checked against the bytes left
    /// before anything is allocated for it.
    package static func decode(_ bytes: [UInt8]) -> Result<FoldedState, FoldedStateDecodeError> {
        var reader = Reader(bytes: bytes)
        guard reader.take(magic.count) == magic[...] else { return .failure(.init("no folded-state magic")) }
        guard let hasWatermark = reader.take(1)?.first, hasWatermark <= 1, let watermark = reader.string() else {
            return .failure(.init("invalid watermark"))
        }
        guard let totals = reader.counts() else { return .failure(.init("invalid total counts")) }
        // A profile takes at least 16 bytes (two empty strings, two zero counts).
        guard let profileCount = reader.u64(), profileCount <= UInt64(reader.remaining / 16) else {
            return .failure(.init("invalid profile count"))
        }
        var profiles: [FoldedKey: FoldedProfile] = [:]
        profiles.reserveCapacity(Int(profileCount))
        for number in 0..<Int(profileCount) {
            guard let namespace = reader.string(), let id = reader.string(), let counts = reader.counts(),
                let consentCount = reader.u32(), Int(consentCount) <= reader.remaining / 8
            else { return .failure(.init("invalid folded profile \(number)")) }
            var consents: [String: String] = [:]
            for _ in 0..<Int(consentCount) {
                guard let key = reader.string(), let value = reader.string() else {
                    return .failure(.init("invalid consents of folded profile \(number)"))
                }
                consents[key] = value
            }
            let key = FoldedKey(namespace: namespace, id: id)
            guard profiles.updateValue(FoldedProfile(counts: counts, consents: consents), forKey: key) == nil else {
                return .failure(.init("folded profile \(key) appears twice"))
            }
        }
        guard reader.remaining == 0 else { return .failure(.init("\(reader.remaining) bytes after the end")) }
        return .success(
            FoldedState(watermark: hasWatermark == 1 ? watermark : nil, profiles: profiles, totals: totals))
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        var remaining: Int { bytes.count - offset }

        mutating func take(_ count: Int) -> ArraySlice<UInt8>? {
            guard count >= 0, count <= remaining else { return nil }
            defer { offset += count }
            return bytes[offset..<(offset + count)]
        }

        mutating func u32() -> UInt32? {
            guard let raw = take(4) else { return nil }
            return raw.reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }

        mutating func u64() -> UInt64? {
            guard let raw = take(8) else { return nil }
            return raw.reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }

        mutating func string() -> String? {
            guard let length = u32(), let raw = take(Int(length)) else { return nil }
            return String(validating: raw, as: UTF8.self)
        }

        mutating func counts() -> [String: FoldedCounts]? {
            // An offer takes at least 28 bytes (an empty string and three counts).
            guard let count = u32(), Int(count) <= remaining / 28 else { return nil }
            var counts: [String: FoldedCounts] = [:]
            for _ in 0..<Int(count) {
                guard let offer = string(), let decision = u64(), let display = u64(), let interact = u64(),
                    decision <= UInt64(Int.max), display <= UInt64(Int.max), interact <= UInt64(Int.max),
                    counts[offer] == nil
                else { return nil }
                counts[offer] = FoldedCounts(decision: Int(decision), display: Int(display), interact: Int(interact))
            }
            return counts
        }
    }
}

/// Why a snapshot's folded-state section was refused.
package struct FoldedStateDecodeError: Error, Sendable {
    package var message: String
    init(_ message: String) { self.message = message }
}
