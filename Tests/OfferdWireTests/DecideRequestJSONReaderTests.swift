import OfferdCore
import Testing

@testable import OfferdWire

/// The one-pass request reader against the general path (`JSONValue` tree, then fields): whatever the reader
/// accepts, the general path must accept as the same request, and `decodeRequest` must give exactly what the
/// general path gives (the request, or the error word for word) on every input, well-formed or not.
@Suite("proto3 JSON request reader against the general path")
struct DecideRequestJSONReaderTests {
    /// Decodes `bytes` all three ways and records any disagreement; returns whether the one-pass reader took them.
    @discardableResult
    private func check(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        let fast = bytes.withUnsafeBytes { DecideRequestJSONReader.read($0) }
        let tree = Result { () throws(WireDecodeError) in try DecideJSONCodec.decodeRequestThroughTree(bytes) }
        let decoded = Result { () throws(WireDecodeError) in try DecideJSONCodec.decodeRequest(bytes) }
        let raw = bytes.withUnsafeBytes { buffer in
            Result { () throws(WireDecodeError) in try DecideJSONCodec.decodeRequest(buffer) }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        switch tree {
        case .success(let expected):
            if let fast {
                #expect(fast == expected, "\(text)", sourceLocation: sourceLocation)
                // == does not tell -0.0 from 0.0; the canonical writing does.
                #expect(
                    DecideJSONCodec.encodeRequest(fast) == DecideJSONCodec.encodeRequest(expected), "\(text)",
                    sourceLocation: sourceLocation)
            }
            for result in [decoded, raw] {
                guard case .success(let request) = result else {
                    Issue.record("decodeRequest refused what the general path reads: \(text)")
                    continue
                }
                #expect(
                    DecideJSONCodec.encodeRequest(request) == DecideJSONCodec.encodeRequest(expected), "\(text)",
                    sourceLocation: sourceLocation)
            }
        case .failure(let expected):
            #expect(fast == nil, "the reader took what the general path refuses (\(expected.message)): \(text)")
            for result in [decoded, raw] {
                guard case .failure(let error) = result else {
                    Issue.record("decodeRequest read what the general path refuses: \(text)")
                    continue
                }
                #expect(error.message == expected.message, "\(text)", sourceLocation: sourceLocation)
            }
        }
        return fast != nil
    }

    @Test(
        "random requests in plain spellings: the reader takes every one, as the general path reads it",
        arguments: 0..<4)
    func plainRequests(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for _ in 0..<1500 {
            let bytes = writeRequest(randomRequest(&random, plain: true), plain: true, &random)
            #expect(check(bytes), "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test("random requests in every spelling protobuf accepts", arguments: 0..<4)
    func anySpelling(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var taken = 0
        for _ in 0..<1500 {
            if check(writeRequest(randomRequest(&random, plain: false), plain: false, &random)) { taken += 1 }
        }
        // Nearly every one has a `\u` escape or a quoted number, so the general path reads them (the plain test
        // covers the reader's side).
        #expect(taken < 1500)
    }

    @Test("every truncation of a request")
    func truncated() {
        var random = SplitMix64(seed: 7)
        for _ in 0..<20 {
            let bytes = writeRequest(randomRequest(&random, plain: true), plain: true, &random)
            for end in 0..<bytes.count { check(Array(bytes[0..<end])) }
        }
    }

    @Test("mangled requests", arguments: 0..<3)
    func mangled(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let pieces: [String] = [
            "{", "}", "[", "]", ",", ":", "null", "true", "\"x\"", "\"itemCount\"", "\"item_count\":", "\"requestId\"",
            "\"context\"", "\"stringValue\":", "\"numberValue\":1,", "1e999", "-0", "01", "1.", "\\u0000", "\\ud800",
            "\\/", "\"NaN\"", "4294967296", "99999999999999999999", "\u{1}", "é", " ", "nul", "tru",
        ]
        for _ in 0..<3000 {
            var bytes = writeRequest(randomRequest(&random, plain: true), plain: random.next() % 2 == 0, &random)
            for _ in 0..<(1 + random.next() % 3) {
                let position = Int(random.next() % UInt64(bytes.count + 1))
                switch random.next() % 3 {
                case 0 where position < bytes.count: bytes.remove(at: position)
                case 1 where position < bytes.count: bytes[position] = UInt8(truncatingIfNeeded: random.next())
                default:
                    bytes.insert(
                        contentsOf: Array(pieces[Int(random.next() % UInt64(pieces.count))].utf8), at: position)
                }
            }
            check(bytes)
        }
    }

    @Test(
        "duplicates, wrong types, huge and odd numbers, nulls, deep nesting",
        arguments: [
            #"{"requestId":"a","requestId":"b"}"#, #"{"requestId":"a","request_id":"b"}"#,
            #"{"identity":{"id":"a","id":"b"}}"#, #"{"scopes":[{"itemCount":1,"item_count":2}]}"#,
            #"{"context":{"k":{},"k":{}}}"#, #"{"context":{"é":{},"e\u0301":{}}}"#,
            #"{"context":{"k":{"stringValue":"a","boolValue":true}}}"#,
            #"{"context":{"k":{"stringValue":null,"boolValue":true}}}"#,
            #"{"context":{"k":{"stringValue":"a","stringValue":null}}}"#, #"{"context":{"k":null}}"#,
            #"{"context":{"k":"v"}}"#, #"{"context":[]}"#, #"{"context":null,"scopes":null,"identity":null}"#,
            #"{"scopes":[null]}"#, #"{"scopes":{}}"#, #"{"scopes":[{"itemCount":"3"}]}"#,
            #"{"scopes":[{"itemCount":3.0}]}"#, #"{"scopes":[{"itemCount":3e0}]}"#, #"{"scopes":[{"itemCount":-0}]}"#,
            #"{"scopes":[{"itemCount":-1}]}"#, #"{"scopes":[{"itemCount":4294967295}]}"#,
            #"{"scopes":[{"itemCount":4294967296}]}"#, #"{"scopes":[{"itemCount":99999999999999999999}]}"#,
            #"{"scopes":[{"itemCount":1e400}]}"#, #"{"scopes":[{"itemCount":1.5}]}"#,
            #"{"scopes":[{"itemCount":true}]}"#, #"{"scopes":[{"itemCount":01}]}"#,
            #"{"context":{"k":{"numberValue":1e400}}}"#, #"{"context":{"k":{"numberValue":-1e-400}}}"#,
            #"{"context":{"k":{"numberValue":123456789012345678901234567890}}}"#,
            #"{"context":{"k":{"numberValue":-0}}}"#, #"{"context":{"k":{"numberValue":"NaN"}}}"#,
            #"{"context":{"k":{"numberValue":"-Infinity"}}}"#, #"{"context":{"k":{"numberValue":"1.5"}}}"#,
            #"{"context":{"k":{"numberValue":999999999999999}}}"#,
            #"{"context":{"k":{"numberValue":9999999999999999}}}"#, #"{"context":{"k":{"boolValue":"true"}}}"#,
            #"{"requestId":1}"#, #"{"requestId":"a\u0000b"}"#, #"{"requestId":"\ud83d\ude42"}"#,
            #"{"requestId":"\ud83d"}"#, #"{"requestId":"\/\b\f\n\r\t\"\\"}"#, #"{"requestId":"\x"}"#,
            #"{"dryRun":1}"#, #"{"dryRun":null}"#, #"{"dryRun":"true"}"#, #"{"unknown":1}"#, #"{"RequestId":"a"}"#,
            #"{"request\u005fid":"a"}"#, #"{"requestId":"a",}"#, #"{"requestId" "a"}"#, #"{,}"#, "", " ", "null",
            "[]", "{}", " {} ", "{}x", "{} {}", "\u{FEFF}{}", #"{"scopes":[{}],}"#, #"{"scopes":[{},]}"#,
            String(repeating: "[", count: 200), #"{"context":{"k":"# + String(repeating: "[", count: 10_000),
            #"{"requestId":"# + String(repeating: "{", count: 300) + String(repeating: "}", count: 300) + "}",
        ])
    func edgeCases(input: String) {
        check(Array(input.utf8))
    }

    @Test("invalid UTF-8 in strings and keys")
    func invalidUTF8() {
        for bad: [UInt8] in [[0xFF], [0xC3], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80]] {
            check(Array(#"{"requestId":""#.utf8) + bad + Array(#""}"#.utf8))
            check(Array(#"{"requestId":"\n"#.utf8) + bad + Array(#""}"#.utf8))
            check(Array(#"{"context":{""#.utf8) + bad + Array(#"":{}}}"#.utf8))
            check(Array(#"{""#.utf8) + bad + Array(#"":1}"#.utf8))
        }
    }
}

// MARK: - Writing requests in varied spellings

private func randomString(_ random: inout SplitMix64, plain: Bool, empty: Bool = true) -> String {
    var alphabet: [String] = ["a", "b", "Z", "0", "-", ".", ":", " ", "/", "é", "🙂", "\"", "\\", "\n", "\t", "日"]
    if !plain { alphabet += ["\u{1}", "\u{7F}", "e\u{301}"] }
    let length = Int(random.next() % 8) + (empty ? 0 : 1)
    return (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }.joined()
}

private func randomDouble(_ random: inout SplitMix64, plain: Bool) -> Double {
    switch random.next() % (plain ? 4 : 5) {
    case 0: return Double(Int64(bitPattern: random.next()) % 1000)
    case 1: return Double(Int64(bitPattern: random.next()) % 100_000) / 100
    case 2:
        let value = Double(bitPattern: random.next())
        return value.isFinite ? value : 0.5
    case 3: return -0.0
    default: return [.nan, .infinity, -.infinity][Int(random.next() % 3)]
    }
}

private func randomRequest(_ random: inout SplitMix64, plain: Bool) -> DecisionRequest {
    var context: [String: ContextValue] = [:]
    for _ in 0..<(random.next() % 5) {
        let value: ContextValue
        switch random.next() % 4 {
        case 0: value = .null
        case 1: value = .string(randomString(&random, plain: plain))
        case 2: value = .number(randomDouble(&random, plain: plain))
        default: value = .bool(random.next() % 2 == 0)
        }
        context[randomString(&random, plain: plain, empty: false)] = value
    }
    return DecisionRequest(
        requestID: randomString(&random, plain: plain),
        identity: Identity(namespace: randomString(&random, plain: plain), id: randomString(&random, plain: plain)),
        scopes: (0..<(random.next() % 4)).map { _ in
            ScopeRequest(
                decisionID: randomString(&random, plain: plain), placementID: randomString(&random, plain: plain),
                itemCount: random.next() % 3 == 0
                    ? UInt32(truncatingIfNeeded: random.next()) : UInt32(random.next() % 31))
        },
        context: context,
        allowDuplicates: random.next() % 2 == 0, includeContent: random.next() % 2 == 0,
        includeMetadata: random.next() % 2 == 0, dryRun: random.next() % 2 == 0, explain: random.next() % 2 == 0)
}

/// `request` as proto3 JSON with random choices a client may make: either field name, any member order, default
/// values written or left out or `null`, blanks between tokens, escapes. `plain` keeps to the spellings the
/// one-pass reader takes (no `\u` escapes, integers as plain integers, finite doubles as numbers).
private func writeRequest(_ request: DecisionRequest, plain: Bool, _ random: inout SplitMix64) -> [UInt8] {
    var out = ""
    func blank(_ random: inout SplitMix64) {
        if random.next() % 4 == 0 { out += [" ", "\n", "\t", "\r\n  "][Int(random.next() % 4)] }
    }
    func quoted(_ text: String, _ random: inout SplitMix64) {
        out += "\""
        for scalar in text.unicodeScalars {
            let escapeAll = !plain && random.next() % 4 == 0
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "/" where random.next() % 2 == 0: out += "\\/"
            case _ where scalar.value < 0x20 || escapeAll:
                for unit in String(scalar).utf16 {
                    let hex = String(unit, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                }
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
    func name(_ proto: String, _ camel: String, _ random: inout SplitMix64) {
        blank(&random)
        quoted(random.next() % 3 == 0 ? proto : camel, &random)
        blank(&random)
        out += ":"
        blank(&random)
    }
    func integer(_ value: UInt32, _ random: inout SplitMix64) {
        switch plain ? 0 : random.next() % 4 {
        case 0: out += String(value)
        case 1: out += "\"\(value)\""
        case 2: out += "\(value).0"
        default: out += "\(value)e0"
        }
    }
    func double(_ value: Double, _ random: inout SplitMix64) {
        var bytes: [UInt8] = []
        JSONOut.appendDouble(value, to: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        out += !plain && value.isFinite && random.next() % 3 == 0 ? "\"\(text)\"" : text
    }
    /// Writes the members in a random order, each with its separator; a member is a closure writing it.
    func members(_ writers: [(inout SplitMix64) -> Void], _ random: inout SplitMix64) {
        out += "{"
        var order = writers
        order.shuffle(using: &random)
        for (index, write) in order.enumerated() {
            if index > 0 { out += "," }
            write(&random)
        }
        blank(&random)
        out += "}"
    }
    /// A field: left out when default (sometimes written anyway, or as null).
    func field(
        _ proto: String, _ camel: String, isDefault: Bool, _ random: inout SplitMix64,
        _ value: @escaping (inout SplitMix64) -> Void
    ) -> ((inout SplitMix64) -> Void)? {
        let choice = random.next() % 4
        if isDefault && choice == 0 { return nil }
        if isDefault && choice == 1 {
            return { random in
                name(proto, camel, &random)
                out += "null"
            }
        }
        return { random in
            name(proto, camel, &random)
            value(&random)
        }
    }
    var fields: [((inout SplitMix64) -> Void)?] = []
    fields.append(
        field("request_id", "requestId", isDefault: request.requestID.isEmpty, &random) {
            quoted(request.requestID, &$0)
        })
    fields.append(
        field("identity", "identity", isDefault: request.identity == Identity(namespace: "", id: ""), &random) {
            random in
            members(
                [
                    field("namespace", "namespace", isDefault: request.identity.namespace.isEmpty, &random) {
                        quoted(request.identity.namespace, &$0)
                    },
                    field("id", "id", isDefault: request.identity.id.isEmpty, &random) {
                        quoted(request.identity.id, &$0)
                    },
                ].compactMap { $0 }, &random)
        })
    fields.append(
        field("scopes", "scopes", isDefault: request.scopes.isEmpty, &random) { random in
            out += "["
            for (index, scope) in request.scopes.enumerated() {
                if index > 0 { out += "," }
                blank(&random)
                members(
                    [
                        field("decision_id", "decisionId", isDefault: scope.decisionID.isEmpty, &random) {
                            quoted(scope.decisionID, &$0)
                        },
                        field("placement_id", "placementId", isDefault: scope.placementID.isEmpty, &random) {
                            quoted(scope.placementID, &$0)
                        },
                        field("item_count", "itemCount", isDefault: scope.itemCount == 0, &random) {
                            integer(scope.itemCount, &$0)
                        },
                    ].compactMap { $0 }, &random)
            }
            blank(&random)
            out += "]"
        })
    fields.append(
        field("context", "context", isDefault: request.context.isEmpty, &random) { random in
            out += "{"
            for (index, (key, value)) in request.context.enumerated() {
                if index > 0 { out += "," }
                blank(&random)
                quoted(key, &random)
                out += ":"
                blank(&random)
                switch value {
                case .null: out += random.next() % 2 == 0 ? "null" : "{}"
                case .string(let text):
                    members(
                        [
                            { random in
                                name("string_value", "stringValue", &random)
                                quoted(text, &random)
                            }
                        ], &random)
                case .number(let number):
                    members(
                        [
                            { random in
                                name("number_value", "numberValue", &random)
                                double(number, &random)
                            }
                        ], &random)
                case .bool(let flag):
                    members(
                        [
                            { random in
                                name("bool_value", "boolValue", &random)
                                out += flag ? "true" : "false"
                            }
                        ], &random)
                }
            }
            out += "}"
        })
    for (proto, camel, flag) in [
        ("allow_duplicates", "allowDuplicates", request.allowDuplicates),
        ("include_content", "includeContent", request.includeContent),
        ("include_metadata", "includeMetadata", request.includeMetadata), ("dry_run", "dryRun", request.dryRun),
        ("explain", "explain", request.explain),
    ] {
        fields.append(field(proto, camel, isDefault: !flag, &random) { _ in out += flag ? "true" : "false" })
    }
    blank(&random)
    members(fields.compactMap { $0 }, &random)
    blank(&random)
    return Array(out.utf8)
}
