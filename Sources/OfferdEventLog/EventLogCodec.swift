/// Why bytes are not an encoded batch. The decoder throws these and never traps, whatever the bytes.
public struct EventLogDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, for people.
    public var reason: String
    /// The offset in the batch's bytes where decoding stopped.
    public var offset: Int

    public var description: String { "\(reason) at byte \(offset)" }
}

/// The binary encoding of a batch of events: what one file record or one stream entry holds.
///
/// Layout, version 1 (all integers unsigned LEB128 varints unless said otherwise, at most 10 bytes, no overlong
/// encodings beyond that; strings are a varint byte length and that many bytes of UTF-8):
///
/// ```
/// batch   := version:u8(=1) count:varint entry{count}
/// entry   := flags:u8 [serverID:string batchNumber:varint]   (present when flags bit 0 is set)
///            type:u8 namespace:string id:string timeMs:zigzag-varint eventID:string
///            offerCount:varint offerID:string{offerCount}
///            propositionID:string
///            consentCount:varint (consentKey:string value:string){consentCount}   (keys ascending, unique)
/// ```
///
/// The writer pair (server id, batch number) is written only when it differs from the previous entry's, so a
/// batch from one writer pays for it once. The first entry must carry it. Unknown flag bits, an unknown type,
/// an unknown version, invalid UTF-8, a length past the end, a repeated consent key and trailing bytes are
/// errors. Every count and length is checked against the bytes that remain before anything is allocated for
/// it, so hostile bytes cost at most their own size in memory.
public enum EventLogCodec {
    /// The version this build writes and the only one it reads.
    public static let version: UInt8 = 1

    private static let flagWriter: UInt8 = 1

    /// Encodes a batch. Consents are written in ascending key order, so equal batches encode to equal bytes.
    public static func encode(_ entries: [EventLogEntry]) -> [UInt8] {
        var writer = ByteWriter()
        writer.bytes.reserveCapacity(16 + entries.count * 64)
        writer.byte(version)
        writer.varint(UInt64(entries.count))
        var previousWriter: (String, UInt64)?
        for entry in entries {
            let sameWriter = previousWriter.map { $0.0 == entry.serverID && $0.1 == entry.batchNumber } ?? false
            writer.byte(sameWriter ? 0 : flagWriter)
            if !sameWriter {
                writer.string(entry.serverID)
                writer.varint(entry.batchNumber)
                previousWriter = (entry.serverID, entry.batchNumber)
            }
            writer.byte(entry.type.rawValue)
            writer.string(entry.key.namespace)
            writer.string(entry.key.id)
            writer.varint(UInt64(bitPattern: (entry.timeMs << 1) ^ (entry.timeMs >> 63)))
            writer.string(entry.eventID)
            writer.varint(UInt64(entry.offerIDs.count))
            for offer in entry.offerIDs { writer.string(offer) }
            writer.string(entry.propositionID)
            writer.varint(UInt64(entry.consents.count))
            for (key, value) in entry.consents.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
                writer.string(key)
                writer.string(value)
            }
        }
        return writer.bytes
    }

    /// Decodes a whole batch.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws(EventLogDecodingError) -> [EventLogEntry] {
        try decode(bytes, sharingOfferLists: true)
    }

    /// Decodes a whole batch; without `sharingOfferLists`, every entry's offer list is decoded anew (tests compare
    /// the two).
    static func decode(_ bytes: ArraySlice<UInt8>, sharingOfferLists: Bool) throws(EventLogDecodingError)
        -> [EventLogEntry]
    {
        var reader = ByteReader(bytes)
        let count = try header(&reader)
        var entries: [EventLogEntry] = []
        // Every entry takes at least 9 bytes: the count was checked against the remaining bytes, so this
        // reservation is bounded by the input's size.
        entries.reserveCapacity(count)
        var previousWriter: (String, UInt64)?
        // A batch of one entry (the live path's usual RecordEvents call) has nothing to share: no slots for it.
        var offerLists = RecentOfferLists(sharing: sharingOfferLists && count > 1)
        for _ in 0..<count {
            let flags = try reader.byte()
            guard flags & ~flagWriter == 0 else { throw reader.error("unknown entry flags \(flags)") }
            if flags & flagWriter != 0 {
                previousWriter = (try reader.string(), try reader.varint())
            }
            guard let (serverID, batchNumber) = previousWriter else {
                throw reader.error("the first entry names no writer")
            }
            let typeByte = try reader.byte()
            guard let type = EventLogEventType(rawValue: typeByte) else {
                throw reader.error("unknown event type \(typeByte)")
            }
            let namespace = try reader.string()
            let id = try reader.string()
            let zigzag = try reader.varint()
            let timeMs = Int64(bitPattern: zigzag >> 1) ^ -Int64(bitPattern: zigzag & 1)
            let eventID = try reader.string()
            let offerIDs = try offerLists.decode(&reader)
            let propositionID = try reader.string()
            let consentCount = try reader.count(minimumBytesEach: 2)
            var consents: [String: String] = [:]
            // Reserving even 0 would allocate a table; most events have no consents.
            if consentCount > 0 { consents.reserveCapacity(consentCount) }
            for _ in 0..<consentCount {
                let key = try reader.string()
                let value = try reader.string()
                guard consents.updateValue(value, forKey: key) == nil else {
                    throw reader.error("consent key \(key) repeated")
                }
            }
            entries.append(
                EventLogEntry(
                    key: EventLogProfileKey(namespace: namespace, id: id), type: type, timeMs: timeMs,
                    eventID: eventID, offerIDs: offerIDs, propositionID: propositionID, consents: consents,
                    serverID: serverID, batchNumber: batchNumber))
        }
        guard reader.isAtEnd else { throw reader.error("\(reader.remaining) bytes after the last entry") }
        return entries
    }

    /// Decodes a whole batch.
    public static func decode(_ bytes: [UInt8]) throws(EventLogDecodingError) -> [EventLogEntry] {
        try decode(bytes[...])
    }

    /// The number of entries a batch says it holds, read from its header alone (the file log's index needs
    /// it for every record at open and decodes nothing else).
    public static func entryCount(_ bytes: ArraySlice<UInt8>) throws(EventLogDecodingError) -> Int {
        var reader = ByteReader(bytes)
        return try header(&reader)
    }

    private static func header(_ reader: inout ByteReader) throws(EventLogDecodingError) -> Int {
        let found = try reader.byte()
        guard found == version else { throw reader.error("unsupported batch version \(found)") }
        // The smallest entry: flags, type, 2 empty key strings, a time, an empty event id, no offers, an empty
        // proposition id, no consents: 9 bytes.
        return try reader.count(minimumBytesEach: 9)
    }
}

