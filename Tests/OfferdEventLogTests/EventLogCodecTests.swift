import Testing

@testable import OfferdEventLog

@Suite("Event log batch encoding")
struct EventLogCodecTests {
    @Test("a batch decodes to what was encoded", arguments: [1, 2, 5, 40])
    func roundTrip(count: Int) throws {
        let batch = sampleBatch(count)
        #expect(try EventLogCodec.decode(EventLogCodec.encode(batch)) == batch)
        #expect(try EventLogCodec.entryCount(EventLogCodec.encode(batch)[...]) == count)
    }

    @Test("extreme values round-trip: times at both ends, the largest batch number, UTF-8, empty strings")
    func extremes() throws {
        let batch = [
            EventLogEntry(
                key: EventLogProfileKey(namespace: "", id: ""), type: .decision, timeMs: Int64.min,
                serverID: "", batchNumber: 0),
            EventLogEntry(
                key: EventLogProfileKey(namespace: "Émail", id: "zoë@example.com"), type: .interact,
                timeMs: Int64.max, eventID: String(repeating: "é", count: 300), offerIDs: ["", "ω", "offer"],
                propositionID: "p", serverID: "ß", batchNumber: UInt64.max),
            EventLogEntry(
                key: EventLogProfileKey(namespace: "ecid", id: "1"), type: .consent, timeMs: -1,
                eventID: "c", consents: ["marketing.any": "dy", "marketing.sms": "p", "": ""], serverID: "ß",
                batchNumber: UInt64.max),
        ]
        #expect(try EventLogCodec.decode(EventLogCodec.encode(batch)) == batch)
    }

    @Test("the namespace is ASCII-lower-cased, other letters and the id kept as given")
    func profileKeyFolding() {
        let key = EventLogProfileKey(namespace: "ECID-Émail", id: "AbC")
        #expect(key.namespace == "ecid-Émail")
        #expect(key.id == "AbC")
    }

    @Test("equal batches encode to equal bytes (consents in key order)")
    func deterministic() {
        var first = sampleEntry(4)
        first.consents = ["marketing.sms": "n", "marketing.any": "y", "personalize.content": "n"]
        var second = first
        second.consents = [:]
        for (key, value) in first.consents.sorted(by: { $0.key > $1.key }) { second.consents[key] = value }
        #expect(EventLogCodec.encode([first]) == EventLogCodec.encode([second]))
    }

    @Test("a batch from one writer names it once")
    func writerWrittenOnce() throws {
        let sameWriter = sampleBatch(10)
        var mixed = sampleBatch(10)
        for index in mixed.indices where index % 2 == 1 { mixed[index].serverID = "server-b" }
        let serverBytes = "server-a".utf8.count + 2
        #expect(EventLogCodec.encode(mixed).count - EventLogCodec.encode(sameWriter).count >= 9 * serverBytes - 9)
        #expect(try EventLogCodec.decode(EventLogCodec.encode(mixed)) == mixed)
    }

    @Test("every truncation of a valid batch is an error, never a trap")
    func truncationAtEveryByte() {
        let bytes = EventLogCodec.encode(sampleBatch(6))
        for length in 0..<bytes.count {
            #expect(throws: EventLogDecodingError.self) { try EventLogCodec.decode(bytes[0..<length]) }
        }
    }

    @Test("bytes after the last entry are an error")
    func trailingBytes() {
        let bytes = EventLogCodec.encode(sampleBatch(2)) + [0]
        #expect(throws: EventLogDecodingError.self) { try EventLogCodec.decode(bytes) }
    }

    @Test("every single-byte change of a valid batch decodes or throws, never traps")
    func byteFlips() {
        let bytes = EventLogCodec.encode(sampleBatch(3))
        var generator = SeededGenerator(seed: 7)
        for index in bytes.indices {
            for _ in 0..<8 {
                var changed = bytes
                changed[index] = UInt8.random(in: 0...255, using: &generator)
                _ = try? EventLogCodec.decode(changed)
            }
        }
    }

