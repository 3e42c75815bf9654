import OfferdCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes `offerd.v1.DecideResponse` straight from a ``DecisionResult`` into the caller's buffer: the bytes
/// protobuf-c's `decide_response__pack` gives for the graph ``DecideCodec`` used to build, without building it.
///
/// protobuf-c's packer is generic: it walks field descriptors and measures every sub-message twice (once for
/// the total size, once for its own length prefix), which cost about as much as the decision itself for a
/// small response. Here each sub-message is measured once, in the order the writer meets it, and the sizes are
/// kept in ``SubmessageSizes`` for the writing pass.
///
/// protobuf-c's rules kept, so the bytes stay identical (`EncodeResponseTests` compares them with protobuf-c's
/// on random results): fields in field-number order; a singular string, bool, enum or int32 that is empty or 0
/// is left out, a repeated string is sent even when empty; a string is sent up to its first U+0000 (protobuf-c
/// measures with `strlen`); a negative int32 is a 10-byte varint; a present `optional double` is always sent.
struct DecideResponseWriter {
    let result: DecisionResult
    /// `nil`: a fresh UUID v4 from the writing pass's generator, drawn before the proposition ids.
    let requestID: String?
    let snapshotVersion: String
    let includeContent: Bool
    let includeMetadata: Bool

    /// How many sub-messages the response holds, which is how many sizes ``measure(into:)`` records.
    var submessageCount: Int {
        var count = result.propositions.count
        for proposition in result.propositions {
            count += proposition.items.count + proposition.trace.count
            if includeMetadata {
                for item in proposition.items { count += item.characteristics.count }
            }
        }
        return count
    }

    /// The response's packed size; records every sub-message's size in `sizes`, in writing order.
    func measure(into sizes: inout SubmessageSizes) -> Int {
        // A UUID is 36 bytes: tag, one-byte length, the characters.
        var size = requestID.map { stringFieldSize($0) } ?? 2 + 36
        // Through the buffer: `for proposition in`, and the array's subscript, copy a proposition out of the
        // array (a retain and a release per string and array in it).
        result.propositions.withUnsafeBufferPointer { propositions in
            for index in propositions.indices {
                size += messageFieldSize(measure(propositions[index], into: &sizes))
            }
        }
        size += result.profileFound ? 2 : 0
        size += stringFieldSize(result.catalogVersion)
        size += stringFieldSize(snapshotVersion)
        return size
    }

    /// Writes the response measured by ``measure(into:)`` with the same `sizes`; proposition ids come from
    /// `generator`, one per proposition in order, as the protobuf-c encoder drew them.
    func write<Generator: RandomNumberGenerator>(
        into writer: inout WireWriter, sizes: inout SubmessageSizes, generator: inout Generator
    ) {
        if let requestID {
            writer.writeStringField(1, requestID)
        } else {
            writer.writeTag(1, wireType: 2)
            writer.writeVarint(36)
            writer.writeUUID(using: &generator)
        }
        result.propositions.withUnsafeBufferPointer { propositions in
            for index in propositions.indices {
                writer.writeMessageHeader(2, size: sizes.next())
                write(propositions[index], into: &writer, sizes: &sizes, generator: &generator)
            }
        }
        if result.profileFound { writer.writeVarintField(3, 1) }
        writer.writeStringField(4, result.catalogVersion)
        writer.writeStringField(5, snapshotVersion)
    }

    // MARK: - Proposition

    private static let propositionIDLength = 36

    @inline(__always)
    private func measure(_ proposition: Proposition, into sizes: inout SubmessageSizes) -> Int {
        let slot = sizes.reserve()
        var size = 2 + Self.propositionIDLength
        size += stringFieldSize(proposition.decisionID)
        size += stringFieldSize(proposition.placementID)
        size += enumFieldSize(proposition.outcome.rawValue)
        size += enumFieldSize(proposition.reason.rawValue)
        proposition.items.withUnsafeBufferPointer { items in
            for index in items.indices {
                size += messageFieldSize(measure(items[index], into: &sizes))
            }
        }
        for index in proposition.trace.indices {
            size += messageFieldSize(measure(proposition.trace[index], into: &sizes))
        }
        sizes[slot] = size
        return size
    }

    private func write<Generator: RandomNumberGenerator>(
        _ proposition: Proposition, into writer: inout WireWriter, sizes: inout SubmessageSizes,
        generator: inout Generator
    ) {
        writer.writeTag(1, wireType: 2)
        writer.writeVarint(UInt64(Self.propositionIDLength))
        writer.writeUUID(using: &generator)
        writer.writeStringField(2, proposition.decisionID)
        writer.writeStringField(3, proposition.placementID)
        writer.writeInt32Field(4, Int32(truncatingIfNeeded: proposition.outcome.rawValue))
        writer.writeInt32Field(5, Int32(truncatingIfNeeded: proposition.reason.rawValue))
        proposition.items.withUnsafeBufferPointer { items in
            for index in items.indices {
                writer.writeMessageHeader(6, size: sizes.next())
                write(items[index], into: &writer, sizes: &sizes)
            }
        }
        for index in proposition.trace.indices {
            writer.writeMessageHeader(7, size: sizes.next())
            write(proposition.trace[index], into: &writer)
        }
    }

