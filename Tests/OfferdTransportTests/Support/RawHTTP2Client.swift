import CNGHTTP2
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// One HTTP/2 frame as read off the wire.
struct RawFrame {
    var type: UInt8
    var flags: UInt8
    var streamID: Int32
    var payload: [UInt8]

    static let data: UInt8 = 0
    static let headers: UInt8 = 1
    static let rstStream: UInt8 = 3
    static let settings: UInt8 = 4
    static let ping: UInt8 = 6
    static let goAway: UInt8 = 7
    static let windowUpdate: UInt8 = 8

    var endStream: Bool { flags & 0x1 != 0 }

    /// For GOAWAY: (last stream id, error code).
    var goAwayFields: (lastStreamID: Int32, errorCode: UInt32)? {
        guard type == Self.goAway, payload.count >= 8 else {
            return nil
        }
        let last = payload[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
        let code = payload[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return (Int32(last), code)
    }

    /// For RST_STREAM: the error code.
    var resetCode: UInt32? {
        guard type == Self.rstStream, payload.count == 4 else {
            return nil
        }
        return payload.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }
}

/// A deliberately low-level HTTP/2 client for the tests that nghttp cannot express: partial bodies, garbage,
/// many streams in one write, watching GOAWAY. Blocking POSIX socket, HPACK through nghttp2's codec.
final class RawHTTP2Client {
    private let socket: Int32
    private var inbound: [UInt8] = []
    private let hpack: HPACKCodec
    private(set) var isClosedByPeer = false

    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    init(port: Int) throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else {
            throw TestFailure("socket() failed")
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(socket)
            throw TestFailure("connect() failed")
        }
        do {
            hpack = try HPACKCodec()
        } catch {
            close(socket)
            throw error
        }
        self.socket = socket
    }

    deinit {
        close(socket)
    }

    // MARK: Writing

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, 0) }
            guard written > 0 else {
                throw TestFailure("send() failed")
            }
            offset += written
        }
    }

    static func frame(type: UInt8, flags: UInt8 = 0, streamID: Int32, payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        let id = UInt32(streamID)
        return [
            UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8),
            UInt8(truncatingIfNeeded: length), type, flags,
            UInt8(truncatingIfNeeded: id >> 24), UInt8(truncatingIfNeeded: id >> 16),
            UInt8(truncatingIfNeeded: id >> 8), UInt8(truncatingIfNeeded: id),
        ] + payload
    }

    /// Client preface plus an empty SETTINGS frame.
    static func connectionPreface() -> [UInt8] {
        Self.preface + Self.frame(type: RawFrame.settings, streamID: 0, payload: [])
    }

    /// A HEADERS frame (END_HEADERS, optionally END_STREAM) with the fields HPACK-encoded.
    func headersFrame(streamID: Int32, fields: [(String, String)], endStream: Bool = false) -> [UInt8] {
        hpack.headersFrame(streamID: streamID, fields: fields, endStream: endStream)
    }

    static func grpcRequestFields(path: String, extra: [(String, String)] = []) -> [(String, String)] {
        [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"), ("te", "trailers"),
        ] + extra
    }

    static func dataFrame(streamID: Int32, _ payload: [UInt8], endStream: Bool = false) -> [UInt8] {
        Self.frame(type: RawFrame.data, flags: endStream ? 0x1 : 0, streamID: streamID, payload: payload)
    }

    // MARK: Reading

    /// Reads frames until `stop` returns true for one of them, the peer closes, or `timeout` passes.
    /// Returns every frame read. SETTINGS from the server are acknowledged automatically.
    func readFrames(timeout: Double = 5, until stop: (RawFrame) -> Bool) throws -> [RawFrame] {
        let deadline = Date().addingTimeInterval(timeout)
        var frames: [RawFrame] = []
        while true {
            while let frame = nextBufferedFrame() {
                frames.append(frame)
                if frame.type == RawFrame.settings && frame.flags & 0x1 == 0 {
                    try? send(Self.frame(type: RawFrame.settings, flags: 0x1, streamID: 0, payload: []))
                }
                if stop(frame) {
                    return frames
                }
            }
            if isClosedByPeer || Date() >= deadline {
                return frames
            }
            try receiveSome(until: deadline)
        }
    }

    /// Reads until the peer closes the connection (or `timeout`), returning all frames read.
    func readUntilClosed(timeout: Double = 5) throws -> [RawFrame] {
        try readFrames(timeout: timeout) { _ in false }
    }

    private func receiveSome(until deadline: Date) throws {
        var pollDescriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let milliseconds = max(0, Int32(deadline.timeIntervalSinceNow * 1000))
        let ready = poll(&pollDescriptor, 1, milliseconds)
        guard ready > 0 else {
            return
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        if count <= 0 {
            isClosedByPeer = true
        } else {
            inbound += chunk[0..<count]
        }
    }

    private func nextBufferedFrame() -> RawFrame? {
        RawFrame.parse(&inbound)
    }

    /// Decodes a HEADERS frame's block (the server sends neither padding nor priority).
    func decodeHeaders(_ frame: RawFrame) throws -> [(name: String, value: String)] {
        try hpack.decodeHeaders(frame)
    }
}

