import OfferdCore
import Testing

@testable import OfferdWire

/// Field numbers of proto/offerd/v1/decisioning.proto, written out independently of protobuf-c.
private enum RequestField {
    static let requestID: UInt64 = 1
    static let identity: UInt64 = 2
    static let scopes: UInt64 = 3
    static let context: UInt64 = 4
    static let allowDuplicates: UInt64 = 5
    static let includeContent: UInt64 = 6
    static let includeMetadata: UInt64 = 7
    static let dryRun: UInt64 = 8
    static let explain: UInt64 = 9
}

/// The strings of a request a test can poison, with the field path the error must name.
enum PoisonedField: String, CaseIterable, CustomTestStringConvertible {
    case requestID = "request_id"
    case identityNamespace = "identity.namespace"
    case identityID = "identity.id"
    case firstScopeDecision = "scopes[0].decision_id"
    case secondScopePlacement = "scopes[1].placement_id"
    case secondContextKey = "context[1].key"
    case firstContextString = "context[0].value.string_value"

    var testDescription: String { rawValue }
}

/// A request in hand-written protobuf with `bad` in place of the string named by `poisoned` (if any).
func handBuiltRequest(poisoning poisoned: PoisonedField? = nil, with bad: [UInt8] = []) -> [UInt8] {
    func text(_ value: String, _ field: PoisonedField) -> [UInt8] {
        poisoned == field ? bad : Array(value.utf8)
    }
    var writer = ProtoWriter()
    writer.bytesField(RequestField.requestID, text("req-1", .requestID))
    writer.message(RequestField.identity) {
        $0.bytesField(1, text("ECID", .identityNamespace))
        $0.bytesField(2, text("4711", .identityID))
    }
    writer.message(RequestField.scopes) {
        $0.bytesField(1, text("decision-a", .firstScopeDecision))
        $0.string(2, "web-banner")
        $0.uint(3, 2)
    }
    writer.message(RequestField.scopes) {
        $0.string(1, "decision-b")
        $0.bytesField(2, text("email-hero", .secondScopePlacement))
    }
    writer.message(RequestField.context) {
        $0.string(1, "page")
        $0.message(2) { $0.bytesField(1, text("home", .firstContextString)) }
    }
    writer.message(RequestField.context) {
        $0.bytesField(1, text("cartValue", .secondContextKey))
        $0.message(2) { $0.double(2, 42.5) }
    }
    writer.bool(RequestField.includeContent, true)
    writer.bool(RequestField.explain, true)
    return writer.bytes
}

let handBuiltRequestExpected = DecisionRequest(
    requestID: "req-1",
    identity: Identity(namespace: "ECID", id: "4711"),
    scopes: [
        ScopeRequest(decisionID: "decision-a", placementID: "web-banner", itemCount: 2),
        ScopeRequest(decisionID: "decision-b", placementID: "email-hero", itemCount: 0),
    ],
    context: ["page": .string("home"), "cartValue": .number(42.5)],
    includeContent: true,
    explain: true)

@Suite("DecideCodec.decodeRequest")
struct DecodeRequestTests {
    static let roundTripRequests: [DecisionRequest] = [
        DecisionRequest(
            identity: Identity(namespace: "ECID", id: "1"), scopes: [ScopeRequest(decisionID: "d", placementID: "p")]),
        handBuiltRequestExpected,
        DecisionRequest(
            requestID: "🙂-Ünïcødé-€-𝄞",
            identity: Identity(namespace: "Email", id: "ana@example.com"),
            scopes: (0..<30).map {
                ScopeRequest(decisionID: "decision-\($0)", placementID: "placement-\($0)", itemCount: UInt32($0))
            },
            context: [
                "null": .null, "flag": .bool(true), "off": .bool(false), "zero": .number(0), "negative": .number(-1.5),
                "big": .number(1e300), "nan": .number(.nan), "page.type": .string("product"), "empty": .string(""),
            ],
            allowDuplicates: true, includeContent: true, includeMetadata: true, dryRun: true, explain: true),
        DecisionRequest(identity: Identity(namespace: "", id: ""), scopes: []),
    ]

    @Test("round trip through protobuf-c", arguments: roundTripRequests.indices)
    func roundTrip(index: Int) throws {
        let request = Self.roundTripRequests[index]
        let decoded = try DecideCodec.decodeRequest(DecideCodec.encodeRequest(request))
        if case .number(let value)? = request.context["nan"] {
            // NaN != NaN; compare it apart and the rest with ==.
            #expect(value.isNaN)
            guard case .number(let decodedValue)? = decoded.context["nan"] else {
                Issue.record("nan context value lost")
                return
            }
            #expect(decodedValue.isNaN)
            var withoutNaN = request
            withoutNaN.context["nan"] = nil
            var decodedWithoutNaN = decoded
            decodedWithoutNaN.context["nan"] = nil
            #expect(decodedWithoutNaN == withoutNaN)
        } else {
            #expect(decoded == request)
        }
    }

    @Test func handBuiltBytesDecodeToTheExpectedRequest() throws {
        #expect(try DecideCodec.decodeRequest(handBuiltRequest()) == handBuiltRequestExpected)
    }

