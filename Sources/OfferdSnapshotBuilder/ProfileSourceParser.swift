import OfferdCore

/// Why one profile source line (SPEC 5.1) was refused.
public struct ProfileSourceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, naming the JSON path of the offending value where there is one.
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Parses one line of the JSON Lines profile source (SPEC 5.1) into a profile.
///
/// Every rule of the source format is checked here, except the uniqueness of
/// identities across the file, which only the builder can see.
public enum ProfileSourceParser {
    /// The largest capping count accepted: every integer up to 2^53 is exact in a JSON number.
    public static let maximumCappingCount = 9_007_199_254_740_992.0

    /// The consent keys offerd reads under `consents.marketing`.
    private static let marketingChannels = ["any", "email", "sms", "push", "call"]

    /// Parses `line` (one JSON object, without its line terminator).
    public static func parse(line: [UInt8]) throws(ProfileSourceError) -> InMemoryProfile {
        let document: JSONValue
        do {
            document = try JSONParser.parse(line)
        } catch {
            throw ProfileSourceError("invalid JSON at column \(error.column): \(error.message)")
        }
        guard case .object(let members) = document else {
            throw ProfileSourceError("a profile must be a JSON object, found \(document.typeDescription)")
        }

        var identities: [Identity]?
        var consents = ConsentRecord.empty
        var audiences: [String] = []
        var attributes = JSONValue.object([])
        var capping: [(offerID: String, counts: CappingCounts)] = []
        for member in members {
            switch member.key {
            case "identities": identities = try parseIdentities(member.value)
            case "consents": consents = try parseConsents(member.value)
            case "audiences": audiences = try parseAudiences(member.value)
            case "attributes": attributes = try parseAttributes(member.value)
            case "capping": capping = try parseCapping(member.value)
            default: throw ProfileSourceError("unknown key \"\(member.key)\"")
            }
        }
        guard let identities else { throw ProfileSourceError("missing \"identities\"") }
        return InMemoryProfile(
            identities: identities, consents: consents, audiences: audiences, attributes: attributes,
            capping: capping)
    }

    private static func parseIdentities(_ value: JSONValue) throws(ProfileSourceError) -> [Identity] {
        guard case .array(let items) = value else {
            throw ProfileSourceError("\"identities\" must be an array, found \(value.typeDescription)")
        }
        guard !items.isEmpty else { throw ProfileSourceError("\"identities\" must hold at least one identity") }
        var identities: [Identity] = []
        identities.reserveCapacity(items.count)
        for (position, item) in items.enumerated() {
            let identityPath = "identities[\(position)]"
            guard case .object(let members) = item else {
                throw ProfileSourceError("\(identityPath) must be an object, found \(item.typeDescription)")
            }
            var namespace: String?
            var id: String?
            for member in members {
                switch member.key {
                case "namespace", "id":
                    guard case .string(let text) = member.value else {
                        throw ProfileSourceError(
                            "\(identityPath).\(member.key) must be a string, found \(member.value.typeDescription)")
                    }
                    guard !text.isEmpty else { throw ProfileSourceError("\(identityPath).\(member.key) is empty") }
                    if member.key == "namespace" { namespace = text } else { id = text }
                case "primary", "authenticatedState":
                    // XDM identity-map keys: accepted for compatibility, not used by offerd.
                    continue
                default:
                    throw ProfileSourceError("\(identityPath) has an unknown key \"\(member.key)\"")
                }
            }
            guard let namespace else { throw ProfileSourceError("\(identityPath) has no \"namespace\"") }
            guard let id else { throw ProfileSourceError("\(identityPath) has no \"id\"") }
            identities.append(Identity(namespace: namespace, id: id))
        }
        return identities
    }

    private static func parseConsents(_ value: JSONValue) throws(ProfileSourceError) -> ConsentRecord {
        guard case .object(let members) = value else {
            throw ProfileSourceError("\"consents\" must be an object, found \(value.typeDescription)")
        }
        var record = ConsentRecord.empty
        for member in members {
            switch member.key {
            case "personalize":
                guard case .object = member.value else {
                    throw ProfileSourceError(
                        "consents.personalize must be an object, found \(member.value.typeDescription)")
                }
                if let entry = member.value["content"] {
                    record.personalizeContent = try parseConsentEntry(entry, path: "consents.personalize.content")
                }
            case "marketing":
                guard case .object = member.value else {
                    throw ProfileSourceError(
                        "consents.marketing must be an object, found \(member.value.typeDescription)")
                }
                for channel in marketingChannels {
                    guard let entry = member.value[channel] else { continue }
                    let choice = try parseConsentEntry(entry, path: "consents.marketing.\(channel)")
                    switch channel {
                    case "any": record.marketingAny = choice
                    case "email": record.marketingEmail = choice
                    case "sms": record.marketingSMS = choice
                    case "push": record.marketingPush = choice
                    default: record.marketingCall = choice
                    }
                }
            default:
                // collect, share, metadata, idSpecific...: valid XDM that offerd does not read.
                continue
            }
        }
        return record
    }

