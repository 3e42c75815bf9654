import OfferdCore
import Testing

@testable import OfferdWire

/// The direct reader and writer against the protobuf-c paths they replace: the reader may leave a message to
/// protobuf-c, but what it reads must be what protobuf-c's path gives; the writer's bytes must be protobuf-c's.
@Suite("DecideRequestReader against protobuf-c")
struct DecideRequestReaderDifferentialTests {
    @Test func wellFormedRequestsAreReadDirectlyAsProtobufCReadsThem() throws {
        var random = SplitMix64(seed: 15)
        for _ in 0..<2_000 {
            let request = randomRequest(&random)
            let bytes = DecideCodec.encodeRequest(request)
            let direct = try #require(bytes.withUnsafeBytes { DecideRequestReader.read($0) }, "bytes \(bytes)")
            let reference = try bytes.withUnsafeBytes { buffer in
                try Result { () throws(WireDecodeError) in try DecideCodec.decodeRequestThroughProtobufC(buffer) }
                    .get()
            }
            #expect(comparable(direct) == comparable(reference), "bytes \(bytes)")
            #expect(comparable(direct) == comparable(request))
        }
    }

    @Test func quirkyAndMutatedMessagesDecodeAsThroughProtobufC() {
        var random = SplitMix64(seed: 0xDEC0DE)
        var readDirectly = 0
        var leftToProtobufC = 0
        for round in 0..<30_000 {
            var bytes = quirkyMessage(&random)
            if round % 2 == 1 { mutate(&bytes, &random) }
            if compare(bytes) { readDirectly += 1 } else { leftToProtobufC += 1 }
        }
        // Both paths must be exercised for the comparison to mean anything.
        #expect(readDirectly > 5_000)
        #expect(leftToProtobufC > 5_000)
    }

    @Test func randomBytesDecodeAsThroughProtobufC() {
        var random = SplitMix64(seed: 77)
        var readDirectly = 0
        for _ in 0..<20_000 {
            let bytes = (0..<Int(random.next() % 40)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            if compare(bytes) { readDirectly += 1 }
        }
        #expect(readDirectly > 0)
    }

    /// Each of these is valid protobuf that protobuf-c reads its own way (merging, overwriting, truncating) or
    /// refuses where the wire check does not: the reader must leave it to protobuf-c.
    @Test(
        "left to protobuf-c",
        arguments: [
            ("identity sent twice (merged)", [0x12, 0x03, 0x0A, 0x01, 0x61, 0x12, 0x03, 0x12, 0x01, 0x62]),
            ("request_id sent twice", [0x0A, 0x01, 0x61, 0x0A, 0x01, 0x62]),
            ("a flag sent twice", [0x28, 0x01, 0x28, 0x00]),
            (
                "two kinds of one context value",
                [0x22, 0x0B, 0x12, 0x09, 0x18, 0x01, 0x11] + [UInt8](repeating: 0, count: 8)
            ),
            ("context value sent twice in an entry", [0x22, 0x06, 0x12, 0x02, 0x18, 0x01, 0x12, 0x00]),
            ("request_id as a varint", [0x08, 0x01]),
            ("item_count as fixed32", [0x1A, 0x05, 0x1D, 0x01, 0x00, 0x00, 0x00]),
            ("a five-byte tag", [0xC8, 0x80, 0x80, 0x80, 0x01, 0x00]),
            ("a six-byte length", [0x0A, 0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x61]),
            ("a bool with a bit past the 64th", [0x28] + [UInt8](repeating: 0x80, count: 9) + [0x02]),
            ("a string holding NUL", [0x0A, 0x01, 0x00]),
            (
                "NUL in the first eight bytes of nine",
                [0x0A, 0x09, 0x61, 0x61, 0x61, 0x00, 0x61, 0x61, 0x61, 0x61, 0x61]
            ),
            (
                "bad UTF-8 across the first word's end",
                [0x0A, 0x09, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0x61, 0xC3, 0x41]
            ),
            ("a string not UTF-8", [0x0A, 0x01, 0xFF]),
            ("a group", [0x53, 0x54]),
            ("field number 0", [0x00, 0x00]),
            ("a truncated length", [0x0A, 0x05, 0x61]),
        ] as [(String, [UInt8])])
    func leftToProtobufC(label: String, bytes: [UInt8]) {
        #expect(bytes.withUnsafeBytes { DecideRequestReader.read($0) } == nil, "\(label)")
        _ = compare(bytes)
    }

    /// Compares the public decode (direct reader first) with the protobuf-c path on `bytes`: the same request or
    /// the same error message; returns whether the direct reader read it.
    @discardableResult
    private func compare(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buffer in
            let direct = DecideRequestReader.read(buffer)
            let reference = Result { () throws(WireDecodeError) in
                try DecideCodec.decodeRequestThroughProtobufC(buffer)
            }
            let decoded = Result { () throws(WireDecodeError) in try DecideCodec.decodeRequest(buffer) }
            switch (reference, decoded) {
            case (.success(let expected), .success(let actual)):
                #expect(comparable(actual) == comparable(expected), "bytes \(bytes)")
            case (.failure(let expected), .failure(let actual)):
                #expect(actual == expected, "bytes \(bytes)")
            default:
                Issue.record("protobuf-c gave \(reference), the decoder \(decoded), bytes \(bytes)")
            }
            if let direct {
                #expect(comparable(direct) == (try? reference.get()).map(comparable), "bytes \(bytes)")
            }
            return direct != nil
        }
    }
}