    @Test func emptyMessageIsAnEmptyRequest() throws {
        let decoded = try DecideCodec.decodeRequest([])
        #expect(decoded == DecisionRequest(identity: Identity(namespace: "", id: ""), scopes: []))
    }

    @Test func contextValueWithoutKindOrWithoutValueIsNull() throws {
        var writer = ProtoWriter()
        writer.message(RequestField.context) {
            $0.string(1, "noKind")
            $0.message(2) { _ in }
        }
        writer.message(RequestField.context) { $0.string(1, "noValue") }
        writer.message(RequestField.context) {
            $0.string(1, "flag")
            $0.message(2) { $0.bool(3, true) }
        }
        let decoded = try DecideCodec.decodeRequest(writer.bytes)
        #expect(decoded.context == ["noKind": .null, "noValue": .null, "flag": .bool(true)])
    }

    @Test func duplicateContextKeyKeepsTheLastValue() throws {
        var writer = ProtoWriter()
        for value in ["first", "second"] {
            writer.message(RequestField.context) {
                $0.string(1, "key")
                $0.message(2) { $0.string(1, value) }
            }
        }
        #expect(try DecideCodec.decodeRequest(writer.bytes).context == ["key": .string("second")])
    }

    @Test func unknownFieldsOfEveryWireTypeAreIgnored() throws {
        var writer = ProtoWriter()
        writer.raw(handBuiltRequest())
        writer.uint(100, 7)
        writer.double(101, 1.0)
        writer.tag(102, wireType: 5)
        writer.fixed32(0xDEAD_BEEF)
        // An unknown length-delimited field is not checked as a string: anything goes inside it.
        writer.bytesField(103, [0xFF, 0x00, 0xC0])
        #expect(try DecideCodec.decodeRequest(writer.bytes) == handBuiltRequestExpected)
    }

    static let badStrings: [(label: String, bytes: [UInt8], problem: String)] = [
        ("lone continuation byte", Array("ab".utf8) + [0x80], "is not valid UTF-8"),
        ("overlong slash", [0xC0, 0xAF], "is not valid UTF-8"),
        ("UTF-16 surrogate", [0xED, 0xA0, 0x80], "is not valid UTF-8"),
        ("above U+10FFFF", [0xF4, 0x90, 0x80, 0x80], "is not valid UTF-8"),
        ("truncated sequence", [0x61, 0xE2, 0x82], "is not valid UTF-8"),
        ("byte 0xFF", [0xFF], "is not valid UTF-8"),
        ("embedded NUL", Array("ab".utf8) + [0] + Array("cd".utf8), "contains a NUL character"),
        ("leading NUL", [0], "contains a NUL character"),
    ]