extension RawFrame {
    /// Removes and returns the first whole frame of `bytes`; nil while the frame is incomplete.
    static func parse(_ bytes: inout [UInt8]) -> RawFrame? {
        guard bytes.count >= 9 else {
            return nil
        }
        let length = Int(bytes[0]) << 16 | Int(bytes[1]) << 8 | Int(bytes[2])
        guard bytes.count >= 9 + length else {
            return nil
        }
        let id = bytes[5..<9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF
        let frame = RawFrame(
            type: bytes[3],
            flags: bytes[4],
            streamID: Int32(id),
            payload: Array(bytes[9..<(9 + length)])
        )
        bytes.removeFirst(9 + length)
        return frame
    }
}

/// HPACK for the test clients, through nghttp2's codec: one encoder for the requests they send, one decoder
/// for the answers they read (decode every HEADERS frame in order, or the tables drift apart).
final class HPACKCodec {
    private let deflater: OpaquePointer
    private let inflater: OpaquePointer

    init() throws {
        var deflater: OpaquePointer?
        var inflater: OpaquePointer?
        guard nghttp2_hd_deflate_new(&deflater, 4096) == 0, let deflater else {
            throw TestFailure("HPACK codec allocation failed")
        }
        guard nghttp2_hd_inflate_new(&inflater) == 0, let inflater else {
            nghttp2_hd_deflate_del(deflater)
            throw TestFailure("HPACK codec allocation failed")
        }
        self.deflater = deflater
        self.inflater = inflater
    }

    deinit {
        nghttp2_hd_deflate_del(deflater)
        nghttp2_hd_inflate_del(inflater)
    }

    /// A HEADERS frame (END_HEADERS, optionally END_STREAM) with the fields HPACK-encoded.
    func headersFrame(streamID: Int32, fields: [(String, String)], endStream: Bool = false) -> [UInt8] {
        var block = [UInt8]()
        var storage = fields.map { (Array($0.0.utf8), Array($0.1.utf8)) }
        let count = storage.count
        storage.withUnsafeMutableBufferPointer { pairs in
            var nameValues: [nghttp2_nv] = []
            for index in 0..<count {
                pairs[index].0.withUnsafeMutableBufferPointer { name in
                    pairs[index].1.withUnsafeMutableBufferPointer { value in
                        nameValues.append(
                            nghttp2_nv(
                                name: name.baseAddress,
                                value: value.baseAddress,
                                namelen: name.count,
                                valuelen: value.count,
                                flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue)
                            )
                        )
                    }
                }
            }
            // The pointers above stay valid: the arrays are not mutated until this closure ends.
            let bound = nghttp2_hd_deflate_bound(deflater, nameValues, nameValues.count)
            block = [UInt8](repeating: 0, count: bound)
            let used = block.withUnsafeMutableBufferPointer {
                nghttp2_hd_deflate_hd(deflater, $0.baseAddress, bound, nameValues, nameValues.count)
            }
            block.removeLast(bound - max(used, 0))
        }
        return RawHTTP2Client.frame(
            type: RawFrame.headers,
            flags: 0x4 | (endStream ? 0x1 : 0),
            streamID: streamID,
            payload: block
        )
    }

    /// Decodes a HEADERS frame's block (the server sends neither padding nor priority).
    func decodeHeaders(_ frame: RawFrame) throws -> [(name: String, value: String)] {
        var fields: [(String, String)] = []
        var remaining = frame.payload[...]
        while true {
            var nameValue = nghttp2_nv()
            var flags: Int32 = 0
            let consumed = remaining.withUnsafeBufferPointer { input in
                nghttp2_hd_inflate_hd2(
                    inflater,
                    &nameValue,
                    &flags,
                    input.baseAddress,
                    input.count,
                    1
                )
            }
            guard consumed >= 0 else {
                throw TestFailure("HPACK decoding failed: \(consumed)")
            }
            remaining = remaining.dropFirst(consumed)
            if flags & Int32(NGHTTP2_HD_INFLATE_EMIT.rawValue) != 0 {
                let name = String(
                    decoding: UnsafeBufferPointer(start: nameValue.name, count: nameValue.namelen),
                    as: UTF8.self
                )
                let value = String(
                    decoding: UnsafeBufferPointer(start: nameValue.value, count: nameValue.valuelen),
                    as: UTF8.self
                )
                fields.append((name, value))
            }
            if flags & Int32(NGHTTP2_HD_INFLATE_FINAL.rawValue) != 0 {
                nghttp2_hd_inflate_end_headers(inflater)
                return fields
            }
            if consumed == 0 && remaining.isEmpty {
                return fields
            }
        }
    }
}

extension Array where Element == (name: String, value: String) {
    func value(_ name: String) -> String? {
        last { $0.name == name }?.value
    }
}
