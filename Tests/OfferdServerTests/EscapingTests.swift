import Testing

@testable import OfferdServer

@Suite struct EscapingTests {
    @Test(arguments: [
        ("plain", "plain"), ("a\"b", "a\\\"b"), ("back\\slash", "back\\\\slash"), ("two\nlines", "two\\nlines"),
    ])
    func escapesQuotesBackslashesAndNewlines(raw: String, escaped: String) {
        #expect(escapedForQuotes(raw) == escaped)
    }

    @Test func logfmtQuotesOnlyWhenNeeded() {
        #expect(LogfmtLogHandler.quoted("catalog.json") == "catalog.json")
        #expect(LogfmtLogHandler.quoted("catalog loaded") == "\"catalog loaded\"")
        #expect(LogfmtLogHandler.quoted("") == "\"\"")
        #expect(LogfmtLogHandler.quoted("a=\"b\"") == "\"a=\\\"b\\\"\"")
    }
}
