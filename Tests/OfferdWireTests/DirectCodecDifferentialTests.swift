import OfferdCore
import Testing

@testable import OfferdWire

/// The direct writer against the protobuf-c encoder it replaces: its bytes must be protobuf-c's.
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
