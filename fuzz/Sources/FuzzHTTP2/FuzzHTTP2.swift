import FuzzDriver
import Logging
import NIOCore
import NIOEmbedded

@testable import OfferdTransport

/// Answers every call by echoing its message, so responses (DATA, trailers) are produced too.
private struct EchoService: GRPCUnaryService {
    func handle(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        if call.message.readableBytes % 2 == 1 {
            return .failure(GRPCStatus(.invalidArgument, "odd"))
        }
        return .message(call.message)
    }
}

/// The HTTP/2 input path: fuzzed bytes go into the transport's connection handler on an EmbeddedChannel, in
/// up to four reads (the first byte picks the split points), with small limits so the fuzzer reaches them.
/// Everything the server writes is drained; the channel is then closed and torn down.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP2(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: count)
    var configuration = GRPCServerConfiguration()
    configuration.maxMessageBytes = 1024
    configuration.maxConcurrentStreams = 8
    configuration.maxHeaderListBytes = 1024
    configuration.maxHeaderCount = 16
    let channel = EmbeddedChannel()
    let handler = GRPCServerConnectionHandler(
        configuration: configuration,
        service: EchoService(),
        callCounter: GRPCActiveCallCounter(),
        logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() })
    )
    do {
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    } catch {
        return 0
    }
    let splitSeed = count > 0 ? Int(bytes[0]) : 0
    var offset = 0
    var piece = 0
    while offset < count && channel.isActive {
        let remaining = count - offset
        // Pieces 0...2 take 1/4 to 4/4 of what remains (two bits of the first byte each); piece 3 the rest.
        let quarters = (splitSeed >> (2 * piece)) & 3 + 1
        let length = piece < 3 ? max(1, min(remaining, remaining * quarters / 4)) : remaining
        var buffer = channel.allocator.buffer(capacity: length)
        buffer.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
        offset += length
        piece += 1
        do {
            try channel.writeInbound(buffer)
        } catch {
            break
        }
        channel.embeddedEventLoop.run()
        while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
    }
    // Let deadline timers fire, then close.
    channel.embeddedEventLoop.advanceTime(by: .seconds(3600))
    while (try? channel.readOutbound(as: ByteBuffer.self)) != nil {}
    _ = try? channel.finish()
    return 0
}

/// The executable's entry (SwiftPM aliases `main` to it): hands the arguments and the target to libFuzzer.
@_cdecl("FuzzHTTP2_main")
public func fuzzHTTP2Main(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    offerd_fuzz_run(argc, argv) { data, size in fuzzHTTP2(data, size) }
}
