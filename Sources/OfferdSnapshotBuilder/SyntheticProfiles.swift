import OfferdCore
import OfferdSnapshot

/// Generates realistic, deterministic profile sources (SPEC 5.1) for tests and benchmarks.
///
/// Profile `n` has the primary identity `ECID:ecid-<n>`, about a third also an
/// `Email`; consents mix every XDM value (mostly granted, some denied,
/// pending, unknown, empty); 0-10 audiences; 10-30 attributes including
/// `loyalty.tier`, `loyalty.points` and `homeAddress.city`; and capping
/// counters for some of `offer-0` ... `offer-49`. The same seed always gives
/// the same bytes.
public enum SyntheticProfiles {
    static let audienceNames = [
        "vip", "cart-abandoner", "new-customer", "churn-risk", "frequent-buyer", "newsletter-reader",
        "high-value", "mobile-user", "lapsed", "student", "family", "traveller",
    ]
    static let tiers = ["bronze", "silver", "gold", "platinum"]
    static let cities = ["Paris", "Lyon", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Oslo", "Zürich", "Kraków"]
    static let devices = ["ios", "android", "web", "tv"]
    /// Weighted consent values: granted is common, every other value appears.
    static let consentValues: [String?] = [
        "y", "y", "y", "y", "y", "y", "n", "n", "p", "u", "dy", "dn", "LI", "CT", "CP", "VI", "PI", nil, nil, nil,
    ]

    /// Writes `count` profiles to `path` as JSON Lines.
    public static func write(count: Int, seed: UInt64, to path: String) throws {
        precondition(count >= 0, "count must not be negative")
        removeFileIfPresent(path)
        let file = try PosixFile.createExclusive(path)
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        var random = SplitMix64(seed: seed)
        for index in 0..<count {
            JSONWriter.append(profile(index, random: &random), to: &buffer)
            buffer.append(0x0A)
            if buffer.count >= 1 << 20 {
                try file.write(buffer[...])
                buffer.removeAll(keepingCapacity: true)
            }
        }
        try file.write(buffer[...])
        try file.close()
    }

    /// The JSON of synthetic profile `index`.
    static func profile(_ index: Int, random: inout SplitMix64) -> JSONValue {
        var identities: [JSONValue] = [
            .object([
                .init(key: "namespace", value: .string("ECID")), .init(key: "id", value: .string("ecid-\(index)")),
            ])
        ]
        if random.next(below: 3) == 0 {
            identities.append(
                .object([
                    .init(key: "namespace", value: .string("Email")),
                    .init(key: "id", value: .string("user\(index)@example.com")),
                ]))
        }

        func consent(_ value: String?) -> JSONValue {
            guard let value else { return .object([]) }
            return .object([.init(key: "val", value: .string(value))])
        }
        func randomConsent() -> String? { consentValues[random.next(below: consentValues.count)] }
        var marketing: [JSONMember] = []
        for channel in ["any", "email", "sms", "push", "call"] where random.next(below: 5) != 0 {
            marketing.append(.init(key: channel, value: consent(randomConsent())))
        }
        var consents: [JSONMember] = []
        if random.next(below: 10) != 0 {
            consents.append(
                .init(key: "personalize", value: .object([.init(key: "content", value: consent(randomConsent()))])))
        }
        if !marketing.isEmpty { consents.append(.init(key: "marketing", value: .object(marketing))) }
        if random.next(below: 4) == 0 {
            consents.append(.init(key: "collect", value: .object([.init(key: "val", value: .string("y"))])))
        }

        var audiences: [JSONValue] = []
        var pool = audienceNames
        for _ in 0..<random.next(below: 11) {
            audiences.append(.string(pool.remove(at: random.next(below: pool.count))))
        }

        let points = Double(random.next(below: 20_000))
        var attributes: [JSONMember] = [
            .init(
                key: "loyalty",
                value: .object([
                    .init(key: "tier", value: .string(tiers[random.next(below: tiers.count)])),
                    .init(key: "points", value: .number(points)),
                ])),
            .init(
                key: "homeAddress",
                value: .object([
                    .init(key: "city", value: .string(cities[random.next(below: cities.count)])),
                    .init(key: "postalCode", value: .string(String(10_000 + random.next(below: 89_999)))),
                ])),
        ]
        // 4 attributes so far; add 6-26 more of assorted types.
        for extra in 0..<(6 + random.next(below: 21)) {
            let key = "attr\(extra)"
            let value: JSONValue
            switch random.next(below: 7) {
            case 0: value = .bool(random.next(below: 2) == 0)
            case 1: value = .number(Double(random.next(below: 1000)) / 4)
            case 2: value = .string(devices[random.next(below: devices.count)])
            case 3: value = .null
            case 4: value = .array([.string("a\(random.next(below: 5))"), .number(Double(random.next(below: 9)))])
            case 5: value = .object([.init(key: "nested", value: .number(-Double(random.next(below: 100))))])
            default: value = .string("value-\(random.next(below: 100_000))")
            }
            attributes.append(.init(key: key, value: value))
        }

        var capping: [JSONMember] = []
        for _ in 0..<random.next(below: 4) {
            let key = "offer-\(random.next(below: 50))"
            if !capping.contains(where: { $0.key == key }) {
                capping.append(.init(key: key, value: .number(Double(random.next(below: 6)))))
            }
        }

        var members: [JSONMember] = [.init(key: "identities", value: .array(identities))]
        if !consents.isEmpty { members.append(.init(key: "consents", value: .object(consents))) }
        members.append(.init(key: "audiences", value: .array(audiences)))
        members.append(.init(key: "attributes", value: .object(attributes)))
        if !capping.isEmpty { members.append(.init(key: "capping", value: .object(capping))) }
        return .object(members)
    }
}