    // MARK: - Item

    @inline(__always)
    private func measure(_ item: DecidedItem, into sizes: inout SubmessageSizes) -> Int {
        let slot = sizes.reserve()
        var size = stringFieldSize(item.id)
        if includeContent {
            let representation = item.representation
            size += stringFieldSize(representation.format ?? "")
            size += stringFieldSize(representation.content ?? "")
            size += stringFieldSize(representation.deliveryURL ?? "")
            size += stringFieldSize(representation.linkURL ?? "")
            for language in representation.language {
                size += lengthDelimitedFieldSize(wireUTF8Count(language))
            }
        }
        if includeMetadata {
            size += stringFieldSize(item.name ?? "")
            size += int32FieldSize(Int32(clamping: item.priority))
            for characteristic in item.characteristics {
                let entrySize = stringFieldSize(characteristic.key) + stringFieldSize(characteristic.value)
                sizes[sizes.reserve()] = entrySize
                size += messageFieldSize(entrySize)
            }
        }
        if item.score != nil { size += 9 }
        sizes[slot] = size
        return size
    }

    @inline(__always)
    private func write(_ item: DecidedItem, into writer: inout WireWriter, sizes: inout SubmessageSizes) {
        writer.writeStringField(1, item.id)
        if includeContent {
            let representation = item.representation
            writer.writeStringField(2, representation.format ?? "")
            writer.writeStringField(3, representation.content ?? "")
            writer.writeStringField(4, representation.deliveryURL ?? "")
            writer.writeStringField(5, representation.linkURL ?? "")
            for language in representation.language {
                writer.writeStringField(6, language, evenWhenEmpty: true)
            }
        }
        if includeMetadata {
            writer.writeStringField(7, item.name ?? "")
            writer.writeInt32Field(8, Int32(clamping: item.priority))
            for characteristic in item.characteristics {
                writer.writeMessageHeader(9, size: sizes.next())
                writer.writeStringField(1, characteristic.key)
                writer.writeStringField(2, characteristic.value)
            }
        }
        if let score = item.score { writer.writeDoubleField(10, score) }
    }

    // MARK: - Trace entry

    private func measure(_ entry: TraceEntry, into sizes: inout SubmessageSizes) -> Int {
        let slot = sizes.reserve()
        var size = stringFieldSize(entry.offerID)
        size += stringFieldSize(entry.criterion)
        size += stringFieldSize(entry.verdict.rawValue)
        size += stringFieldSize(entry.collectionID)
        if entry.score != nil { size += 9 }
        size += stringFieldSize(entry.detail)
        sizes[slot] = size
        return size
    }

    private func write(_ entry: TraceEntry, into writer: inout WireWriter) {
        writer.writeStringField(1, entry.offerID)
        writer.writeStringField(2, entry.criterion)
        writer.writeStringField(3, entry.verdict.rawValue)
        writer.writeStringField(4, entry.collectionID)
        if let score = entry.score { writer.writeDoubleField(5, score) }
        writer.writeStringField(6, entry.detail)
    }

    // MARK: - Field sizes (every field number here is below 16: its tag is one byte)

    private func stringFieldSize(_ text: String) -> Int {
        let count = wireUTF8Count(text)
        return count == 0 ? 0 : lengthDelimitedFieldSize(count)
    }

    private func lengthDelimitedFieldSize(_ count: Int) -> Int {
        1 + WireWriter.varintSize(UInt64(count)) + count
    }

    private func messageFieldSize(_ size: Int) -> Int {
        lengthDelimitedFieldSize(size)
    }

    private func enumFieldSize(_ rawValue: Int) -> Int {
        int32FieldSize(Int32(truncatingIfNeeded: rawValue))
    }

    private func int32FieldSize(_ value: Int32) -> Int {
        value == 0 ? 0 : 1 + WireWriter.varintSize(UInt64(bitPattern: Int64(value)))
    }
}

/// The sizes of a message's sub-messages, recorded by the measuring pass in the order the writing pass needs
/// them (a message before its own sub-messages), so that each is measured once. Lives in a ``ProtoArena``.
struct SubmessageSizes {
    private let storage: UnsafeMutablePointer<Int>
    private let capacity: Int
    private var recorded = 0
    private var read = 0

    init(capacity: Int, in arena: ProtoArena) {
        storage = arena.allocate(Int.self, count: capacity)
        self.capacity = capacity
    }

    /// A slot for a size measured later, after its sub-messages'.
    mutating func reserve() -> Int {
        precondition(recorded < capacity, "more sub-messages than counted")
        recorded += 1
        return recorded - 1
    }