/// `request` with every number context value replaced by a string of its bits, which no decoded string can equal
/// (it holds U+0000): NaN compares equal to itself, and -0 apart from 0.
private func comparable(_ request: DecisionRequest) -> DecisionRequest {
    var request = request
    for (key, value) in request.context {
        if case .number(let number) = value { request.context[key] = .string("\u{0}\(number.bitPattern)") }
    }
    return request
}

private func randomText(_ random: inout SplitMix64) -> String {
    let alphabet: [String] =
        random.next() % 2 == 0
        ? ["a", "Z", "0", "-", ".", " ", "\u{1}", "\u{7F}"]
        : ["a", "Z", "0", "-", ".", " ", "é", "🙂", "日", "\u{7F}", "\u{80}", "\u{10FFFF}"]
    let length = random.next() % 4 == 0 ? Int(random.next() % 200) : Int(random.next() % 12)
    return (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }.joined()
}

private func randomContextValue(_ random: inout SplitMix64) -> ContextValue {
    switch random.next() % 5 {
    case 0: return .null
    case 1: return .string(randomText(&random))
    case 2: return .bool(random.next() % 2 == 0)
    case 3: return .number([0, -0.0, .nan, .infinity, -1.5e300][Int(random.next() % 5)])
    default: return .number(Double(bitPattern: random.next()))
    }
}

private func randomRequest(_ random: inout SplitMix64) -> DecisionRequest {
    var context: [String: ContextValue] = [:]
    for _ in 0..<random.next() % 4 { context[randomText(&random)] = randomContextValue(&random) }
    return DecisionRequest(
        requestID: randomText(&random),
        identity: Identity(namespace: randomText(&random), id: randomText(&random)),
        scopes: (0..<random.next() % 5).map { _ in
            ScopeRequest(
                decisionID: randomText(&random), placementID: randomText(&random),
                itemCount: random.next() % 2 == 0
                    ? UInt32(random.next() % 5) : UInt32(truncatingIfNeeded: random.next()))
        },
        context: context, allowDuplicates: random.next() % 2 == 0, includeContent: random.next() % 2 == 0,
        includeMetadata: random.next() % 2 == 0, dryRun: random.next() % 2 == 0, explain: random.next() % 2 == 0)
}