    @Test("random bytes decode or throw, never trap", arguments: [1, 2, 3, 4])
    func randomBytes(seed: UInt64) {
        var generator = SeededGenerator(seed: seed)
        for _ in 0..<5_000 {
            let length = Int.random(in: 0..<96, using: &generator)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            // Half the inputs start like a batch, so the fuzzing gets past the version byte.
            if !bytes.isEmpty && Bool.random(using: &generator) { bytes[0] = EventLogCodec.version }
            _ = try? EventLogCodec.decode(bytes)
        }
    }

    @Test("strings are accepted exactly when they are valid UTF-8 (the decoder's check against the standard library's)")
    func utf8Differential() throws {
        var generator = SeededGenerator(seed: 11)
        let interesting: [UInt8] = [
            0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF,
        ]
        var accepted = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...6, using: &generator)
            let bytes = (0..<length).map { _ in
                Bool.random(using: &generator)
                    ? interesting.randomElement(using: &generator)! : UInt8.random(in: 0x80...0xBF, using: &generator)
            }
            // One consent update whose writer (server id) is `bytes`.
            let batch: [UInt8] = [1, 1, 1, UInt8(length)] + bytes + [0, 5, 0, 0, 0, 0, 0, 0, 0]
            let valid = String(validating: bytes, as: UTF8.self)
            let decoded = try? EventLogCodec.decode(batch)
            #expect((decoded != nil) == (valid != nil), "\(bytes)")
            if let decoded { #expect(Array(decoded[0].serverID.utf8) == bytes) }
            if valid != nil { accepted += 1 }
        }
        #expect(accepted > 1000 && accepted < 19_000) // both sides of the check were exercised
    }

    @Test("a huge declared count or length is refused before anything is allocated for it")
    func hugeCounts() {
        // Version, then a count of 2^63 entries in 10 bytes.
        let hugeCount: [UInt8] = [1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]
        #expect(throws: EventLogDecodingError.self) { try EventLogCodec.decode(hugeCount) }
        // One entry whose server id claims 2^40 bytes.
        let hugeString: [UInt8] = [1, 1, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20] + [UInt8](repeating: 0, count: 16)
        let error = #expect(throws: EventLogDecodingError.self) { try EventLogCodec.decode(hugeString) }
        #expect(error?.reason.hasPrefix("string of") == true)
    }

    /// A batch whose entries repeat a few offer lists, with lists that differ from each other in one byte, in
    /// their length, or as a prefix: the decoder shares an earlier entry's array for a list with the same bytes.
    static func repeatedOfferLists() -> [EventLogEntry] {
        let lists: [[String]] = [
            ["o1", "o2"], ["o1", "o3"], ["o1"], ["o1", "o2", "o3"], ["o2", "o1"], ["o12"], [], ["", "o1"],
            ["ω", "o1"], [String(repeating: "long-offer-id-", count: 4)],
        ]
        return (0..<60).map { number in
            var entry = sampleEntry(number)
            entry.type = .decision
            entry.eventID = ""
            entry.consents = [:]
            entry.offerIDs = lists[(number * 7) % lists.count]
            return entry
        }
    }

    @Test("entries naming the same offers as earlier entries decode to their own lists")
    func repeatedOfferListsRoundTrip() throws {
        let batch = Self.repeatedOfferLists()
        #expect(try EventLogCodec.decode(EventLogCodec.encode(batch)) == batch)
    }

    @Test("offer lists that fall into the same slot of the decoder's recent lists decode apart")
    func collidingOfferLists() throws {
        // The decoder's slot of a one-offer list: FNV-1a of its bytes (count 1, length, id), 64 slots.
        func slot(_ offer: String) -> UInt32 {
            var hash: UInt32 = 2_166_136_261
            for byte in [1, UInt8(offer.utf8.count)] + Array(offer.utf8) { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
            return hash & 63
        }
        // Of one length, so that only the bytes tell the two lists apart.
        let first = "x1000"
        let second = (1001...9999).lazy.map { "x\($0)" }.first { slot($0) == slot(first) }!
        let batch = (0..<12).map { number in
            var entry = sampleEntry(number)
            entry.offerIDs = number % 3 == 0 ? [second] : [first]
            return entry
        }
        #expect(try EventLogCodec.decode(EventLogCodec.encode(batch)) == batch)
    }

    @Test("every truncation of a batch with repeated offer lists is an error, never a trap")
    func truncationOfRepeatedOfferLists() {
        let bytes = EventLogCodec.encode(Self.repeatedOfferLists())
        for length in 0..<bytes.count {
            let error = #expect(throws: EventLogDecodingError.self) { try EventLogCodec.decode(bytes[0..<length]) }
            #expect(error.map { $0.offset <= length } == true)
        }
    }

    @Test("every single-byte change of a batch with repeated offer lists decodes as without sharing lists, or throws")
    func byteFlipsOfRepeatedOfferLists() {
        let bytes = EventLogCodec.encode(Self.repeatedOfferLists())
        var generator = SeededGenerator(seed: 19)
        var decoded = 0
        for index in bytes.indices {
            for _ in 0..<4 {
                var changed = bytes
                changed[index] = UInt8.random(in: 0...255, using: &generator)
                let shared = try? EventLogCodec.decode(changed[...], sharingOfferLists: true)
                let anew = try? EventLogCodec.decode(changed[...], sharingOfferLists: false)
                let same = shared == anew
                #expect(same, "byte \(index) changed to \(changed[index])")
                if shared != nil { decoded += 1 }
            }
        }
        #expect(decoded > 100) // changes inside offer ids still decode: the shared path was exercised
    }

    @Test(
        "malformed fields are named",
        arguments: [
            ([2, 0] as [UInt8], "unsupported batch version 2"),
            ([1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0], "the first entry names no writer"),
            ([1, 1, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0], "unknown entry flags 2"),
            ([1, 1, 1, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0], "unknown event type 9"),
            ([1, 1, 1, 0, 0, 1, 1, 0xFF, 0, 0, 0, 0, 0, 0], "string is not UTF-8"),
            (
                [1, 1, 1, 0, 0, 1, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
                "varint overflows 64 bits"
            ),
            ([1, 1, 1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 2, 1, 0x61, 0, 1, 0x61, 0], "consent key a repeated"),
        ])
    func namedErrors(bytes: [UInt8], reason: String) {
        let error = #expect(throws: EventLogDecodingError.self) { try EventLogCodec.decode(bytes) }
        #expect(error?.reason == reason)
    }
}

@Suite("CRC32C")
struct CRC32CTests {
    /// The check value and RFC 3720's iSCSI examples.
    static let knownVectors: [([UInt8], UInt32)] = [
        (Array("123456789".utf8), 0xE306_9283),
        ([UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ((0..<32).map { UInt8($0) }, 0x46DD_794E),
        ((0..<32).reversed().map { UInt8($0) }, 0x113F_DB5C),
        ([], 0),
    ]

    @Test("known vectors (the check value and RFC 3720's iSCSI examples)", arguments: knownVectors)
    func vectors(bytes: [UInt8], expected: UInt32) {
        #expect(CRC32C.checksum(bytes) == expected)
    }

    @Test("slice-by-8 equals the bytewise definition for every length and any split into updates")
    func differential() {
        func reference(_ bytes: [UInt8]) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in bytes {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            }
            return ~crc
        }
        var generator = SeededGenerator(seed: 3)
        for length in 0..<200 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(CRC32C.checksum(bytes) == reference(bytes))
            let split = Int.random(in: 0...length, using: &generator)
            var crc = CRC32C()
            crc.update(bytes[0..<split])
            crc.update(bytes[split...])
            #expect(crc.value == reference(bytes))
        }
    }
}
