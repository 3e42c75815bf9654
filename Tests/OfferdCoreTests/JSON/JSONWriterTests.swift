import Testing

@testable import OfferdCore

@Suite("JSONWriter")
struct JSONWriterTests {
    @Test(arguments: [
        #"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
        #"{"z":1,"a":2}"#,
        #"["tab\tquote\"back\\slash\nnl\u0001ctl","é✓😀"]"#,
        #"[0,-0,1.5,-2.25,1e-7,1.2e+300,9007199254740992,9007199254740993,123456789.125]"#,
        #"[]"#,
        #"{}"#,
    ])
    func outputParsesBackToTheSameValue(_ text: String) throws {
        let value = try JSONParser.parse(text)
        let written = JSONWriter.string(value)
        #expect(try JSONParser.parse(written) == value, "\(written)")
    }

    @Test func writesCompactlyInOrder() throws {
        let value = JSONValue.object([
            JSONMember(key: "b", value: .number(2)), JSONMember(key: "a", value: .array([.string("x\n"), .null])),
        ])
        #expect(JSONWriter.string(value) == #"{"b":2,"a":["x\n",null]}"#)
        #expect(JSONWriter.string(.number(1.5)) == "1.5")
        #expect(JSONWriter.string(.number(.infinity)) == "null")
        #expect(JSONWriter.string(.string("\u{1F}")) == #""\u001f""#)
    }
}
