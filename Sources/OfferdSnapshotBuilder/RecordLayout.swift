import OfferdSnapshot

/// Where the parts of one record go and the header that says so (docs/snapshot-format.md, Records): the one
/// description of the record layout that both encoders write through, the general path (``RecordEncoder``) and
/// the fast path (``FastRecordEncoder``), on top of the field offsets of ``SnapshotFormat/Record`` that the
/// loader reads.
///
/// A record is its header, then the identities (each the u32 length and UTF-8 of its namespace, then of its id),
/// the audience entries, the capping entries, the attribute directory sorted by (path hash, node offset), and the
/// attribute nodes. An encoder prepares each section, makes a layout of their sizes, and has ``write(to:consents:
/// identities:audiences:capping:directory:nodes:)`` write every byte of the record.
struct RecordLayout {
    let identityCount: Int
    let audienceCount: Int
    let cappingCount: Int
    let attributeCount: Int
    /// Where each section starts, relative to the record's start; the identities start at the header's end.
    let audiencesOffset: Int
    let cappingOffset: Int
    let directoryOffset: Int
    let nodesOffset: Int
    /// The whole record's length in bytes.
    let length: Int

    /// The layout of a record with these sections; `identitiesLength` is the sum of ``identityLength(namespace:
    /// id:)`` over its identities, `nodesLength` the bytes of its attribute nodes.
    @inline(__always)
    init(
        identityCount: Int, identitiesLength: Int, audienceCount: Int, cappingCount: Int, attributeCount: Int,
        nodesLength: Int
    ) {
        typealias Field = SnapshotFormat.Record
        self.identityCount = identityCount
        self.audienceCount = audienceCount
        self.cappingCount = cappingCount
        self.attributeCount = attributeCount
        audiencesOffset = Field.headerLength + identitiesLength
        cappingOffset = audiencesOffset + audienceCount * Field.audienceEntryLength
        directoryOffset = cappingOffset + cappingCount * Field.cappingEntryLength
        nodesOffset = directoryOffset + attributeCount * Field.directoryEntryLength
        length = nodesOffset + nodesLength
    }

    /// The bytes of one identity in the identities section.
    @inline(__always)
    static func identityLength(namespace: Int, id: Int) -> Int { 8 + namespace + id }

    /// Writes one identity (namespace and id as UTF-8) at `offset` of the record at `record`; returns the offset
    /// after it, where the next identity starts.
    @inline(__always)
    static func writeIdentity(
        namespace: UnsafeRawBufferPointer, id: UnsafeRawBufferPointer, to record: UnsafeMutableRawPointer,
        at offset: Int
    ) -> Int {
        func write(_ part: UnsafeRawBufferPointer, at position: Int) -> Int {
            (record + position).storeBytes(of: UInt32(part.count).littleEndian, as: UInt32.self)
            if let base = part.baseAddress, part.count > 0 {
                (record + position + 4).copyMemory(from: base, byteCount: part.count)
            }
            return position + 4 + part.count
        }
        return write(id, at: write(namespace, at: offset))
    }

    /// Writes the whole record at `record` (``length`` bytes, every one of them): the header, the identities
    /// (`identities` writes them from the header's end on, with ``writeIdentity(namespace:id:to:at:)``, and returns
    /// where they end), and the other sections as given, the directory already sorted.
    ///
    /// `consents` holds the six ConsentChoice codes in record order (personalize.content, marketing.any, email,
    /// sms, push, call), one per byte, the first in the lowest.
    @inline(__always)
    func write(
        to record: UnsafeMutableRawPointer, consents: UInt64, identities: (UnsafeMutableRawPointer) -> Int,
        audiences: UnsafeRawBufferPointer, capping: UnsafeRawBufferPointer, directory: UnsafeRawBufferPointer,
        nodes: UnsafeRawBufferPointer
    ) {
        typealias Field = SnapshotFormat.Record
        // The sections must fill the layout exactly: a section of another size would write past the record.
        precondition(
            audiences.count == cappingOffset - audiencesOffset && capping.count == directoryOffset - cappingOffset
                && directory.count == nodesOffset - directoryOffset && nodes.count == length - nodesOffset,
            "a record section does not match its layout")
        func store(_ value: Int, at offset: Int) {
            (record + offset).storeBytes(of: UInt32(truncatingIfNeeded: value).littleEndian, as: UInt32.self)
        }
        store(length, at: Field.length)
        store(identityCount, at: Field.identityCount)
        store(audienceCount, at: Field.audienceCount)
        store(cappingCount, at: Field.cappingCount)
        store(attributeCount, at: Field.attributeCount)
        store(audiencesOffset, at: Field.audiencesOffset)
        store(cappingOffset, at: Field.cappingOffset)
        store(directoryOffset, at: Field.directoryOffset)
        store(nodesOffset, at: Field.nodesOffset)
        for slot in 0..<6 {
            (record + Field.consents + slot).storeBytes(
                of: UInt8(truncatingIfNeeded: consents >> UInt64(slot * 8)), as: UInt8.self)
        }
        // The header's padding after the six consent codes.
        (record + Field.consents + 6).initializeMemory(
            as: UInt8.self, repeating: 0, count: Field.headerLength - Field.consents - 6)
        let identitiesEnd = identities(record)
        precondition(identitiesEnd == audiencesOffset, "the identities do not match their layout")
        func copy(_ section: UnsafeRawBufferPointer, at offset: Int) {
            if let base = section.baseAddress, section.count > 0 {
                (record + offset).copyMemory(from: base, byteCount: section.count)
            }
        }
        copy(audiences, at: audiencesOffset)
        copy(capping, at: cappingOffset)
        copy(directory, at: directoryOffset)
        copy(nodes, at: nodesOffset)
    }
}
