import NIOCore
import NIOEmbedded
import OfferdCore
import OfferdServer
import OfferdSnapshot
@_spi(Benchmarks) import OfferdTransport

#if canImport(Glibc)
    import Glibc
#endif

// N unary gRPC calls through offerd's HTTP/2 transport, in process: an EmbeddedChannel carrying the production
// pipeline (GRPCServer.configureCleartextConnection: the protocol detector, the connection handler, nghttp2), fed
// with the bytes an h2load client sends (HPACK-indexed request headers, one DATA frame ending each stream) in
// batches of --batch requests per read, as `h2load -m 32` does. Made for callgrind: run it with two call counts and
// divide the difference in instructions by the difference in calls (benchmarks/callgrind/transport.sh).
//
//   offerd-transport-loop --calls N [--batch B] [--service fixed|health|decide] [--response-bytes K]
//       [--catalog PATH --snapshot PATH --request PATH...]
//
// --service fixed (default) answers every call with the same K-byte message (default 200, about a one-scope Decide
// response): what the transport costs alone. health and decide run offerd's DecisioningService (the load
// benchmark's offerd-health and offerd rows) and need --catalog and --snapshot; decide sends the --request bodies
// (gRPC-framed, as benchmarks/load/make_requests.py writes them) in turn.

func fail(_ message: String) -> Never {
    let line = "offerd-transport-loop: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(2)
}

/// The transport alone: every call gets the same message, shared (the transport only reads it).
struct FixedReplyService: GRPCUnaryService {
    let reply: ByteBuffer

    func handle(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        .message(reply)
    }
}

/// The client side of the connection: writes request frames and reads the server's, just enough of HTTP/2 to
/// keep the connection going (connection flow control) and to count the answers. Cheap per call (a copied
/// template, two stream ids patched in, frame headers read in place), so the count is the server's.
struct H2Client {
    private var nextStreamID: UInt32 = 1
    private var headersSent = false
    private let path: String
    private let bodies: [[UInt8]]
    /// Per body, once the HPACK table holds the request fields: the request's bytes with stream id 0.
    private var templates: [[UInt8]] = []
    /// DATA bytes received since the last connection WINDOW_UPDATE.
    private var unacknowledgedData = 0
    private(set) var answers = 0
    private(set) var responseDataBytes = 0

    init(path: String, bodies: [[UInt8]]) {
        self.path = path
        self.bodies = bodies
    }

    static func frameHeader(length: Int, type: UInt8, flags: UInt8, streamID: UInt32, into out: inout [UInt8]) {
        out += [UInt8(truncatingIfNeeded: length >> 16), UInt8(truncatingIfNeeded: length >> 8)]
        out += [UInt8(truncatingIfNeeded: length), type, flags]
        out += [
            UInt8(truncatingIfNeeded: streamID >> 24), UInt8(truncatingIfNeeded: streamID >> 16),
            UInt8(truncatingIfNeeded: streamID >> 8), UInt8(truncatingIfNeeded: streamID),
        ]
    }

    /// The connection preface and an empty SETTINGS frame.
    static var preface: [UInt8] {
        var out = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        Self.frameHeader(length: 0, type: 4, flags: 0, streamID: 0, into: &out)
        return out
    }

    /// Acknowledges the server's SETTINGS.
    static var settingsAck: [UInt8] {
        var out: [UInt8] = []
        Self.frameHeader(length: 0, type: 4, flags: 1, streamID: 0, into: &out)
        return out
    }

    /// A string literal without Huffman coding (lengths below 127).
    private static func literal(_ text: String, into out: inout [UInt8]) {
        let bytes = Array(text.utf8)
        precondition(bytes.count < 127)
        out.append(UInt8(bytes.count))
        out += bytes
    }

    /// h2load's request header block: the first one adds its fields to the HPACK dynamic table, every later one
    /// names them by index (the static table's :method POST and :scheme http, then the five dynamic entries).
    private mutating func headerBlock() -> [UInt8] {
        var out: [UInt8] = [0x83, 0x86] // :method POST, :scheme http
        if headersSent {
            // Newest entry first: user-agent 62, content-type 63, te 64, :authority 65, :path 66.
            out += [0x80 | 66, 0x80 | 65, 0x80 | 64, 0x80 | 63, 0x80 | 62]
            return out
        }
        headersSent = true
        out.append(0x40 | 4) // :path, with incremental indexing
        Self.literal(path, into: &out)
        out.append(0x40 | 1) // :authority
        Self.literal("127.0.0.1:50051", into: &out)
        out.append(0x40) // te, a new name
        Self.literal("te", into: &out)
        Self.literal("trailers", into: &out)
        out.append(0x40 | 31) // content-type
        Self.literal("application/grpc", into: &out)
        out.append(0x40 | 58) // user-agent
        Self.literal("h2load nghttp2/1.52.0", into: &out)
        return out
    }

    /// HEADERS, then a DATA frame carrying `body` and ending the stream.
    private mutating func request(body: [UInt8], streamID: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        let block = headerBlock()
        Self.frameHeader(length: block.count, type: 1, flags: 0x4, streamID: streamID, into: &out)
        out += block
        Self.frameHeader(length: body.count, type: 0, flags: 0x1, streamID: streamID, into: &out)
        out += body
        return out
    }

