import Testing

@testable import OfferdCore

@Suite struct JSONParserTests {
    @Test func parsesNestedDocumentInOrder() throws {
        let value = try JSONParser.parse(#"{"b": [1, 2.5, -3e2], "a": {"x": null, "y": true}, "s": "\u00e9\n"}"#)
        guard case .object(let members) = value else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.key) == ["b", "a", "s"])
        #expect(value["b"] == .array([.number(1), .number(2.5), .number(-300)]))
        #expect(value["a"]?["y"] == .bool(true))
        #expect(value["s"] == .string("é\n"))
    }

    @Test(arguments: [
        (#"{"a":1,"a":2}"#, "duplicate key \"a\""),
        ("[1,]", "unexpected character"),
        ("01", "leading zero in a number"),
        ("{\"a\":1} x", "unexpected data after the JSON value"),
        (#""\ud800""#, "lone surrogate in a string"),
        ("\"a\u{01}\"", "control character in a string"),
        ("", "unexpected end of input"),
    ])
    func rejectsInvalidJSON(text: String, message: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
        do {
            _ = try JSONParser.parse(text)
        } catch {
            #expect(error.message == message)
        }
    }

    @Test(arguments: [
        ("0", 0.0), ("-0", -0.0), ("42", 42.0), ("-17", -17.0), ("999999999999999", 999_999_999_999_999.0),
        ("12345678901234567", 12_345_678_901_234_567.0), ("1.5", 1.5), ("-2e3", -2000.0), ("7E-1", 0.7),
    ])
    func parsesNumbersExactly(text: String, expected: Double) throws {
        guard case .number(let value) = try JSONParser.parse(text) else {
            Issue.record("not a number")
            return
        }
        #expect(value == expected)
        #expect(value.sign == expected.sign)
    }

    @Test func findsDuplicateKeysInLargeObjects() {
        let members = (0..<40).map { "\"k\($0)\": \($0)" }.joined(separator: ", ")
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\(members), \"k33\": 1}") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\(members), \"k3\": 1}") }
        #expect((try? JSONParser.parse("{\(members), \"k40\": 1}")) != nil)
    }

    @Test func reportsLineAndColumn() {
        do {
            _ = try JSONParser.parse("{\n  \"a\": tru\n}")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == 2)
            #expect(error.column == 8)
        }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func refusesDeepNesting() {
        let text = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func hashMatchesSpecConstants() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (published test vector).
        var hasher = FNV1a64()
        hasher.combine(contentsOf: "a".utf8)
        #expect(hasher.value == 0xaf63_dc4c_8601_ec8c)
    }
}
