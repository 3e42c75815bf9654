import OfferdCore
import Testing

@testable import OfferdWire

/// A result touching every response field: offers with and without score, a fallback, a suppression, an
/// error and a trace.
let sampleResult = DecisionResult(
    propositions: [
        Proposition(
            decisionID: "decision-a", placementID: "web-banner", outcome: .offers, reason: .unspecified,
            items: [
                DecidedItem(
                    id: "offer-gold", name: "Gold upgrade", priority: 50,
                    characteristics: [
                        Characteristic(key: "margin", value: "0.3"), Characteristic(key: "b", value: ""),
                    ],
                    representation: Representation(
                        placementID: "web-banner", format: "text/html", language: ["en-us", "fr"],
                        content: "<b>Gold</b>", deliveryURL: "https://cdn.example/gold.png",
                        linkURL: "https://example.com/gold"),
                    score: 12.5, isFallback: false),
                DecidedItem(
                    id: "offer-zero-score", name: nil, priority: -3, characteristics: [],
                    representation: Representation(placementID: "web-banner", content: "plain"),
                    score: 0, isFallback: false),
                DecidedItem(
                    id: "offer-unscored", name: "No formula", priority: Int(Int32.max) + 10, characteristics: [],
                    representation: Representation(placementID: "web-banner"), score: nil, isFallback: false),
            ],
            trace: [
                TraceEntry(offerID: "offer-gold", criterion: "0", verdict: .chosen, collectionID: "col-a", score: 12.5),
                TraceEntry(
                    offerID: "offer-zero-score", criterion: "0", verdict: .chosen, collectionID: "col-a", score: 0),
                TraceEntry(offerID: "offer-old", criterion: "0", verdict: .outsideDates, collectionID: "col-a"),
                TraceEntry(offerID: "offer-x", criterion: "1", verdict: .criterionIneligible, collectionID: "col-b"),
            ]),
        Proposition(
            decisionID: "decision-b", placementID: "email-hero", outcome: .fallback, reason: .personalizationDenied,
            items: [
                DecidedItem(
                    id: "fallback-generic", name: "Generic", priority: 0, characteristics: [],
                    representation: Representation(placementID: "email-hero", format: "text/plain", content: "Hi"),
                    score: nil, isFallback: true)
            ],
            trace: [.proposition(.personalizationDenied, detail: #"personalize.content is "n""#)]),
        Proposition(decisionID: "decision-c", placementID: "sms", outcome: .suppressed, reason: .marketingDenied),
        Proposition(decisionID: "nope", placementID: "web-banner", outcome: .error, reason: .decisionNotFound),
    ],
    profileFound: true,
    catalogVersion: "catalog-7")

@Suite("DecideCodec.encodeResponse")
struct EncodeResponseTests {
    @Test("fields follow the include flags", arguments: [false, true], [false, true])
    func fieldsFollowTheFlags(includeContent: Bool, includeMetadata: Bool) throws {
        let bytes = DecideCodec.encodeResponse(
            sampleResult, requestID: "req-9", snapshotVersion: "snap-3", includeContent: includeContent,
            includeMetadata: includeMetadata)
        let response = try DecideCodec.decodeResponse(bytes)
        #expect(response.requestID == "req-9")
        #expect(response.profileFound)
        #expect(response.catalogVersion == "catalog-7")
        #expect(response.snapshotVersion == "snap-3")
        #expect(response.propositions.count == sampleResult.propositions.count)

        for (sent, received) in zip(sampleResult.propositions, response.propositions) {
            #expect(received.decisionID == sent.decisionID)
            #expect(received.placementID == sent.placementID)
            #expect(received.outcome == sent.outcome)
            #expect(received.reason == sent.reason)
            #expect(received.trace.map(\.offerID) == sent.trace.map(\.offerID))
            #expect(received.trace.map(\.criterion) == sent.trace.map(\.criterion))
            #expect(received.trace.map(\.verdict) == sent.trace.map(\.verdict.rawValue))
            #expect(received.trace.map(\.collectionID) == sent.trace.map(\.collectionID))
            #expect(received.trace.map(\.score) == sent.trace.map(\.score)) // 0 stays present, nil stays absent
            #expect(received.trace.map(\.detail) == sent.trace.map(\.detail))
            #expect(received.items.count == sent.items.count)
            for (item, message) in zip(sent.items, received.items) {
                #expect(message == expectedItem(item, includeContent: includeContent, includeMetadata: includeMetadata))
            }
        }
    }

    private func expectedItem(_ item: DecidedItem, includeContent: Bool, includeMetadata: Bool) -> ItemMessage {
        var expected = ItemMessage(id: item.id, score: item.score)
        if includeContent {
            expected.format = item.representation.format ?? ""
            expected.content = item.representation.content ?? ""
            expected.deliveryURL = item.representation.deliveryURL ?? ""
            expected.linkURL = item.representation.linkURL ?? ""
            expected.language = item.representation.language
        }
        if includeMetadata {
            expected.name = item.name ?? ""
            expected.priority = Int(Int32(clamping: item.priority))
            expected.characteristics = item.characteristics
        }
        return expected
    }

    @Test func scoreIsPresentExactlyWhenRankedByFormulaEvenWhenZero() throws {
        let response = try DecideCodec.decodeResponse(
            DecideCodec.encodeResponse(
                sampleResult, requestID: "", snapshotVersion: "", includeContent: false, includeMetadata: false))
        let scores = response.propositions[0].items.map(\.score)
        #expect(scores == [12.5, 0, nil])
        #expect(response.propositions[1].items.map(\.score) == [nil])
    }

    @Test func zeroScoreIsOnTheWireAsField10() {
        let result = DecisionResult(
            propositions: [
                Proposition(
                    decisionID: "", placementID: "", outcome: .unspecified, reason: .unspecified,
                    items: [
                        DecidedItem(
                            id: "", name: nil, priority: 0, characteristics: [],
                            representation: Representation(placementID: ""), score: 0, isFallback: false)
                    ])
            ], profileFound: false, catalogVersion: "")
        let bytes = DecideCodec.encodeResponse(
            result, requestID: "", snapshotVersion: "", includeContent: true, includeMetadata: true)
        // propositions (field 2) { proposition_id (field 1, 36 bytes),
        //                          items (field 6) { score (field 10, fixed64 0) } }
        let item: [UInt8] = [0x51, 0, 0, 0, 0, 0, 0, 0, 0]
        #expect(bytes.count == 2 + (2 + 36) + 2 + item.count)
        #expect(Array(bytes.suffix(item.count + 2)) == [0x32, UInt8(item.count)] + item)
    }

    @Test func propositionIDsAreFreshUUIDs() throws {
        var seen: Set<String> = []
        for _ in 0..<50 {
            let response = try DecideCodec.decodeResponse(
                DecideCodec.encodeResponse(
                    sampleResult, requestID: "r", snapshotVersion: "s", includeContent: false, includeMetadata: false))
            for proposition in response.propositions {
                #expect(isUUIDv4(proposition.propositionID), "\(proposition.propositionID)")
                seen.insert(proposition.propositionID)
            }
        }
        #expect(seen.count == 50 * sampleResult.propositions.count)
    }

    @Test func emptyResultEncodesOnlyWhatIsSet() throws {
        let empty = DecisionResult(propositions: [], profileFound: false, catalogVersion: "")
        let bytes = DecideCodec.encodeResponse(
            empty, requestID: "", snapshotVersion: "", includeContent: true, includeMetadata: true)
        #expect(bytes.isEmpty)
        let response = try DecideCodec.decodeResponse(bytes)
        #expect(
            response
                == DecideResponseMessage(
                    requestID: "", propositions: [], profileFound: false, catalogVersion: "", snapshotVersion: ""))
    }

    @Test func unicodeSurvivesTheRoundTrip() throws {
        var result = sampleResult
        result.catalogVersion = "v-é€𝄞"
        result.propositions[0].items[0].characteristics = [Characteristic(key: "ключ", value: "值🙂")]
        let response = try DecideCodec.decodeResponse(
            DecideCodec.encodeResponse(
                result, requestID: "请求", snapshotVersion: "s", includeContent: true, includeMetadata: true))
        #expect(response.requestID == "请求")
        #expect(response.catalogVersion == "v-é€𝄞")
        #expect(response.propositions[0].items[0].characteristics == [Characteristic(key: "ключ", value: "值🙂")])
    }

    @Test func largeResponseSpansManyArenaChunks() throws {
        let longContent = String(repeating: "x", count: 100_000)
        var result = sampleResult
        result.propositions = (0..<30).map { index in
            Proposition(
                decisionID: "d\(index)", placementID: "p", outcome: .offers, reason: .unspecified,
                items: (0..<30).map { itemIndex in
                    DecidedItem(
                        id: "offer-\(index)-\(itemIndex)", name: "n", priority: itemIndex, characteristics: [],
                        representation: Representation(placementID: "p", content: itemIndex == 0 ? longContent : "c"),
                        score: Double(itemIndex), isFallback: false)
                })
        }
        let response = try DecideCodec.decodeResponse(
            DecideCodec.encodeResponse(
                result, requestID: "r", snapshotVersion: "s", includeContent: true, includeMetadata: true))
        #expect(response.propositions.count == 30)
        #expect(response.propositions.allSatisfy { $0.items.count == 30 && $0.items[0].content == longContent })
        #expect(response.propositions[29].items[29].id == "offer-29-29")
        #expect(response.propositions[29].items[29].score == 29)
    }

    @Test("truncated responses are refused by decodeResponse")
    func truncatedResponsesAreRefused() throws {
        let bytes = DecideCodec.encodeResponse(
            sampleResult, requestID: "r", snapshotVersion: "s", includeContent: true, includeMetadata: true)
        // Cutting one byte off the end always cuts the last proposition's length-delimited field short.
        #expect(throws: WireDecodeError.self) { try DecideCodec.decodeResponse(Array(bytes.dropLast())) }
        #expect(throws: Never.self) { try DecideCodec.decodeResponse(bytes) }
    }
}

/// Whether `text` is a lower-case canonical UUID with version 4 and the RFC 9562 variant.
func isUUIDv4(_ text: String) -> Bool {
    let bytes = Array(text.utf8)
    guard bytes.count == 36 else { return false }
    for (index, byte) in bytes.enumerated() {
        if [8, 13, 18, 23].contains(index) {
            guard byte == UInt8(ascii: "-") else { return false }
        } else {
            let isHex =
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
                || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
            guard isHex else { return false }
        }
    }
    return bytes[14] == UInt8(ascii: "4") && "89ab".utf8.contains(bytes[19])
}

@Suite("UUIDv4")
struct UUIDv4Tests {
    @Test func randomUUIDsAreCanonicalVersion4AndDistinct() {
        let uuids = (0..<1_000).map { _ in UUIDv4.random() }
        #expect(uuids.allSatisfy(isUUIDv4))
        #expect(Set(uuids).count == uuids.count)
    }

    @Test func seededGeneratorGivesAKnownUUID() {
        var generator = SplitMix64(seed: 1)
        let first = generator.next()
        let second = generator.next()
        var replay = SplitMix64(seed: 1)
        let uuid = UUIDv4.random(using: &replay)
        // Independent formatting of the same two words, with version and variant bits forced.
        let high = (first & ~0xF000) | 0x4000
        let low = (second & ~(UInt64(0xC) << 60)) | (UInt64(0x8) << 60)
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let raw = String(value, radix: 16)
            return String(repeating: "0", count: digits - raw.count) + raw
        }
        let expected =
            "\(hex(high >> 32, 8))-\(hex((high >> 16) & 0xFFFF, 4))-\(hex(high & 0xFFFF, 4))-"
            + "\(hex(low >> 48, 4))-\(hex(low & 0xFFFF_FFFF_FFFF, 12))"
        #expect(uuid == expected)
        #expect(isUUIDv4(uuid))
    }
}
