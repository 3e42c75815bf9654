import OfferdCore

/// Writes a profile back in the profile source shape (SPEC 5.1), so
/// `offerd snapshot get` prints what `ProfileSourceParser` reads.
public enum ProfileSourceWriter {
    /// The profile as one JSON object: identities, consents (only the values
    /// offerd reads, and only when set), audiences, attributes and capping.
    public static func jsonValue(_ profile: InMemoryProfile) -> JSONValue {
        let identities = JSONValue.array(
            profile.identities.map { identity in
                .object([
                    JSONMember(key: "namespace", value: .string(identity.namespace)),
                    JSONMember(key: "id", value: .string(identity.id)),
                ])
            })
        func entry(_ key: String, _ choice: ConsentChoice) -> JSONMember? {
            guard let value = choice.xdmValue else { return nil }
            return JSONMember(key: key, value: .object([JSONMember(key: "val", value: .string(value))]))
        }
        var consents: [JSONMember] = []
        if let content = entry("content", profile.consents.personalizeContent) {
            consents.append(JSONMember(key: "personalize", value: .object([content])))
        }
        let marketing = [
            entry("any", profile.consents.marketingAny), entry("email", profile.consents.marketingEmail),
            entry("sms", profile.consents.marketingSMS), entry("push", profile.consents.marketingPush),
            entry("call", profile.consents.marketingCall),
        ].compactMap { $0 }
        if !marketing.isEmpty {
            consents.append(JSONMember(key: "marketing", value: .object(marketing)))
        }
        return .object([
            JSONMember(key: "identities", value: identities),
            JSONMember(key: "consents", value: .object(consents)),
            JSONMember(key: "audiences", value: .array(profile.audiences.map { .string($0) })),
            JSONMember(key: "attributes", value: profile.attributes),
            JSONMember(
                key: "capping",
                value: .object(profile.capping.map { JSONMember(key: $0.offerID, value: cappingValue($0.counts)) })),
        ])
    }

    /// SPEC 5.1's integer form when only decision events are counted, else the object form with the non-zero
    /// counts (so that a source written back reads as it was written).
    private static func cappingValue(_ counts: CappingCounts) -> JSONValue {
        if counts.isDecisionOnly { return .number(Double(counts.decision)) }
        var members: [JSONMember] = []
        for event in CappingEvent.allCases where counts[event] != 0 {
            members.append(JSONMember(key: event.rawValue, value: .number(Double(counts[event]))))
        }
        return .object(members)
    }

    /// The profile as one line of JSON.
    public static func line(_ profile: InMemoryProfile) -> String {
        JSONWriter.string(jsonValue(profile))
    }
}
