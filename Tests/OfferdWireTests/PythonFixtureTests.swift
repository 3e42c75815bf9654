import OfferdCore
import Testing

@testable import OfferdWire

/// Messages encoded by the reference protobuf implementation (Python, protobuf 7.36 via grpcio-tools) from the
/// canonical .proto, which spells `score` as proto3 `optional`; produced by `proto/tools/crosscheck.py`.
/// They prove that protobuf-c, compiling the synthetic-oneof copy, reads what other clients write.
@Suite("Python-encoded fixtures")
struct PythonFixtureTests {
    static let requestHex =
        "0a0970792d7265712dc3a912180a05456d61696c120f616e61406578616d706c652e636f6d1a1a0a0a6465636973696f6e2d61120a"
        + "7765622d62616e6e657218031a190a0b64c3a9636973696f6e2d62120a656d61696c2d6865726f22160a096361727456616c7565"
        + "12091100000000008029c0220e0a086c6f67676564496e12021801220b0a076e6f7468696e671200221b0a09706167652e747970"
        + "65120e0a0c70726f6475637420f09f9982280130014001"

    static let responseHex =
        "0a0770792d7265737012c1010a2431313131313131312d323232322d343333332d383434342d3535353535353535353535351201"
        + "641a0170200132690a0b73636f7265642d7a65726f1209746578742f68746d6c1a083c623e783c2f623e220968747470733a2f2f"
        + "642a0968747470733a2f2f6c3202656e320266723a045a65726f40fbffffffffffffffff014a0d0a066d617267696e1203302e33"
        + "510000000000000000320c0a08756e73636f72656440073a180a0b73636f7265642d7a65726f1201301a0663686f73656e1211"
        + "0a027032120264321a03736d7320032803180122056361742d312a07736e61702dc3bc"

    @Test func pythonRequestDecodes() throws {
        let request = try DecideCodec.decodeRequest(try #require(bytes(hex: Self.requestHex)))
        #expect(
            request
                == DecisionRequest(
                    requestID: "py-req-é",
                    identity: Identity(namespace: "Email", id: "ana@example.com"),
                    scopes: [
                        ScopeRequest(decisionID: "decision-a", placementID: "web-banner", itemCount: 3),
                        ScopeRequest(decisionID: "décision-b", placementID: "email-hero", itemCount: 0),
                    ],
                    context: [
                        "page.type": .string("product 🙂"), "cartValue": .number(-12.75), "loggedIn": .bool(true),
                        "nothing": .null,
                    ],
                    allowDuplicates: true, includeContent: true, includeMetadata: false, dryRun: true, explain: false))
    }

    @Test func pythonResponseDecodesWithScorePresence() throws {
        let response = try DecideCodec.decodeResponse(try #require(bytes(hex: Self.responseHex)))
        #expect(
            response
                == DecideResponseMessage(
                    requestID: "py-resp",
                    propositions: [
                        PropositionMessage(
                            propositionID: "11111111-2222-4333-8444-555555555555", decisionID: "d", placementID: "p",
                            outcomeNumber: Outcome.offers.rawValue, reasonNumber: Reason.unspecified.rawValue,
                            items: [
                                ItemMessage(
                                    id: "scored-zero", format: "text/html", content: "<b>x</b>",
                                    deliveryURL: "https://d",
                                    linkURL: "https://l", language: ["en", "fr"], name: "Zero", priority: -5,
                                    characteristics: [Characteristic(key: "margin", value: "0.3")], score: 0),
                                ItemMessage(id: "unscored", priority: 7),
                            ],
                            trace: [TraceEntryMessage(offerID: "scored-zero", criterion: "0", verdict: "chosen")]),
                        PropositionMessage(
                            propositionID: "p2", decisionID: "d2", placementID: "sms",
                            outcomeNumber: Outcome.suppressed.rawValue, reasonNumber: Reason.marketingDenied.rawValue,
                            items: [], trace: []),
                    ],
                    profileFound: true, catalogVersion: "cat-1", snapshotVersion: "snap-ü"))
    }

    private func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var result: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            result.append(byte)
        }
        return result
    }
}