/// The offer lists of a batch's entries decoded so far, so that an entry naming the same offers as an earlier one
/// (byte for byte) shares its array: no array allocated and no string decoded for it.
///
/// Why: a batch's decision events name the few offers of one catalog, mostly in repeated combinations, and the
/// array of each entry's offer ids (an allocation, freed again after the follower applied it) with its strings
/// was about 10 % of the follower's time (benchmarks/README.md). Direct-mapped by an FNV-1a hash of the list's
/// bytes; a hit is compared byte for byte, so a collision costs a decode, never a wrong list, and each list's
/// bytes are hashed and compared once: hostile bytes cost at most their own size.
private struct RecentOfferLists {
    static let slotCount = 64

    /// Per slot the bytes of the list it holds (offsets into the batch) and its offer ids; allocated on the first
    /// list that has offers.
    private var ranges: [Range<Int>] = []
    private var lists: [[String]] = []
    private let sharing: Bool

    init(sharing: Bool) { self.sharing = sharing }

    /// Reads `offerCount offerID{offerCount}` at the reader's index.
    mutating func decode(_ reader: inout ByteReader) throws(EventLogDecodingError) -> [String] {
        let start = reader.index
        guard sharing, let end = reader.endOfStringList(), end - start > 1 else { return try Self.decodeAnew(&reader) }
        var hash: UInt32 = 2_166_136_261
        for index in start..<end { hash = (hash ^ UInt32(reader.bytes[index])) &* 16_777_619 }
        let slot = Int(truncatingIfNeeded: hash) & (Self.slotCount - 1)
        if ranges.isEmpty {
            ranges = Array(repeating: 0..<0, count: Self.slotCount)
            lists = Array(repeating: [], count: Self.slotCount)
        } else if ranges[slot].count == end - start,
            zip(ranges[slot], start..<end).allSatisfy({ reader.bytes[$0] == reader.bytes[$1] })
        {
            reader.index = end
            return lists[slot]
        }
        let offerIDs = try Self.decodeAnew(&reader)
        ranges[slot] = start..<end
        lists[slot] = offerIDs
        return offerIDs
    }