/// A message a client might not send but protobuf allows: fields in any order and sent twice, unknown fields of
/// every wire type, wider varints than needed, empty sub-messages, strings with bytes that are not UTF-8.
private func quirkyMessage(_ random: inout SplitMix64) -> [UInt8] {
    func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }
    func text(_ random: inout SplitMix64) -> [UInt8] {
        var bytes = Array(randomText(&random).utf8)
        if random.next() % 20 == 0 {
            // Anywhere in the string: the reader checks ASCII eight bytes at a time, then byte by byte.
            let bad: [UInt8] = [0x00, 0xFF, 0xC0, 0xED, 0x80]
            bytes.insert(bad[Int(random.next() % 5)], at: Int(random.next() % UInt64(bytes.count + 1)))
        }
        return bytes
    }
    func unknownField(_ writer: inout ProtoWriter, _ random: inout SplitMix64) {
        let number = [10, 15, 16, 100, 2047, 2048, 1 << 20][Int(random.next() % 7)] as UInt64
        switch random.next() % 4 {
        case 0: writer.uint(number, random.next())
        case 1: writer.double(number, 1)
        case 2: writer.bytesField(number, text(&random))
        default:
            writer.tag(number, wireType: 5)
            writer.fixed32(7)
        }
    }
    func wideVarint(_ writer: inout ProtoWriter, _ value: UInt64) {
        // Non-minimal: the value with one or more empty continuation bytes.
        var bytes: [UInt8] = []
        var rest = value
        repeat {
            bytes.append(UInt8(rest & 0x7F) | 0x80)
            rest >>= 7
        } while rest > 0
        bytes += [UInt8](repeating: 0x80, count: Int(random.next() % 3))
        bytes.append(0)
        writer.raw(Array(bytes.prefix(10)))
        if bytes.count > 10 { writer.raw([0]) }
    }
    var writer = ProtoWriter()
    for _ in 0..<(1 + random.next() % 8) {
        switch random.next() % 9 {
        case 0: writer.bytesField(1, text(&random))
        case 1:
            writer.message(2) { identity in
                if chance(80) { identity.bytesField(1, text(&random)) }
                if chance(80) { identity.bytesField(2, text(&random)) }
                if chance(10) { identity.bytesField(2, text(&random)) }
                if chance(20) { unknownField(&identity, &random) }
            }
        case 2, 3:
            writer.message(3) { scope in
                if chance(80) { scope.bytesField(1, text(&random)) }
                if chance(80) { scope.bytesField(2, text(&random)) }
                if chance(70) {
                    scope.tag(3, wireType: 0)
                    if chance(30) { wideVarint(&scope, random.next() % 300) } else { scope.varint(random.next()) }
                }
                if chance(5) { scope.tag(3, wireType: chance(50) ? 1 : 2) }
                if chance(20) { unknownField(&scope, &random) }
            }
        case 4, 5:
            writer.message(4) { entry in
                if chance(90) { entry.bytesField(1, text(&random)) }
                if chance(85) {
                    entry.message(2) { value in
                        for _ in 0..<(chance(10) ? 2 : chance(90) ? 1 : 0) {
                            switch random.next() % 3 {
                            case 0: value.bytesField(1, text(&random))
                            case 1: value.double(2, Double(bitPattern: random.next()))
                            default: value.uint(3, chance(50) ? 0 : random.next())
                            }
                        }
                        if chance(15) { unknownField(&value, &random) }
                    }
                }
                if chance(5) { entry.bytesField(1, text(&random)) }
            }
        case 6:
            let flag = 5 + random.next() % 5
            writer.tag(flag, wireType: 0)
            if chance(20) { wideVarint(&writer, random.next() % 2) } else { writer.varint(random.next() % 3) }
        case 7:
            unknownField(&writer, &random)
        default:
            // A known field under another field's wire type, now and then.
            if chance(10) { writer.uint(1 + random.next() % 9, 1) }
        }
    }
    return writer.bytes
}

private func mutate(_ bytes: inout [UInt8], _ random: inout SplitMix64) {
    for _ in 0..<(1 + random.next() % 3) {
        guard !bytes.isEmpty else { return }
        let index = Int(random.next() % UInt64(bytes.count))
        switch random.next() % 4 {
        case 0: bytes[index] = UInt8(truncatingIfNeeded: random.next())
        case 1: bytes.remove(at: index)
        case 2: bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
        default: bytes[index] ^= 1 << (random.next() % 8)
        }
    }
}

