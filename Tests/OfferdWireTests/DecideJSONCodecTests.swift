import Foundation
import OfferdCore
import Testing

@testable import OfferdWire

/// The proto3 JSON codec on its own: every field both ways, the reading rules protobuf parsers follow, the
/// errors, and agreement with the protobuf path for the same values.
@Suite("proto3 JSON codec")
struct DecideJSONCodecTests {
    /// `MessageToJson(request, indent=None, ensure_ascii=False)` of `proto/tools/crosscheck.py`'s fixture request
    /// (Python protobuf 7.36), the one ``PythonFixtureTests`` decodes as protobuf.
    static let pythonCamelCase = #"""
        {"requestId": "py-req-é", "identity": {"namespace": "Email", "id": "ana@example.com"}, "scopes": [{"decisionId": "decision-a", "placementId": "web-banner", "itemCount": 3}, {"decisionId": "décision-b", "placementId": "email-hero"}], "context": {"page.type": {"stringValue": "product 🙂"}, "nothing": {}, "cartValue": {"numberValue": -12.75}, "loggedIn": {"boolValue": true}}, "allowDuplicates": true, "includeContent": true, "dryRun": true}
        """#

    /// The same with `preserving_proto_field_name=True` and ASCII escapes (surrogate pairs included).
    static let pythonSnakeCase = #"""
        {"request_id": "py-req-\u00e9", "identity": {"namespace": "Email", "id": "ana@example.com"}, "scopes": [{"decision_id": "decision-a", "placement_id": "web-banner", "item_count": 3}, {"decision_id": "d\u00e9cision-b", "placement_id": "email-hero"}], "context": {"page.type": {"string_value": "product \ud83d\ude42"}, "nothing": {}, "cartValue": {"number_value": -12.75}, "loggedIn": {"bool_value": true}}, "allow_duplicates": true, "include_content": true, "dry_run": true}
        """#

    static let fixtureRequest = DecisionRequest(
        requestID: "py-req-é",
        identity: Identity(namespace: "Email", id: "ana@example.com"),
        scopes: [
            ScopeRequest(decisionID: "decision-a", placementID: "web-banner", itemCount: 3),
            ScopeRequest(decisionID: "décision-b", placementID: "email-hero", itemCount: 0),
        ],
        context: [
            "page.type": .string("product 🙂"), "cartValue": .number(-12.75), "loggedIn": .bool(true), "nothing": .null,
        ],
        allowDuplicates: true, includeContent: true, includeMetadata: false, dryRun: true, explain: false)

    @Test("Python's JSON, in both naming styles, decodes to the request Python's protobuf decodes to")
    func pythonFixtures() throws {
        #expect(try DecideJSONCodec.decodeRequest(Self.pythonCamelCase) == Self.fixtureRequest)
        #expect(try DecideJSONCodec.decodeRequest(Self.pythonSnakeCase) == Self.fixtureRequest)
        let fromBuffer = try Array(Self.pythonCamelCase.utf8).withUnsafeBytes { buffer in
            try Result { () throws(WireDecodeError) in try DecideJSONCodec.decodeRequest(buffer) }.get()
        }
        #expect(fromBuffer == Self.fixtureRequest)
        let protobuf = try DecideCodec.decodeRequest(
            try #require(hexBytes(PythonFixtureTests.requestHex)))
        #expect(protobuf == Self.fixtureRequest)
    }

    @Test("every request field survives encode then decode, on random requests", arguments: 0..<4)
    func requestRoundTrip(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        for _ in 0..<250 {
            let request = randomRequest(&random)
            let json = DecideJSONCodec.encodeRequest(request)
            #expect(try DecideJSONCodec.decodeRequest(json) == request, "\(String(decoding: json, as: UTF8.self))")
            // And the protobuf path reads the protobuf form to the same value.
            #expect(try DecideCodec.decodeRequest(DecideCodec.encodeRequest(request)) == request)
        }
    }

    @Test(
        "a response's JSON reads back as the protobuf of the same result does, proposition ids aside",
        arguments: 0..<4)
    func responseAgreesWithProtobuf(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        for _ in 0..<200 {
            let result = randomResult(&random)
            let content = random.next() % 2 == 0
            let metadata = random.next() % 2 == 0
            let json = DecideJSONCodec.encodeResponse(
                result, requestID: "r-\(random.next() % 100)", snapshotVersion: "snap-ü", includeContent: content,
                includeMetadata: metadata)
            var fromJSON = try DecideJSONCodec.decodeResponse(json)
            var fromProtobuf = try DecideCodec.decodeResponse(
                DecideCodec.encodeResponse(
                    result, requestID: fromJSON.requestID, snapshotVersion: "snap-ü", includeContent: content,
                    includeMetadata: metadata))
            for index in fromJSON.propositions.indices {
                #expect(fromJSON.propositions[index].propositionID.utf8.count == 36)
                fromJSON.propositions[index].propositionID = ""
                fromProtobuf.propositions[index].propositionID = ""
            }
            #expect(fromJSON == fromProtobuf, "\(String(decoding: json, as: UTF8.self))")
        }
    }

    @Test("canonical output: defaults left out, enums by name, score present exactly when set")
    func canonicalResponse() throws {
        let item = DecidedItem(
            id: "o1", name: "One", priority: 5, characteristics: [Characteristic(key: "k", value: "v")],
            representation: Representation(placementID: "p", format: "text/html", language: ["en", "fr"]),
            score: 0, isFallback: false)
        let result = DecisionResult(
            propositions: [
                Proposition(decisionID: "d", placementID: "p", outcome: .offers, reason: .unspecified, items: [item]),
                Proposition(
                    decisionID: "d", placementID: "q", outcome: .suppressed, reason: .marketingDenied,
                    trace: [
                        TraceEntry(offerID: "o1", criterion: "0", verdict: .notApproved, collectionID: "c"),
                        TraceEntry(offerID: "o2", criterion: "0", verdict: .rankedOut, collectionID: "c", score: 0),
                        .proposition(.marketingDenied, detail: "why"),
                    ]),
            ],
            profileFound: false, catalogVersion: "c1")
        var text = String(
            decoding: DecideJSONCodec.encodeResponse(
                result, requestID: "r", snapshotVersion: "", includeContent: true, includeMetadata: true),
            as: UTF8.self)
        // Proposition ids are random: blank them out.
        while let range = text.range(of: #""propositionId":"[0-9a-f-]{36}""#, options: .regularExpression) {
            text.replaceSubrange(range, with: #""propositionId":"""#)
        }
        #expect(
            text
                == #"{"requestId":"r","propositions":[{"propositionId":"","decisionId":"d","placementId":"p","#
                + #""outcome":"OUTCOME_OFFERS","items":[{"id":"o1","format":"text/html","language":["en","fr"],"#
                + #""name":"One","priority":5,"characteristics":{"k":"v"},"score":0}]},{"propositionId":"","#
                + #""decisionId":"d","placementId":"q","outcome":"OUTCOME_SUPPRESSED","reason":"REASON_MARKETING_DENIED","#
                + #""trace":[{"offerId":"o1","criterion":"0","verdict":"not-approved","collectionId":"c"},"#
                + #"{"offerId":"o2","criterion":"0","verdict":"ranked-out","collectionId":"c","score":0},"#
                + #"{"verdict":"marketing-denied","detail":"why"}]}],"catalogVersion":"c1"}"#)
    }

    @Test("doubles print so they parse back to the same value", arguments: 0..<2)
    func doublesRoundTrip(seed: UInt64) throws {
        var random = SplitMix64(seed: seed)
        var values: [Double] = [
            0, -0.0, 1, -1, 0.1, 1e-7, 1e21, 9_007_199_254_740_994, .greatestFiniteMagnitude,
            .leastNonzeroMagnitude, -.leastNormalMagnitude, .nan, .infinity, -.infinity,
        ]
        for _ in 0..<2000 { values.append(Double(bitPattern: random.next())) }
        for value in values {
            let request = DecisionRequest(
                identity: Identity(namespace: "n", id: "i"), scopes: [], context: ["x": .number(value)])
            let decoded = try DecideJSONCodec.decodeRequest(DecideJSONCodec.encodeRequest(request))
            guard case .number(let back) = decoded.context["x"] else {
                Issue.record("no number for \(value)")
                continue
            }
            #expect(back.bitPattern == value.bitPattern || (back.isNaN && value.isNaN), "\(value)")
        }
    }

    @Test("integers, doubles and enums in the forms protobuf parsers accept")
    func lenientScalars() throws {
        let request = try DecideJSONCodec.decodeRequest(
            #"{"identity":{"namespace":"n","id":"i"},"scopes":[{"decisionId":"d","placementId":"p","itemCount":"7"},"#
                + #"{"decisionId":"d","placementId":"p","itemCount":2.0},{"decision_id":"d","placement_id":"p","item_count":1e1}],"#
                + #""context":{"a":{"numberValue":"2.5"},"b":{"numberValue":"NaN"},"c":{"numberValue":"-Infinity"},"#
                + #""d":null,"e":{"stringValue":null}},"requestId":null,"explain":null}"#)
        #expect(request.scopes.map(\.itemCount) == [7, 2, 10])
        #expect(request.context["a"] == .number(2.5))
        if case .number(let nan) = request.context["b"] { #expect(nan.isNaN) } else { Issue.record("b") }
        #expect(request.context["c"] == .number(-.infinity))
        #expect(request.context["d"] == .null)
        #expect(request.context["e"] == .null)
        #expect(request.requestID == "" && !request.explain)
        // A non-finite number decodes; the shared validation refuses it, as for protobuf.
        #expect(request.validationError() == "context[\"b\"] is not a finite number")

        let response = try DecideJSONCodec.decodeResponse(
            Array(
                #"{"propositions":[{"outcome":2,"reason":"REASON_UNKNOWN_PROFILE","items":[{"id":"x","priority":"-3","score":"1e3"}]},{"outcome":"9"}]}"#
                    .utf8))
        #expect(response.propositions[0].outcome == .fallback)
        #expect(response.propositions[0].reason == .unknownProfile)
        #expect(response.propositions[0].items[0].priority == -3)
        #expect(response.propositions[0].items[0].score == 1000)
        #expect(response.propositions[1].outcomeNumber == 9)
    }

    @Test(
        "bad input is refused with a message naming the field",
        arguments: [
            (#"{"identity":{"namespace":"n","id":"i"},"color":1}"#, #"unknown field "color""#),
            (#"{"scopes":[{"decisionId":"d","placementId":"p","size":1}]}"#, #"unknown field "size" in scopes[0]"#),
            (#"{"identity":{"namespace":"n","ns":"i"}}"#, #"unknown field "ns" in identity"#),
            (#"{"requestId":"a","request_id":"b"}"#, "field request_id is given twice"),
            (#"{"scopes":[{"itemCount":-1}]}"#, "scopes[0].item_count: -1 is out of range"),
            (#"{"scopes":[{"itemCount":4294967296}]}"#, "scopes[0].item_count: 4294967296 is out of range"),
            (#"{"scopes":[{"itemCount":1.5}]}"#, "scopes[0].item_count: 1.5 is not an integer"),
            (#"{"scopes":[{"itemCount":"0x10"}]}"#, #"scopes[0].item_count: "0x10" is not an integer"#),
            (#"{"scopes":[{"itemCount":true}]}"#, "scopes[0].item_count: expected an integer, got a boolean"),
            (#"{"scopes":[null]}"#, "scopes[0]: null is not allowed in a repeated field"),
            (#"{"scopes":{}}"#, "scopes: expected an array, got an object"),
            (#"{"explain":"true"}"#, "explain: expected true or false, got a string"),
            (#"{"requestId":5}"#, "request_id: expected a string, got a number"),
            (#"{"identity":{"namespace":"a\u0000b","id":"i"}}"#, "identity.namespace contains a NUL character"),
            (#"{"context":{"k\u0000":{}}}"#, "context.key contains a NUL character"),
            (
                #"{"context":{"k":{"stringValue":"a","boolValue":true}}}"#,
                #"context["k"]: more than one member of oneof kind (string_value and bool_value)"#
            ),
            (#"{"context":{"k":{"numberValue":"inf"}}}"#, #"context["k"].number_value: "inf" is not a number"#),
            (#"{"context":{"k":{"value":1}}}"#, #"unknown field "value" in context["k"]"#),
            (#"{"context":{"k":{"stringValue":"a"},"k":{}}}"#, #"invalid JSON: line 1, column 37: duplicate key "k""#),
            (#"[1]"#, "expected an object (offerd.v1.DecideRequest), got an array"),
            (#"{"requestId":"\ud800"}"#, "invalid JSON: line 1, column 21: lone surrogate in a string"),
            ("", "invalid JSON: line 1, column 1: unexpected end of input"),
        ])
    func refused(input: String, message: String) {
        #expect(throws: WireDecodeError(message: message)) { try DecideJSONCodec.decodeRequest(input) }
    }

    @Test("invalid UTF-8 is refused")
    func invalidUTF8() {
        let bytes = Array(#"{"requestId":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(throws: WireDecodeError.self) { try DecideJSONCodec.decodeRequest(bytes) }
    }

    @Test("limits are the shared validation's, with its messages")
    func sharedValidation() throws {
        let request = try DecideJSONCodec.decodeRequest(
            #"{"identity":{"namespace":"n","id":"i"},"scopes":[{"decisionId":"d","placementId":"p"},"#
                + #"{"decisionId":"d","placementId":"p"},{"decisionId":"d","placementId":"p","itemCount":31}]}"#)
        #expect(request.validationError() == "scopes[2].item_count 31 exceeds 30")
        let empty = try DecideJSONCodec.decodeRequest("{}")
        #expect(empty.validationError() == "identity.namespace is empty")
    }

    @Test("the run-copying string writer writes what JSONWriter, the reference, writes", arguments: 0..<2)
    func stringWriterMatchesReference(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var samples = [
            "", "plain", "\u{0}", "\u{1F}\u{7F}", "a\"b\\c\nd\re\tf", "é🙂日", String(repeating: "x", count: 300),
        ]
        for _ in 0..<3000 {
            let scalars = (0..<(random.next() % 12)).map { _ -> Character in
                switch random.next() % 4 {
                case 0: return Character(Unicode.Scalar(UInt8(random.next() % 0x80)))
                case 1: return Character(Unicode.Scalar(UInt32(random.next() % 0xD000)) ?? "?")
                case 2: return ["\"", "\\", "\n", "\u{0}"].randomElement(using: &random)!
                default: return "a"
                }
            }
            samples.append(String(scalars))
        }
        for sample in samples {
            var fast: [UInt8] = [1]
            var reference: [UInt8] = [1]
            JSONOut.appendString(sample, to: &fast)
            JSONWriter.appendString(sample, to: &reference)
            #expect(fast == reference, "\(sample.debugDescription)")
        }
    }

    @Test("mangled input decodes or fails with a message, never crashes", arguments: 0..<2)
    func mangledInput(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let pieces: [[UInt8]] = [
            Array("{".utf8), Array("}".utf8), Array("[".utf8), Array("]".utf8), Array(",".utf8), Array(":".utf8),
            Array("null".utf8), Array("\"itemCount\"".utf8), Array("\"1e999\"".utf8), Array("-0".utf8),
            Array("\\u0000".utf8), [0xFF], [0xC3], Array("\"NaN\"".utf8), Array("4294967296".utf8),
        ]
        var decoded = 0
        for _ in 0..<3000 {
            var bytes = DecideJSONCodec.encodeRequest(randomRequest(&random))
            for _ in 0..<(1 + random.next() % 3) {
                let position = Int(random.next() % UInt64(bytes.count + 1))
                switch random.next() % 3 {
                case 0 where position < bytes.count: bytes.remove(at: position)
                case 1 where position < bytes.count: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                default: bytes.insert(contentsOf: pieces[Int(random.next() % UInt64(pieces.count))], at: position)
                }
            }
            do {
                _ = try DecideJSONCodec.decodeRequest(bytes).validationError()
                decoded += 1
            } catch {
                #expect(!error.message.isEmpty)
            }
            _ = try? DecideJSONCodec.decodeResponse(bytes)
        }
        // Some mangled requests still decode (a changed letter inside a string): both outcomes were exercised.
        #expect(decoded > 0 && decoded < 3000)
    }

    @Test("an error line has the documented shape")
    func errorLine() {
        var bytes: [UInt8] = []
        DecideJSONCodec.appendError(requestID: "", code: "invalid_argument", message: "a \"b\"", line: 3, to: &bytes)
        #expect(
            String(decoding: bytes, as: UTF8.self)
                == #"{"requestId":"","line":3,"error":{"code":"invalid_argument","message":"a \"b\""}}"#)
    }
}

// MARK: - Random values

private func randomString(_ random: inout SplitMix64, empty: Bool = true) -> String {
    let alphabet: [String] = ["a", "b", "Z", "0", "-", ".", ":", " ", "é", "🙂", "\"", "\\", "\n", "\u{1}", "日"]
    let length = Int(random.next() % 8) + (empty ? 0 : 1)
    return (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }.joined()
}

private func randomDouble(_ random: inout SplitMix64) -> Double {
    switch random.next() % 4 {
    case 0: return Double(Int64(bitPattern: random.next()) % 1000)
    case 1: return Double(Int64(bitPattern: random.next()) % 100_000) / 100
    case 2:
        let value = Double(bitPattern: random.next())
        return value.isFinite ? value : 0.5
    default: return -0.0
    }
}

private func randomRequest(_ random: inout SplitMix64) -> DecisionRequest {
    var context: [String: ContextValue] = [:]
    for _ in 0..<(random.next() % 5) {
        let value: ContextValue
        switch random.next() % 4 {
        case 0: value = .null
        case 1: value = .string(randomString(&random))
        case 2: value = .number(randomDouble(&random))
        default: value = .bool(random.next() % 2 == 0)
        }
        context[randomString(&random, empty: false)] = value
    }
    return DecisionRequest(
        requestID: randomString(&random),
        identity: Identity(namespace: randomString(&random), id: randomString(&random)),
        scopes: (0..<(random.next() % 4)).map { _ in
            ScopeRequest(
                decisionID: randomString(&random), placementID: randomString(&random),
                itemCount: random.next() % 3 == 0
                    ? UInt32(truncatingIfNeeded: random.next()) : UInt32(random.next() % 31))
        },
        context: context,
        allowDuplicates: random.next() % 2 == 0, includeContent: random.next() % 2 == 0,
        includeMetadata: random.next() % 2 == 0, dryRun: random.next() % 2 == 0, explain: random.next() % 2 == 0)
}

private func randomResult(_ random: inout SplitMix64) -> DecisionResult {
    let propositions = (0..<(random.next() % 4)).map { _ in
        let outcome = Outcome.allCases[Int(random.next() % UInt64(Outcome.allCases.count))]
        let reason = Reason.allCases[Int(random.next() % UInt64(Reason.allCases.count))]
        let items = (0..<(random.next() % 3)).map { _ in
            var characteristics: [Characteristic] = []
            var keys: Set<String> = []
            for _ in 0..<(random.next() % 3) {
                let key = randomString(&random, empty: false)
                if keys.insert(key).inserted {
                    characteristics.append(Characteristic(key: key, value: randomString(&random)))
                }
            }
            return DecidedItem(
                id: randomString(&random, empty: false),
                name: random.next() % 2 == 0 ? nil : randomString(&random),
                priority: Int(Int64(bitPattern: random.next()) % 3_000_000_000),
                characteristics: characteristics,
                representation: Representation(
                    placementID: "p", format: random.next() % 2 == 0 ? nil : randomString(&random),
                    language: (0..<(random.next() % 3)).map { _ in randomString(&random) },
                    content: random.next() % 2 == 0 ? nil : randomString(&random),
                    deliveryURL: random.next() % 2 == 0 ? nil : randomString(&random),
                    linkURL: random.next() % 2 == 0 ? nil : randomString(&random)),
                score: random.next() % 2 == 0 ? nil : randomDouble(&random),
                isFallback: random.next() % 2 == 0)
        }
        let trace = (0..<(random.next() % 3)).map { _ in
            TraceEntry(
                offerID: randomString(&random), criterion: String(random.next() % 4),
                verdict: TraceVerdict.allCases[Int(random.next() % UInt64(TraceVerdict.allCases.count))],
                collectionID: randomString(&random), score: random.next() % 2 == 0 ? nil : randomDouble(&random),
                detail: random.next() % 4 == 0 ? randomString(&random) : "")
        }
        return Proposition(
            decisionID: randomString(&random), placementID: randomString(&random), outcome: outcome, reason: reason,
            items: items, trace: trace)
    }
    return DecisionResult(
        propositions: propositions, profileFound: random.next() % 2 == 0, catalogVersion: randomString(&random))
}

private func hexBytes(_ hex: String) -> [UInt8]? {
    let digits = Array(hex.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
            return nil
        }
        bytes.append(byte)
    }
    return bytes
}