    private static func decodeAnew(_ reader: inout ByteReader) throws(EventLogDecodingError) -> [String] {
        let offerCount = try reader.count(minimumBytesEach: 1)
        var offerIDs: [String] = []
        offerIDs.reserveCapacity(offerCount)
        for _ in 0..<offerCount { offerIDs.append(try reader.string()) }
        return offerIDs
    }
}

/// Appends the encoding's primitives to a byte array.
private struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func byte(_ value: UInt8) { bytes.append(value) }

    mutating func varint(_ value: UInt64) {
        var rest = value
        while rest >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        bytes.append(UInt8(rest))
    }

    mutating func string(_ text: String) {
        varint(UInt64(text.utf8.count))
        bytes.append(contentsOf: text.utf8)
    }
}

/// Reads the encoding's primitives with every read bounds-checked; failures are thrown, never trapped.
private struct ByteReader {
    let bytes: ArraySlice<UInt8>
    var index: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        index = bytes.startIndex
    }

    var remaining: Int { bytes.endIndex - index }
    var isAtEnd: Bool { index == bytes.endIndex }

    func error(_ reason: String) -> EventLogDecodingError {
        EventLogDecodingError(reason: reason, offset: index - bytes.startIndex)
    }

    mutating func byte() throws(EventLogDecodingError) -> UInt8 {
        guard index < bytes.endIndex else { throw error("unexpected end of batch") }
        defer { index += 1 }
        return bytes[index]
    }

    mutating func varint() throws(EventLogDecodingError) -> UInt64 {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 70, by: 7) {
            let next = try byte()
            let payload = UInt64(next & 0x7F)
            // The tenth byte may hold only the top bit of a 64-bit value.
            guard shift < 63 || payload <= 1 else { throw error("varint overflows 64 bits") }
            value |= payload << UInt64(shift)
            if next & 0x80 == 0 { return value }
        }
        throw error("varint longer than 10 bytes")
    }

    /// A count of items that each take at least `minimumBytesEach` bytes: more than the remaining bytes can
    /// hold is an error, so the caller may reserve that many.
    mutating func count(minimumBytesEach: Int) throws(EventLogDecodingError) -> Int {
        let value = try varint()
        guard value <= UInt64(remaining / minimumBytesEach) else {
            throw error("count \(value) exceeds what \(remaining) remaining bytes can hold")
        }
        return Int(value)
    }

    /// The index just past `count string{count}` at the reader's index, checking lengths only (not the strings'
    /// UTF-8); nil when they run past the end. Moves nothing.
    mutating func endOfStringList() -> Int? {
        // Back to where it started, whatever it read (a copy of the reader would retain the bytes).
        let start = index
        defer { index = start }
        do throws(EventLogDecodingError) {
            let count = try self.count(minimumBytesEach: 1)
            for _ in 0..<count {
                let length = try varint()
                guard length <= UInt64(remaining) else { return nil }
                index += Int(length)
            }
            return index
        } catch {
            return nil
        }
    }

    mutating func string() throws(EventLogDecodingError) -> String {
        let length = try varint()
        guard length <= UInt64(remaining) else {
            throw error("string of \(length) bytes with \(remaining) remaining")
        }
        let count = Int(length)
        if count == 0 { return "" }
        let start = index - bytes.startIndex
        // Read in place: slicing the array slice would retain and release its storage for every string.
        // `String(decoding:)` is specialised for contiguous bytes, where `String(validating:)` runs generic code
        // that looks up type metadata per call (a third of the decoder's time). Decoding repairs invalid UTF-8,
        // so a string whose bytes differ from the input's was not valid. ASCII, the common case, is valid as it is.
        let text = bytes.withUnsafeBufferPointer { buffer -> String? in
            let part = UnsafeBufferPointer(rebasing: buffer[start..<(start + count)])
            let text = String(decoding: part, as: UTF8.self)
            return part.allSatisfy({ $0 < 0x80 }) || text.utf8.elementsEqual(part) ? text : nil
        }
        guard let text else { throw error("string is not UTF-8") }
        index += count
        return text
    }
}
