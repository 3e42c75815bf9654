/// A minimal protobuf writer, independent of protobuf-c, for hand-built test messages: it can write what a
/// well-behaved client never sends (invalid UTF-8, NUL, unknown fields, duplicate keys, broken structure).
struct ProtoWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func tag(_ field: UInt64, wireType: UInt64) {
        varint(field << 3 | wireType)
    }

    mutating func bytesField(_ field: UInt64, _ payload: [UInt8]) {
        tag(field, wireType: 2)
        varint(UInt64(payload.count))
        bytes += payload
    }

    mutating func string(_ field: UInt64, _ text: String) {
        bytesField(field, Array(text.utf8))
    }

    mutating func message(_ field: UInt64, _ build: (inout ProtoWriter) -> Void) {
        var nested = ProtoWriter()
        build(&nested)
        bytesField(field, nested.bytes)
    }

    mutating func uint(_ field: UInt64, _ value: UInt64) {
        tag(field, wireType: 0)
        varint(value)
    }

    mutating func bool(_ field: UInt64, _ value: Bool) {
        uint(field, value ? 1 : 0)
    }

    mutating func double(_ field: UInt64, _ value: Double) {
        tag(field, wireType: 1)
        fixed64(value.bitPattern)
    }

    mutating func fixed64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) {
            bytes.append(UInt8((value >> UInt64(shift)) & 0xFF))
        }
    }

    mutating func fixed32(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) {
            bytes.append(UInt8((value >> UInt32(shift)) & 0xFF))
        }
    }

    mutating func raw(_ extra: [UInt8]) {
        bytes += extra
    }
}