    subscript(slot: Int) -> Int {
        get { storage[slot] }
        set {
            precondition(slot < recorded, "a size written to a slot not reserved")
            storage[slot] = newValue
        }
    }

    /// The next size in writing order.
    mutating func next() -> Int {
        precondition(read < recorded, "more sub-messages written than measured")
        read += 1
        return storage[read - 1]
    }
}

/// The bytes protobuf-c sends for a string: its UTF-8 up to the first U+0000, if any.
func withWireUTF8<Result>(_ text: String, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
    // Native strings lend their UTF-8 in place; only a bridged one is made native first.
    if let result = text.utf8.withContiguousStorageIfAvailable({ body(cutAtNUL(UnsafeRawBufferPointer($0))) }) {
        return result
    }
    var native = text
    return native.withUTF8 { body(cutAtNUL(UnsafeRawBufferPointer($0))) }
}

private func wireUTF8Count(_ text: String) -> Int {
    withWireUTF8(text) { $0.count }
}

private func cutAtNUL(_ bytes: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
    guard let base = bytes.baseAddress, let nul = memchr(base, 0, bytes.count) else { return bytes }
    return UnsafeRawBufferPointer(start: base, count: base.distance(to: UnsafeRawPointer(nul)))
}

/// A cursor writing protobuf wire bytes into memory of a size measured beforehand; every write checks that it
/// fits, so a measuring mistake traps instead of writing past the end.
struct WireWriter {
    private(set) var position: UnsafeMutablePointer<UInt8>
    let end: UnsafeMutablePointer<UInt8>

    init(start: UnsafeMutablePointer<UInt8>, count: Int) {
        position = start
        end = start + count
    }

    static func varintSize(_ value: UInt64) -> Int {
        // Bits needed, 7 to a byte; 0 takes one byte.
        let bits = 64 - (value | 1).leadingZeroBitCount
        return (bits + 6) / 7
    }

    @inline(__always)
    mutating func writeVarint(_ value: UInt64) {
        // Tags, and most lengths of a response, are one byte.
        if value < 0x80 {
            precondition(position < end, "response larger than measured")
            position.pointee = UInt8(truncatingIfNeeded: value)
            position += 1
            return
        }
        writeLongVarint(value)
    }

    @inline(never)
    private mutating func writeLongVarint(_ value: UInt64) {
        precondition(end - position >= Self.varintSize(value), "response larger than measured")
        var rest = value
        while rest >= 0x80 {
            position.pointee = UInt8(truncatingIfNeeded: rest) | 0x80
            position += 1
            rest >>= 7
        }
        position.pointee = UInt8(truncatingIfNeeded: rest)
        position += 1
    }

    mutating func writeTag(_ field: UInt64, wireType: UInt64) {
        writeVarint(field << 3 | wireType)
    }

    mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) {
        precondition(end - position >= bytes.count, "response larger than measured")
        if let source = bytes.baseAddress {
            UnsafeMutableRawPointer(position).copyMemory(from: source, byteCount: bytes.count)
        }
        position += bytes.count
    }

    /// A string field, left out when empty unless `evenWhenEmpty` (an element of a repeated field).
    mutating func writeStringField(_ field: UInt64, _ text: String, evenWhenEmpty: Bool = false) {
        withWireUTF8(text) { bytes in
            guard !bytes.isEmpty || evenWhenEmpty else { return }
            writeTag(field, wireType: 2)
            writeVarint(UInt64(bytes.count))
            writeBytes(bytes)
        }
    }

    mutating func writeMessageHeader(_ field: UInt64, size: Int) {
        writeTag(field, wireType: 2)
        writeVarint(UInt64(size))
    }

    mutating func writeVarintField(_ field: UInt64, _ value: UInt64) {
        writeTag(field, wireType: 0)
        writeVarint(value)
    }

    /// An int32 or enum field, left out when 0; a negative value is sign-extended to ten bytes.
    mutating func writeInt32Field(_ field: UInt64, _ value: Int32) {
        guard value != 0 else { return }
        writeVarintField(field, UInt64(bitPattern: Int64(value)))
    }

    mutating func writeDoubleField(_ field: UInt64, _ value: Double) {
        writeTag(field, wireType: 1)
        precondition(end - position >= 8, "response larger than measured")
        UnsafeMutableRawPointer(position).storeBytes(of: value.bitPattern.littleEndian, as: UInt64.self)
        position += 8
    }

    /// A fresh UUID v4's 36 characters, drawn from `generator`.
    mutating func writeUUID<Generator: RandomNumberGenerator>(using generator: inout Generator) {
        precondition(end - position >= 36, "response larger than measured")
        let written = UUIDv4.write(into: UnsafeMutableBufferPointer(start: position, count: 36), using: &generator)
        position += written
    }
}
