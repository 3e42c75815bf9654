import Testing

@testable import OfferdTransport

@Suite("grpc-message percent-encoding")
struct GRPCStatusTests {
    @Test(
        "encoding follows the gRPC spec",
        arguments: [
            ("scopes[2].item_count 31 exceeds 30", "scopes[2].item_count 31 exceeds 30"),
            ("100% sure", "100%25 sure"),
            ("café", "caf%C3%A9"),
            ("line\nbreak\t", "line%0Abreak%09"),
            ("~ and space", "~ and space"),
            ("\u{7F}", "%7F"),
            ("", ""),
        ]
    )
    func encodes(plain: String, encoded: String) {
        #expect(GRPCStatus.percentEncoded(plain) == encoded)
    }

    @Test(
        "decoding inverts encoding",
        arguments: [
            "plain", "100% sure", "emoji 🎯 and ümlauts", "%%%", "\u{0}\u{1}\u{1F}", "a%2",
        ]
    )
    func roundTrips(plain: String) {
        #expect(GRPCStatus.percentDecoded(GRPCStatus.percentEncoded(plain)) == plain)
    }

    @Test("decoding is lenient with stray percent signs")
    func lenientDecoding() {
        #expect(GRPCStatus.percentDecoded("50%") == "50%")
        #expect(GRPCStatus.percentDecoded("%zz%4") == "%zz%4")
        #expect(GRPCStatus.percentDecoded("%e2%9c%93") == "✓")
    }

    @Test("codes carry the wire numbers")
    func codes() {
        #expect(GRPCStatus.Code.deadlineExceeded.rawValue == 4)
        #expect(GRPCStatus.Code.unimplemented.rawValue == 12)
        #expect(GRPCStatus.Code(rawValue: 16) == .unauthenticated)
    }
}
