import Testing

@testable import OfferdWire

@Suite("HealthCodec")
struct HealthCodecTests {
    @Test("check response bytes", arguments: HealthCodec.ServingStatus.allCases)
    func checkResponseBytes(status: HealthCodec.ServingStatus) {
        // status is field 1, a varint enum; proto3 leaves the zero value off the wire.
        let expected: [UInt8] = status == .unknown ? [] : [0x08, UInt8(status.rawValue)]
        #expect(HealthCodec.encodeCheckResponse(status) == expected)
    }

    @Test("check request service name", arguments: ["", "offerd.v1.Decisioning", "grpc.health.v1.Health", "é"])
    func checkRequestServiceName(service: String) throws {
        var writer = ProtoWriter()
        if !service.isEmpty {
            writer.string(1, service)
        }
        writer.uint(99, 1) // unknown field
        #expect(try HealthCodec.decodeCheckRequest(writer.bytes) == service)
    }

    @Test func checkRequestWithBadServiceNameIsRefused() {
        var invalid = ProtoWriter()
        invalid.bytesField(1, [0x61, 0xC3])
        #expect(throws: WireDecodeError(message: "service is not valid UTF-8")) {
            try HealthCodec.decodeCheckRequest(invalid.bytes)
        }
        var withNUL = ProtoWriter()
        withNUL.bytesField(1, [0x61, 0x00, 0x62])
        #expect(throws: WireDecodeError(message: "service contains a NUL character")) {
            try HealthCodec.decodeCheckRequest(withNUL.bytes)
        }
    }

    @Test func checkRequestTruncatedAtEveryByteIsRefused() {
        var writer = ProtoWriter()
        writer.string(1, "offerd.v1.Decisioning")
        let bytes = writer.bytes
        for length in 1..<bytes.count {
            #expect(throws: WireDecodeError.self, "prefix of \(length) bytes") {
                try HealthCodec.decodeCheckRequest(Array(bytes[..<length]))
            }
        }
    }
}