@Suite("DecideResponseWriter against protobuf-c")
struct DecideResponseWriterDifferentialTests {
    @Test func randomResultsEncodeToProtobufCsBytes() {
        var random = SplitMix64(seed: 2026)
        for index in 0..<3_000 {
            let result = randomResult(&random)
            let requestID = index % 5 == 0 ? "" : "req-\(index)" + (index % 7 == 0 ? "\u{0}cut" : "")
            let snapshotVersion = index % 4 == 0 ? "" : "snap-é-\(index)"
            let content = index % 2 == 0
            let metadata = index % 3 != 0
            #expect(
                direct(result, requestID, snapshotVersion, content, metadata, seed: UInt64(index))
                    == reference(result, requestID, snapshotVersion, content, metadata, seed: UInt64(index)),
                "result \(index)")
        }
    }

    @Test func longStringsNeedWideLengthsAlike() {
        // Lengths of 128 and 16,384 bytes and more take two and three varint bytes, at every level.
        for length in [127, 128, 16_383, 16_384, 70_000] {
            let long = String(repeating: "x", count: length)
            let item = DecidedItem(
                id: long, name: long, priority: 1, characteristics: [Characteristic(key: long, value: long)],
                representation: Representation(placementID: "p", language: [long], content: long), score: nil,
                isFallback: false)
            let result = DecisionResult(
                propositions: [
                    Proposition(
                        decisionID: long, placementID: "p", outcome: .offers, reason: .unspecified,
                        items: [item, item], trace: [TraceEntry(offerID: long, criterion: "0", verdict: .chosen)])
                ], profileFound: false, catalogVersion: long)
            #expect(
                direct(result, long, long, true, true, seed: 1) == reference(result, long, long, true, true, seed: 1))
        }
    }

    /// No request id given: the encoder writes a fresh UUID v4 in place, drawn before the proposition ids, and the
    /// bytes are protobuf-c's for that id given as a string.
    @Test func aMissingRequestIDIsAFreshUUIDWrittenInPlace() {
        var random = SplitMix64(seed: 77)
        for round in 0..<50 {
            let result = randomResult(&random)
            let (content, metadata) = (round % 2 == 0, round % 3 == 0)
            var inPlaceIDs = SplitMix64(seed: UInt64(round))
            let inPlace = DecideCodec.encodeResponse(
                result, requestID: nil, snapshotVersion: "snap", includeContent: content,
                includeMetadata: metadata, propositionIDs: &inPlaceIDs, output: packed)
            var referenceIDs = SplitMix64(seed: UInt64(round))
            let requestID = UUIDv4.random(using: &referenceIDs)
            let reference = DecideCodec.encodeResponseThroughProtobufC(
                result, requestID: requestID, snapshotVersion: "snap", includeContent: content,
                includeMetadata: metadata, propositionIDs: &referenceIDs)
            #expect(inPlace == reference, "round \(round)")
        }
    }

    /// The response of `EncodeResponseTests`' sample with proposition ids from SplitMix64 seeded 9, as protobuf-c
    /// packed it: a fixed point that holds even if both encoders changed together.
    @Test func sampleEncodesToTheRecordedBytes() {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
        #expect(hex(direct(sampleResult, "req-9", "snap-3", true, true, seed: 9)) == sampleResponseHex)
        #expect(hex(reference(sampleResult, "req-9", "snap-3", true, true, seed: 9)) == sampleResponseHex)
    }

    private func direct(
        _ result: DecisionResult, _ requestID: String, _ snapshotVersion: String, _ content: Bool, _ metadata: Bool,
        seed: UInt64
    ) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return DecideCodec.encodeResponse(
            result, requestID: requestID, snapshotVersion: snapshotVersion, includeContent: content,
            includeMetadata: metadata, propositionIDs: &generator, output: packed)
    }

    private func reference(
        _ result: DecisionResult, _ requestID: String, _ snapshotVersion: String, _ content: Bool, _ metadata: Bool,
        seed: UInt64
    ) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return DecideCodec.encodeResponseThroughProtobufC(
            result, requestID: requestID, snapshotVersion: snapshotVersion, includeContent: content,
            includeMetadata: metadata, propositionIDs: &generator)
    }
}