    private static func parseConsentEntry(_ entry: JSONValue, path: String) throws(ProfileSourceError)
        -> ConsentChoice
    {
        guard case .object = entry else {
            throw ProfileSourceError("\(path) must be an object, found \(entry.typeDescription)")
        }
        guard let value = entry["val"] else { return .empty }
        guard case .string(let text) = value else {
            throw ProfileSourceError("\(path).val must be a string, found \(value.typeDescription)")
        }
        guard let choice = ConsentChoice(xdmValue: text) else {
            throw ProfileSourceError(
                "\(path).val \"\(text)\" is not an XDM consent value (y, n, p, u, dy, dn, LI, CT, CP, VI, PI)")
        }
        return choice
    }

    private static func parseAudiences(_ value: JSONValue) throws(ProfileSourceError) -> [String] {
        guard case .array(let items) = value else {
            throw ProfileSourceError("\"audiences\" must be an array, found \(value.typeDescription)")
        }
        var audiences: [String] = []
        audiences.reserveCapacity(items.count)
        for (position, item) in items.enumerated() {
            guard case .string(let name) = item else {
                throw ProfileSourceError("audiences[\(position)] must be a string, found \(item.typeDescription)")
            }
            audiences.append(name)
        }
        return audiences
    }

    private static func parseAttributes(_ value: JSONValue) throws(ProfileSourceError) -> JSONValue {
        guard case .object = value else {
            throw ProfileSourceError("\"attributes\" must be an object, found \(value.typeDescription)")
        }
        if let problem = nestedArrayProblem(in: value) {
            throw ProfileSourceError(
                "attributes" + problem.path.reversed().joined() + " is \(problem.item.typeDescription)"
                    + ": arrays may only hold scalars")
        }
        return value
    }

    /// The first array item that is an array or an object (rules only compare lists of
    /// scalars), with its path as reversed components (".key", "[3]"): built only on failure,
    /// since this runs for every attribute of every profile.
    private static func nestedArrayProblem(in value: JSONValue) -> (path: [String], item: JSONValue)? {
        switch value {
        case .object(let members):
            for member in members {
                if var problem = nestedArrayProblem(in: member.value) {
                    problem.path.append("." + member.key)
                    return problem
                }
            }
            return nil
        case .array(let items):
            for (position, item) in items.enumerated() {
                switch item {
                case .array, .object: return (["[\(position)]"], item)
                default: continue
                }
            }
            return nil
        default:
            return nil
        }
    }

    /// SPEC 5.1's `capping`: offer id -> an integer >= 0 (decision events) or an object of integers >= 0 with the
    /// optional keys `decision`, `display` and `interact`.
    private static func parseCapping(_ value: JSONValue) throws(ProfileSourceError)
        -> [(offerID: String, counts: CappingCounts)]
    {
        guard case .object(let members) = value else {
            throw ProfileSourceError("\"capping\" must be an object, found \(value.typeDescription)")
        }
        var capping: [(offerID: String, counts: CappingCounts)] = []
        capping.reserveCapacity(members.count)
        for member in members {
            let path = "capping.\(member.key)"
            switch member.value {
            case .number:
                capping.append(
                    (offerID: member.key, counts: CappingCounts(decision: try count(member.value, at: path))))
            case .object(let events):
                var counts = CappingCounts()
                for event in events {
                    guard let type = CappingEvent(rawValue: event.key) else {
                        throw ProfileSourceError(
                            "\(path).\(event.key) is not a capping event (allowed: decision, display, interact)")
                    }
                    counts[type] = try count(event.value, at: "\(path).\(event.key)")
                }
                capping.append((offerID: member.key, counts: counts))
            default:
                throw ProfileSourceError(
                    "\(path) must be a number or an object, found \(member.value.typeDescription)")
            }
        }
        return capping
    }

    /// A capping count: an integer from 0 to ``maximumCappingCount``.
    private static func count(_ value: JSONValue, at path: String) throws(ProfileSourceError) -> Int {
        guard case .number(let count) = value else {
            throw ProfileSourceError("\(path) must be a number, found \(value.typeDescription)")
        }
        guard count >= 0, count == count.rounded(.towardZero), count <= maximumCappingCount else {
            throw ProfileSourceError("\(path) must be an integer >= 0, found \(count)")
        }
        return Int(count)
    }
}
