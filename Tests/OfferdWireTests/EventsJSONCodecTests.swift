import OfferdCore
import Testing

@testable import OfferdWire

/// RecordEvents and UpdateConsent in proto3 JSON (Connect's `application/json`): the values the protobuf path reads
/// for the same message, both field-name styles, enums by name or number, 64-bit integers as numbers or strings,
/// errors that name the field, and the responses with defaults left out.
@Suite("RecordEvents and UpdateConsent in proto3 JSON")
struct EventsJSONCodecTests {
    static let now: Int64 = 1_796_644_800_000

    static func decodeEvents(_ text: String) throws(WireDecodeError) -> RecordEventsRequest {
        try EventsJSONCodec.decodeRecordEventsRequest(Array(text.utf8))
    }

    static func decodeConsent(_ text: String) throws(WireDecodeError) -> UpdateConsentRequest {
        try EventsJSONCodec.decodeUpdateConsentRequest(Array(text.utf8))
    }

    @Test func recordEventsReadsWhatProtobufReadsForTheSameMessage() throws {
        var writer = ProtoWriter()
        EventsCodecTests.event(&writer, timestamp: UInt64(Self.now))
        EventsCodecTests.event(&writer, id: "e2", type: 3, offers: ["a", "b"])
        writer.bool(2, true)
        let fromProtobuf = try EventsCodec.decodeRecordEventsRequest(writer.bytes)
        let camel = try Self.decodeEvents(
            #"""
            {"events": [{"eventId": "e1", "identity": {"namespace": "ECID", "id": "4711"}, "type": "EVENT_TYPE_DISPLAY",
              "offerIds": ["o1"], "propositionId": "prop-1", "timestampMs": "1796644800000"},
             {"eventId": "e2", "identity": {"namespace": "ECID", "id": "4711"}, "type": 3, "offerIds": ["a", "b"],
              "propositionId": "prop-1"}], "dryRun": true}
            """#)
        let snake = try Self.decodeEvents(
            #"""
            {"events": [{"event_id": "e1", "identity": {"namespace": "ECID", "id": "4711"}, "type": 1,
              "offer_ids": ["o1"], "proposition_id": "prop-1", "timestamp_ms": 1796644800000},
             {"event_id": "e2", "identity": {"namespace": "ECID", "id": "4711"}, "type": "EVENT_TYPE_DISMISS",
              "offer_ids": ["a", "b"], "proposition_id": "prop-1", "timestamp_ms": null}], "dry_run": true}
            """#)
        #expect(camel == fromProtobuf)
        #expect(snake == fromProtobuf)
        #expect(camel.validationError(nowMs: Self.now) == nil)
    }

    @Test func anUndefinedTypeNumberIsKeptUnknownAndValidationNamesIt() throws {
        let request = try Self.decodeEvents(#"{"events": [{"eventId": "e1", "type": 9, "offerIds": ["o"]}]}"#)
        #expect(request.events[0].type == nil)
        #expect(request.events[0].identity == nil)
        #expect(request.validationError(nowMs: Self.now) == "events[0].identity is required")
    }

    @Test func updateConsentReadsWhatProtobufReads() throws {
        let request = try Self.decodeConsent(
            #"""
            {"eventId": "c1", "identity": {"namespace": "Email", "id": "ana@example.com"},
             "consents": {"personalize.content": "n", "marketing.email": "y"}, "dryRun": true}
            """#)
        #expect(request.eventID == "c1")
        #expect(request.identity == Identity(namespace: "Email", id: "ana@example.com"))
        #expect(request.consentMap == ["personalize.content": "n", "marketing.email": "y"])
        #expect(request.dryRun)
        #expect(request.validationError() == nil)
    }

    @Test(
        "errors name the field",
        arguments: [
            (#"{"events": [{"eventId": 5}]}"#, "events[0].event_id: expected a string"),
            (#"{"events": [{"offerIds": ["a", 1]}]}"#, "events[0].offer_ids[1]: expected a string"),
            (#"{"events": [{"type": "EVENT_TYPE_CLICK"}]}"#, #"events[0].type: unknown enum value "EVENT_TYPE_CLICK""#),
            (#"{"events": [{"timestampMs": 9223372036854775807}]}"#, "events[0].timestamp_ms:"),
            (#"{"events": [{"timestampMs": "12.5"}]}"#, "events[0].timestamp_ms:"),
            (#"{"events": [{"colour": "red"}]}"#, #"unknown field "colour" in events[0]"#),
            (#"{"events": [], "dry_run": true, "dryRun": false}"#, "field dry_run is given twice"),
            (#"{"events": {}}"#, "events: expected an array"),
            (#"[1]"#, "expected an object (offerd.v1.RecordEventsRequest)"),
            (#"{"events": [{"eventId": "a\u0000b"}]}"#, "events[0].event_id contains a NUL character"),
            (#"{"events": [ "#, "invalid JSON"),
        ])
    func recordEventsErrors(text: String, message: String) {
        #expect {
            _ = try Self.decodeEvents(text)
        } throws: { error in
            (error as? WireDecodeError)?.message.contains(message) == true
        }
    }

    @Test(
        "consent errors name the field",
        arguments: [
            (#"{"consents": {"personalize.content": null}}"#, "null is not allowed as a map value"),
            (#"{"consents": {"personalize.content": true}}"#, "expected a string"),
            (#"{"consents": []}"#, "consents: expected an object"),
            (#"{"identity": {"namespace": "ECID", "idd": "x"}}"#, #"unknown field "idd" in identity"#),
        ])
    func updateConsentErrors(text: String, message: String) {
        #expect {
            _ = try Self.decodeConsent(text)
        } throws: { error in
            (error as? WireDecodeError)?.message.contains(message) == true
        }
    }

    @Test func responsesLeaveDefaultsOut() {
        #expect(
            String(
                decoding: EventsJSONCodec.encodeRecordEventsResponse(recorded: 2, duplicates: 1, position: "7"),
                as: UTF8.self)
                == #"{"recorded":2,"duplicates":1,"position":"7"}"#)
        #expect(
            String(
                decoding: EventsJSONCodec.encodeRecordEventsResponse(recorded: 0, duplicates: 0, position: ""),
                as: UTF8.self)
                == "{}")
        #expect(
            String(decoding: EventsJSONCodec.encodeUpdateConsentResponse(position: "", duplicate: true), as: UTF8.self)
                == #"{"duplicate":true}"#)
        #expect(
            String(
                decoding: EventsJSONCodec.encodeUpdateConsentResponse(position: "1-0.0", duplicate: false),
                as: UTF8.self)
                == #"{"position":"1-0.0"}"#)
    }
}
