import Testing

@testable import OfferdEventLog

@Suite("Event log positions")
struct EventLogPositionTests {
    @Test(
        "the string form parses back to the same position",
        arguments: [
            "0", "1", "42", "18446744073709551615", "1733540000000-0.17", "0-0.0", "5-18446744073709551615.4294967295",
        ])
    func roundTrip(text: String) throws {
        let position = try #require(EventLogPosition(text))
        #expect(position.description == text)
    }

    @Test(
        "anything else is refused",
        arguments: [
            "", " 1", "1 ", "+1", "-1", "01", "1-0", "1-0.", "1-.0", "-0.0", "1.0", "1-0.01", "1-00.0", "1-0.0.0",
            "18446744073709551616", "1-0.4294967296", "1-0.x", "a", "1_0", "１",
        ])
    func refused(text: String) {
        #expect(EventLogPosition(text) == nil)
    }

    @Test("stream positions compare as numbers, field by field, not as strings")
    func numericOrder() throws {
        let ordered = ["9-0.2", "10-0.0", "10-0.9", "10-0.10", "10-1.0", "10-2.0", "100-0.0"]
        let positions = try ordered.map { try #require(EventLogPosition($0)) }
        for (earlier, later) in zip(positions, positions.dropFirst()) { #expect(earlier < later) }
        #expect(ordered.sorted() != ordered) // as strings they would sort differently
        #expect(try #require(EventLogPosition("9")) < #require(EventLogPosition("10")))
    }

    @Test("a stream position names its stream entry id")
    func entryID() {
        #expect(EventLogPosition.stream(milliseconds: 7, sequence: 3, index: 9).streamEntryID == "7-3")
        #expect(EventLogPosition.sequence(7).streamEntryID == nil)
        #expect(RedisStreamID("1733540000000-5") == RedisStreamID(milliseconds: 1_733_540_000_000, sequence: 5))
        #expect(RedisStreamID("1733540000000") == nil)
    }
}

@Suite("--events values and Redis URLs")
struct EventLogConfigurationTests {
    @Test("file:, none and redis:// select the backend")
    func backends() throws {
        #expect(try EventLogConfiguration(parsing: "none") == .none)
        #expect(try EventLogConfiguration(parsing: "file:offerd-events.log") == .file(path: "offerd-events.log"))
        #expect(
            try EventLogConfiguration(parsing: "file:/var/lib/offerd/a b.log") == .file(path: "/var/lib/offerd/a b.log")
        )
        #expect(
            try EventLogConfiguration(parsing: EventLogConfiguration.defaultValue) == .file(path: "offerd-events.log"))
        #expect(
            try EventLogConfiguration(parsing: "redis://cache:6380")
                == .redis(RedisEventLogConfiguration(host: "cache", port: 6380)))
    }

    @Test(
        "Redis URLs",
        arguments: [
            ("redis://localhost:6379", RedisEventLogConfiguration(host: "localhost", port: 6379)),
            ("redis://localhost", RedisEventLogConfiguration(host: "localhost", port: 6379)),
            ("redis://10.0.0.7:7000/3", RedisEventLogConfiguration(host: "10.0.0.7", port: 7000, database: 3)),
            ("redis://h:1/", RedisEventLogConfiguration(host: "h", port: 1)),
            (
                "redis://offerd:s%40cret:x@redis.internal:6379/2?key=live%3Aevents",
                RedisEventLogConfiguration(
                    host: "redis.internal", port: 6379, user: "offerd", password: "s@cret:x", database: 2,
                    key: "live:events")
            ),
            ("redis://:pw@h:6379", RedisEventLogConfiguration(host: "h", port: 6379, password: "pw")),
            ("redis://[::1]:6379?key=k", RedisEventLogConfiguration(host: "::1", port: 6379, key: "k")),
            ("redis://[fe80::1]", RedisEventLogConfiguration(host: "fe80::1", port: 6379)),
        ])
    func redisURLs(url: String, expected: RedisEventLogConfiguration) throws {
        #expect(try RedisEventLogConfiguration(url: url) == expected)
    }

    @Test(
        "bad Redis URLs say what is wrong",
        arguments: [
            ("redis://", "no host"),
            ("redis://:6379", "no host"),
            ("redis://h:0", "the port '0' is not a number from 1 to 65535"),
            ("redis://h:65536", "the port '65536' is not a number from 1 to 65535"),
            ("redis://h:x", "the port 'x' is not a number from 1 to 65535"),
            ("redis://h:", "the port '' is not a number from 1 to 65535"),
            ("redis://h:6379/db1", "the database 'db1' is not a number"),
            ("redis://h:6379/-1", "the database '-1' is not a number"),
            ("redis://h?db=1", "unknown query parameter 'db=1' (only key=KEY is accepted)"),
            ("redis://h?key=a&key=b", "key= given twice"),
            ("redis://h?key=", "the key is empty"),
            ("redis://h?key=%4", "the key has a bad percent escape"),
            ("redis://user@h", "credentials must be USER:PASSWORD or :PASSWORD"),
            ("redis://user:@h", "the password is empty"),
            ("redis://::1:6379", "an IPv6 host must be in brackets"),
            ("redis://[::1:6379", "an IPv6 host without its closing ]"),
            ("redis://h h:1", "the host 'h h' has characters a host name cannot have"),
            ("redis://h:1#x", "a fragment (#) is not allowed"),
        ])
    func badURLs(url: String, message: String) {
        let error = #expect(throws: EventLogConfigurationError.self) { try EventLogConfiguration(parsing: url) }
        #expect(error?.message.hasSuffix(": " + message) == true, "\(error?.message ?? "no error")")
    }

    @Test("a password never appears in an error or a description")
    func redaction() throws {
        let error = #expect(throws: EventLogConfigurationError.self) {
            try EventLogConfiguration(parsing: "redis://u:hunter2@h:99999")
        }
        #expect(error?.message.contains("hunter2") == false)
        #expect(error?.message.contains("u:***@h:99999") == true)
        let configuration = try RedisEventLogConfiguration(url: "redis://u:hunter2@h:1")
        #expect(!configuration.description.contains("hunter2"))
    }

    @Test("rediss:// is refused with the reason, other schemes with the accepted forms")
    func refusedSchemes() {
        let tls = #expect(throws: EventLogConfigurationError.self) {
            try EventLogConfiguration(parsing: "rediss://h:6380")
        }
        #expect(tls?.message.hasPrefix("TLS to Redis is not supported by this build") == true)
        for value in ["file:", "", "FILE:x", "redis:/h", "valkey://h", "http://h"] {
            let error = #expect(throws: EventLogConfigurationError.self) { try EventLogConfiguration(parsing: value) }
            #expect(error != nil, "\(value)")
        }
    }
}