/// Random engine results touching every response field, with what protobuf-c treats specially: empty strings,
/// strings holding U+0000 (cut there), negative and clamped priorities, scores of 0, -0, NaN and infinities, empty
/// language tags, trace entries with and without scores.
private func randomResult(_ random: inout SplitMix64) -> DecisionResult {
    func text(_ random: inout SplitMix64) -> String {
        let alphabet: [String] = ["a", "Z", "-", " ", "é", "🙂", "日", "\u{0}", "\n"]
        let length = random.next() % 5 == 0 ? Int(random.next() % 150) : Int(random.next() % 6)
        return (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }.joined()
    }
    func optionalText(_ random: inout SplitMix64) -> String? {
        random.next() % 3 == 0 ? nil : text(&random)
    }
    func score(_ random: inout SplitMix64) -> Double? {
        switch random.next() % 5 {
        case 0: return nil
        case 1: return [0, -0.0, .nan, .infinity, -.infinity][Int(random.next() % 5)]
        default: return Double(bitPattern: random.next())
        }
    }
    let verdicts: [TraceVerdict] = [.chosen, .rankedOut, .outsideDates, .criterionIneligible]
    let propositions = (0..<(random.next() % 5)).map { _ in
        let items = (0..<(random.next() % 4)).map { _ in
            DecidedItem(
                id: text(&random), name: optionalText(&random),
                priority: [0, 1, -1, 127, 128, Int(Int32.min), Int(Int32.max) + 5, -5_000_000_000][
                    Int(random.next() % 8)],
                characteristics: (0..<(random.next() % 3)).map { _ in
                    Characteristic(key: text(&random), value: text(&random))
                },
                representation: Representation(
                    placementID: "p", format: optionalText(&random),
                    language: (0..<(random.next() % 3)).map { _ in text(&random) }, content: optionalText(&random),
                    deliveryURL: optionalText(&random), linkURL: optionalText(&random)),
                score: score(&random), isFallback: random.next() % 2 == 0)
        }
        return Proposition(
            decisionID: text(&random), placementID: text(&random),
            outcome: Outcome.allCases[Int(random.next() % 5)], reason: Reason.allCases[Int(random.next() % 8)],
            items: items,
            trace: (0..<(random.next() % 3)).map { _ in
                TraceEntry(
                    offerID: text(&random), criterion: text(&random), verdict: verdicts[Int(random.next() % 4)],
                    collectionID: text(&random), score: score(&random), detail: text(&random))
            })
    }
    return DecisionResult(
        propositions: propositions, profileFound: random.next() % 2 == 0, catalogVersion: text(&random))
}

/// Recorded from protobuf-c's encoder (`encodeResponseThroughProtobufC`) at the commit that added the direct writer.
private let sampleResponseHex = [
    "0a057265712d3912d3030a2461656166353266652d626537302d343036342d383032642d386135653837616665613632",
    "120a6465636973696f6e2d611a0a7765622d62616e6e657220013294010a0a6f666665722d676f6c641209746578742f",
    "68746d6c1a0b3c623e476f6c643c2f623e221c68747470733a2f2f63646e2e6578616d706c652f676f6c642e706e672a",
    "1868747470733a2f2f6578616d706c652e636f6d2f676f6c643205656e2d7573320266723a0c476f6c64207570677261",
    "646540324a0d0a066d617267696e1203302e334a030a0162510000000000002940322d0a106f666665722d7a65726f2d",
    "73636f72651a05706c61696e40fdffffffffffffffff0151000000000000000032220a0e6f666665722d756e73636f72",
    "65643a0a4e6f20666f726d756c6140ffffffff073a270a0a6f666665722d676f6c641201301a0663686f73656e220563",
    "6f6c2d612900000000000029403a2d0a106f666665722d7a65726f2d73636f72651201301a0663686f73656e2205636f",
    "6c2d612900000000000000003a240a096f666665722d6f6c641201301a0d6f7574736964652d64617465732205636f6c",
    "2d613a290a076f666665722d781201311a14637269746572696f6e2d696e656c696769626c652205636f6c2d6212a501",
    "0a2434336563326265352d343462352d343962362d383865392d386364363937333136303630120a6465636973696f6e",
    "2d621a0a656d61696c2d6865726f20022802322b0a1066616c6c6261636b2d67656e65726963120a746578742f706c61",
    "696e1a0248693a0747656e657269633a341a16706572736f6e616c697a6174696f6e2d64656e696564321a706572736f",
    "6e616c697a652e636f6e74656e7420697320226e22123b0a2434333336623337382d326635382d343761312d39643536",
    "2d663461353830386536626665120a6465636973696f6e2d631a03736d7320032803123c0a2461353533623861362d35",
    "6161632d343863632d626263392d64363138346465376631336412046e6f70651a0a7765622d62616e6e657220042805",
    "18012209636174616c6f672d372a06736e61702d33",
].joined()