    @Test(
        "a bad string is refused naming its field",
        arguments: PoisonedField.allCases, badStrings.indices)
    func badStringIsRefusedNamingTheField(field: PoisonedField, badIndex: Int) {
        let bad = Self.badStrings[badIndex]
        #expect(throws: WireDecodeError(message: "\(field.rawValue) \(bad.problem)")) {
            try DecideCodec.decodeRequest(handBuiltRequest(poisoning: field, with: bad.bytes))
        }
    }

    @Test(
        "valid multi-byte UTF-8 at the edges of each range is accepted",
        arguments: [
            "\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}", "é€𝄞",
        ])
    func validUTF8IsAccepted(text: String) throws {
        let decoded = try DecideCodec.decodeRequest(handBuiltRequest(poisoning: .identityID, with: Array(text.utf8)))
        #expect(decoded.identity.id == text)
    }

    @Test func truncationAtEveryByteFailsExceptAtFieldBoundaries() throws {
        let fields: [[UInt8]] = {
            var chunks: [[UInt8]] = []
            var writer = ProtoWriter()
            writer.string(RequestField.requestID, "req-1")
            chunks.append(writer.bytes)
            writer = ProtoWriter()
            writer.message(RequestField.identity) {
                $0.string(1, "ECID")
                $0.string(2, "4711")
            }
            chunks.append(writer.bytes)
            writer = ProtoWriter()
            writer.message(RequestField.scopes) {
                $0.string(1, "d")
                $0.string(2, "p")
                $0.uint(3, 300)
            }
            chunks.append(writer.bytes)
            writer = ProtoWriter()
            writer.message(RequestField.context) {
                $0.string(1, "k")
                $0.message(2) { $0.double(2, 1.25) }
            }
            chunks.append(writer.bytes)
            writer = ProtoWriter()
            writer.bool(RequestField.dryRun, true)
            chunks.append(writer.bytes)
            return chunks
        }()
        let message = fields.flatMap { $0 }
        var boundaries: Set<Int> = [0]
        var end = 0
        for field in fields {
            end += field.count
            boundaries.insert(end)
        }
        for length in 0...message.count {
            let prefix = Array(message[..<length])
            if boundaries.contains(length) {
                #expect(throws: Never.self, "prefix of \(length) bytes") { try DecideCodec.decodeRequest(prefix) }
            } else {
                #expect(throws: WireDecodeError.self, "prefix of \(length) bytes") {
                    try DecideCodec.decodeRequest(prefix)
                }
            }
        }
        #expect(try DecideCodec.decodeRequest(message).scopes.first?.itemCount == 300)
    }

    @Test(
        "structurally broken input is refused",
        arguments: [
            ("length beyond the end", [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x61]),
            ("length of 2^64-1", [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            ("varint of 11 bytes", [0x28, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            ("start group", [0x0B, 0x0C]),
            ("end group", [0x0C]),
            ("wire type 6", [0x0E]),
            ("field number 0", [0x00, 0x01]),
            ("truncated fixed64", [0x29, 1, 2, 3]),
            ("truncated fixed32", [0x2D, 1, 2]),
            ("identity with a truncated inner field", [0x12, 0x02, 0x0A, 0x05]),
            ("string field sent as varint", [0x08, 0x01]),
            ("message field sent as fixed32", [0x15, 0, 0, 0, 0]),
        ] as [(String, [UInt8])])
    func structurallyBrokenInputIsRefused(label: String, bytes: [UInt8]) {
        #expect(throws: WireDecodeError.self, "\(label)") { try DecideCodec.decodeRequest(bytes) }
    }

    @Test func manyRepeatedScopesAreDecodedNotLimited() throws {
        var writer = ProtoWriter()
        for index in 0..<10_000 {
            writer.message(RequestField.scopes) {
                $0.string(1, "d\(index)")
                $0.string(2, "p")
            }
        }
        let decoded = try DecideCodec.decodeRequest(writer.bytes)
        #expect(decoded.scopes.count == 10_000)
        #expect(decoded.scopes.last?.decisionID == "d9999")
    }

    @Test func emptySubmessagesStillDecode() throws {
        // Each empty scope costs protobuf-c a whole struct: the arena must grow past its first chunk.
        let bytes = [[UInt8]](repeating: [0x1A, 0x00], count: 10_000).flatMap { $0 }
        let decoded = try DecideCodec.decodeRequest(bytes)
        #expect(decoded.scopes.count == 10_000)
        #expect(decoded.scopes.allSatisfy { $0 == ScopeRequest(decisionID: "", placementID: "", itemCount: 0) })
    }

    @Test func randomBytesNeverCrashAndDecodedRequestsAreStable() {
        var generator = SplitMix64(seed: 0x0FFE_7D)
        var decodedCount = 0
        for _ in 0..<5_000 {
            let length = Int.random(in: 0...96, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            decodedCount += checkStable(bytes) ? 1 : 0
        }
        // Random bytes are mostly garbage, but short ones are sometimes valid protobuf.
        #expect(decodedCount > 0)
        #expect(decodedCount < 5_000)
    }

    @Test func mutatedRequestsNeverCrashAndDecodedRequestsAreStable() {
        var generator = SplitMix64(seed: 42)
        let original = handBuiltRequest()
        var decodedCount = 0
        for _ in 0..<5_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: index)
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: index)
                }
                if bytes.isEmpty { break }
            }
            decodedCount += checkStable(bytes) ? 1 : 0
        }
        #expect(decodedCount > 0)
    }

    /// Decodes `bytes`; when that works, the request must survive an encode/decode round trip unchanged.
    private func checkStable(_ bytes: [UInt8]) -> Bool {
        guard let decoded = try? DecideCodec.decodeRequest(bytes) else { return false }
        let again = try? DecideCodec.decodeRequest(DecideCodec.encodeRequest(decoded))
        #expect(again.map { sameIgnoringNaN($0, decoded) } == true, "bytes \(bytes)")
        return true
    }

    private func sameIgnoringNaN(_ lhs: DecisionRequest, _ rhs: DecisionRequest) -> Bool {
        func scrub(_ request: DecisionRequest) -> DecisionRequest {
            var request = request
            for (key, value) in request.context {
                if case .number(let number) = value, number.isNaN { request.context[key] = .string("NaN") }
            }
            return request
        }
        return scrub(lhs) == scrub(rhs)
    }
}

@Suite("UTF8Check")
struct UTF8CheckTests {
    @Test("agrees with Swift's own validation on random byte strings")
    func agreesWithSwiftValidation() {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...8, using: &generator)
            // Bias toward bytes that form multi-byte sequences so the edges get exercised.
            let bytes = (0..<length).map { _ -> UInt8 in
                Bool.random(using: &generator)
                    ? UInt8.random(in: 0x80...0xF5, using: &generator) : UInt8.random(in: 0...0x7F, using: &generator)
            }
            let swiftVerdict: UTF8Check.Verdict =
                String(validating: bytes, as: UTF8.self) == nil
                ? .invalidUTF8 : (bytes.contains(0) ? .containsNUL : .valid)
            let verdict = bytes.withUnsafeBytes { UTF8Check.check($0) }
            // When both problems occur, the check reports whichever comes first; compare validity only then.
            if swiftVerdict == .invalidUTF8 {
                #expect(verdict != .valid, "bytes \(bytes)")
            } else {
                #expect(verdict == swiftVerdict, "bytes \(bytes)")
            }
        }
    }
}
