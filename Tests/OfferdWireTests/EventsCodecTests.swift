import OfferdCore
import Testing

@testable import OfferdWire

@Suite("RecordEvents and UpdateConsent messages")
struct EventsCodecTests {
    static let now: Int64 = 1_796_644_800_000

    static func event(
        _ writer: inout ProtoWriter, id: String = "e1", namespace: String = "ECID", identityID: String = "4711",
        type: UInt64 = 1, offers: [String] = ["o1"], timestamp: UInt64? = nil
    ) {
        writer.message(1) { event in
            event.string(1, id)
            event.message(2) { identity in
                identity.string(1, namespace)
                identity.string(2, identityID)
            }
            event.uint(3, type)
            for offer in offers { event.string(4, offer) }
            event.string(5, "prop-1")
            if let timestamp { event.uint(6, timestamp) }
        }
    }

    @Test func recordEventsDecodes() throws {
        var writer = ProtoWriter()
        Self.event(&writer, timestamp: UInt64(Self.now))
        Self.event(&writer, id: "e2", type: 3, offers: ["a", "b"])
        writer.bool(2, true)
        let request = try EventsCodec.decodeRecordEventsRequest(writer.bytes)
        #expect(
            request.events == [
                FeedbackEvent(
                    eventID: "e1", identity: Identity(namespace: "ECID", id: "4711"), type: .display, offerIDs: ["o1"],
                    propositionID: "prop-1", timestampMs: Self.now),
                FeedbackEvent(
                    eventID: "e2", identity: Identity(namespace: "ECID", id: "4711"), type: .dismiss,
                    offerIDs: ["a", "b"], propositionID: "prop-1"),
            ])
        #expect(request.dryRun)
        #expect(request.validationError(nowMs: Self.now) == nil)
    }

    @Test func anUndefinedTypeAndAMissingIdentityDecodeAsSuch() throws {
        var writer = ProtoWriter()
        writer.message(1) { event in
            event.string(1, "e1")
            event.uint(3, 9)
            event.string(4, "o")
        }
        let request = try EventsCodec.decodeRecordEventsRequest(writer.bytes)
        #expect(request.events[0].type == nil)
        #expect(request.events[0].identity == nil)
        #expect(request.validationError(nowMs: Self.now) == "events[0].identity is required")
    }

    @Test(
        arguments: [
            (
                FeedbackEvent(
                    eventID: "", identity: Identity(namespace: "E", id: "1"), type: .display, offerIDs: ["o"]),
                "events[1].event_id is required"
            ),
            (
                FeedbackEvent(
                    eventID: String(repeating: "x", count: 129), identity: Identity(namespace: "E", id: "1"),
                    type: .display, offerIDs: ["o"]), "events[1].event_id is longer than 128 bytes"
            ),
            (
                FeedbackEvent(
                    eventID: "e", identity: Identity(namespace: "", id: "1"), type: .display, offerIDs: ["o"]),
                "events[1].identity.namespace is empty"
            ),
            (
                FeedbackEvent(
                    eventID: "e", identity: Identity(namespace: "E", id: ""), type: .display, offerIDs: ["o"]),
                "events[1].identity.id is empty"
            ),
            (
                FeedbackEvent(
                    eventID: "e", identity: Identity(namespace: "E", id: "1"), type: .unspecified, offerIDs: ["o"]),
                "events[1].type must be"
            ),
            (
                FeedbackEvent(eventID: "e", identity: Identity(namespace: "E", id: "1"), type: nil, offerIDs: ["o"]),
                "events[1].type must be"
            ),
            (
                FeedbackEvent(eventID: "e", identity: Identity(namespace: "E", id: "1"), type: .interact, offerIDs: []),
                "events[1].offer_ids: at least one"
            ),
            (
                FeedbackEvent(
                    eventID: "e", identity: Identity(namespace: "E", id: "1"), type: .interact,
                    offerIDs: Array(repeating: "o", count: 31)), "events[1].offer_ids: at most 30"
            ),
            (
                FeedbackEvent(
                    eventID: "e", identity: Identity(namespace: "E", id: "1"), type: .interact,
                    offerIDs: ["o", ""]), "events[1].offer_ids[1] is empty"
            ),
            (
                FeedbackEvent(
                    eventID: "e", identity: Identity(namespace: "E", id: "1"), type: .interact, offerIDs: ["o"],
                    timestampMs: now + 5 * 60_000 + 1), "events[1].timestamp_ms is more than 5 minutes ahead"
            ),
            (
                FeedbackEvent(
                    eventID: "e", identity: Identity(namespace: "E", id: "1"), type: .interact, offerIDs: ["o"],
                    timestampMs: now - 31 * 86_400_000 - 1), "events[1].timestamp_ms is more than 31 days old"
            ),
        ])
    func theFirstBadFieldIsNamed(bad: FeedbackEvent, message: String) {
        let good = FeedbackEvent(
            eventID: "ok", identity: Identity(namespace: "E", id: "1"), type: .display, offerIDs: ["o"])
        let request = RecordEventsRequest(events: [good, bad, bad])
        let error = request.validationError(nowMs: Self.now)
        #expect(error?.hasPrefix(message) == true, "\(error ?? "nil")")
    }

    @Test func eventCountsAreBounded() {
        let good = FeedbackEvent(
            eventID: "ok", identity: Identity(namespace: "E", id: "1"), type: .display, offerIDs: ["o"])
        #expect(
            RecordEventsRequest(events: []).validationError(nowMs: Self.now)?.hasPrefix("events: at least one") == true)
        #expect(RecordEventsRequest(events: Array(repeating: good, count: 100)).validationError(nowMs: Self.now) == nil)
        #expect(
            RecordEventsRequest(events: Array(repeating: good, count: 101)).validationError(nowMs: Self.now)?
                .hasPrefix("events: at most 100") == true)
        // Exactly at the bounds is fine.
        var edge = good
        edge.timestampMs = Self.now + 5 * 60_000
        #expect(RecordEventsRequest(events: [edge]).validationError(nowMs: Self.now) == nil)
        edge.timestampMs = Self.now - 31 * 86_400_000
        #expect(RecordEventsRequest(events: [edge]).validationError(nowMs: Self.now) == nil)
    }

    @Test func updateConsentDecodesAndValidates() throws {
        var writer = ProtoWriter()
        writer.string(1, "c1")
        writer.message(2) { identity in
            identity.string(1, "ECID")
            identity.string(2, "4711")
        }
        for (key, value) in [("personalize.content", "n"), ("marketing.email", "y"), ("personalize.content", "dn")] {
            writer.message(3) { entry in
                entry.string(1, key)
                entry.string(2, value)
            }
        }
        let request = try EventsCodec.decodeUpdateConsentRequest(writer.bytes)
        #expect(request.eventID == "c1")
        #expect(request.identity == Identity(namespace: "ECID", id: "4711"))
        #expect(request.consentMap == ["personalize.content": "dn", "marketing.email": "y"])
        #expect(!request.dryRun)
        #expect(request.validationError() == nil)
    }

    @Test(
        arguments: [
            (
                UpdateConsentRequest(
                    eventID: "", identity: Identity(namespace: "E", id: "1"), consents: [("marketing.any", "n")]),
                "event_id is required"
            ),
            (
                UpdateConsentRequest(eventID: "c", identity: nil, consents: [("marketing.any", "n")]),
                "identity is required"
            ),
            (
                UpdateConsentRequest(eventID: "c", identity: Identity(namespace: "E", id: "1"), consents: []),
                "consents: at least one"
            ),
            (
                UpdateConsentRequest(
                    eventID: "c", identity: Identity(namespace: "E", id: "1"), consents: [("marketing.fax", "n")]),
                "consents[\"marketing.fax\"] is not a consent"
            ),
            (
                UpdateConsentRequest(
                    eventID: "c", identity: Identity(namespace: "E", id: "1"), consents: [("marketing.sms", "no")]),
                "consents[\"marketing.sms\"] value \"no\" is not an XDM choice value"
            ),
            (
                UpdateConsentRequest(
                    eventID: "c", identity: Identity(namespace: "E", id: "1"), consents: [("marketing.sms", "")]),
                "consents[\"marketing.sms\"] value \"\" is not"
            ),
            (
                UpdateConsentRequest(
                    eventID: "c", identity: Identity(namespace: "E", id: "1"), consents: [("marketing.sms", "Y")]),
                "consents[\"marketing.sms\"] value \"Y\" is not"
            ),
        ])
    func updateConsentNamesTheBadField(request: UpdateConsentRequest, message: String) {
        let error = request.validationError()
        #expect(error?.hasPrefix(message) == true, "\(error ?? "nil")")
    }

    @Test func hostileBytesAreErrorsNotCrashes() {
        var writer = ProtoWriter()
        Self.event(&writer)
        let good = writer.bytes
        for cut in 0..<good.count {
            _ = try? EventsCodec.decodeRecordEventsRequest(Array(good[..<cut]))
        }
        var badUTF8 = ProtoWriter()
        badUTF8.message(1) { event in event.bytesField(1, [0xFF, 0xFE]) }
        #expect(throws: WireDecodeError.self) { try EventsCodec.decodeRecordEventsRequest(badUTF8.bytes) }
        var nul = ProtoWriter()
        nul.message(3) { entry in
            entry.string(1, "marketing.any")
            entry.bytesField(2, [0x6E, 0x00])
        }
        #expect(throws: WireDecodeError.self) { try EventsCodec.decodeUpdateConsentRequest(nul.bytes) }
        #expect(throws: WireDecodeError.self) { try EventsCodec.decodeUpdateConsentRequest([0x0A, 0x05, 0x41]) }
    }

    @Test func responsesEncode() {
        // recorded = 3 (field 1), duplicates = 1 (field 2), position "42" (field 3).
        #expect(
            EventsCodec.encodeRecordEventsResponse(recorded: 3, duplicates: 1, position: "42")
                == [0x08, 0x03, 0x10, 0x01, 0x1A, 0x02, 0x34, 0x32])
        #expect(
            EventsCodec.encodeUpdateConsentResponse(position: "7", duplicate: true) == [0x0A, 0x01, 0x37, 0x10, 0x01])
        #expect(EventsCodec.encodeUpdateConsentResponse(position: "", duplicate: false) == [])
    }
}