    /// Writes call number `call`'s request (the bodies are sent in turn).
    mutating func writeRequest(call: Int, into buffer: inout ByteBuffer) {
        let streamID = nextStreamID
        nextStreamID += 2
        let body = bodies[call % bodies.count]
        guard headersSent else {
            buffer.writeBytes(request(body: body, streamID: streamID))
            templates = bodies.map { request(body: $0, streamID: 0) }
            return
        }
        let start = buffer.writerIndex
        let template = templates[call % bodies.count]
        buffer.writeBytes(template)
        // Stream ids at bytes 5...8 of each frame header: the HEADERS frame's and the DATA frame's.
        buffer.setInteger(streamID, at: start + 5)
        buffer.setInteger(streamID, at: start + 9 + (template.count - 18 - body.count) + 5)
    }

    /// Gives back the connection window the DATA received so far used (streams each get a fresh window).
    mutating func writeWindowUpdate(into buffer: inout ByteBuffer) {
        guard unacknowledgedData > 0 else {
            return
        }
        buffer.writeBytes([0, 0, 4, 8, 0, 0, 0, 0, 0])
        buffer.writeInteger(UInt32(unacknowledgedData))
        unacknowledgedData = 0
    }

    /// Reads whole frames from `buffer` (the server writes whole frames in each buffer it drains): counts the
    /// header blocks that end a stream (the trailers of each answer) and the DATA bytes.
    mutating func read(_ buffer: ByteBuffer) {
        var offset = buffer.readerIndex
        let end = buffer.writerIndex
        while offset + 9 <= end {
            let lengthAndType = buffer.getInteger(at: offset, as: UInt32.self).unsafelyUnwrapped
            let flags = buffer.getInteger(at: offset + 4, as: UInt8.self).unsafelyUnwrapped
            let length = Int(lengthAndType >> 8)
            let type = UInt8(truncatingIfNeeded: lengthAndType)
            offset += 9 + length
            guard offset <= end else {
                fail("the server wrote a partial frame")
            }
            switch type {
            case 0:
                unacknowledgedData += length
                responseDataBytes += length
            case 1 where flags & 0x1 != 0:
                answers += 1
            case 3, 7:
                fail("the server reset a stream or ended the connection (frame type \(type))")
            default:
                break
            }
        }
    }
}

var calls = 0
var batch = 32
var serviceName = "fixed"
var responseBytes = 200
var catalogPath = ""
var snapshotPath = ""
var requestPaths: [String] = []
var remaining = CommandLine.arguments.dropFirst()
while let option = remaining.popFirst() {
    guard let value = remaining.popFirst() else { fail("\(option) needs a value") }
    switch option {
    case "--calls":
        guard let count = Int(value), count >= 0 else { fail("--calls must be a count, got \(value)") }
        calls = count
    case "--batch":
        guard let count = Int(value), (1...64).contains(count) else { fail("--batch must be in 1...64") }
        batch = count
    case "--service": serviceName = value
    case "--response-bytes":
        guard let count = Int(value), count >= 0 else { fail("--response-bytes must be a count") }
        responseBytes = count
    case "--catalog": catalogPath = value
    case "--snapshot": snapshotPath = value
    case "--request": requestPaths.append(value)
    default: fail("unknown option \(option)")
    }
}

let service: any GRPCUnaryService
let path: String
var bodies: [[UInt8]] = []
switch serviceName {
case "fixed":
    service = FixedReplyService(reply: ByteBuffer(repeating: 0x2A, count: responseBytes))
    path = "/offerd.v1.Decisioning/Decide"
    bodies = [[0, 0, 0, 0, 0]]
case "health", "decide":
    if catalogPath.isEmpty || snapshotPath.isEmpty { fail("--service \(serviceName) needs --catalog and --snapshot") }
    do {
        let catalog = try loadCatalog(path: catalogPath, options: EngineOptions())
        let snapshot = try loadSnapshot(path: snapshotPath)
        service = DecisioningService(
            catalogs: AtomicReferenceStore(catalog), snapshots: AtomicReferenceStore(snapshot), allowExplain: false,
            metrics: ServerMetrics())
        if serviceName == "health" {
            path = DecisioningService.healthCheckPath
            bodies = [[0, 0, 0, 0, 0]] // an empty HealthCheckRequest
        } else {
            path = DecisioningService.decidePath
            if requestPaths.isEmpty { fail("--service decide needs --request") }
            bodies = try requestPaths.map { try readWholeFile($0) }
        }
    } catch {
        fail("\(error)")
    }
default:
    fail("--service must be fixed, health or decide")
}

let channel = EmbeddedChannel()
do {
    try GRPCServer.configureCleartextConnection(
        channel, configuration: GRPCServerConfiguration(), service: service)
    try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 50051)).wait()
} catch {
    fail("could not set up the connection: \(error)")
}

var client = H2Client(path: path, bodies: bodies)
@MainActor
func exchange(_ bytes: ByteBuffer) {
    do {
        try channel.writeInbound(bytes)
        while let output = try channel.readOutbound(as: ByteBuffer.self) {
            client.read(output)
        }
    } catch {
        fail("the connection failed: \(error)")
    }
}

exchange(channel.allocator.buffer(bytes: H2Client.preface))
exchange(channel.allocator.buffer(bytes: H2Client.settingsAck))
var sent = 0
while sent < calls {
    // A new buffer per read, as a socket read gives the server.
    var frames = channel.allocator.buffer(capacity: batch * 400)
    client.writeWindowUpdate(into: &frames)
    for _ in 0..<min(batch, calls - sent) {
        client.writeRequest(call: sent, into: &frames)
        sent += 1
    }
    exchange(frames)
}
// Printing what the calls produced keeps the optimizer from dropping them.
print("calls \(calls) answered \(client.answers) response data bytes \(client.responseDataBytes)")
if client.answers != calls { exit(1) }
