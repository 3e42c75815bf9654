import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

@testable import OfferdTransport

/// Echoes, after moving the event loop's clock forward as if the call took `duration`: a slow service without
/// a sleep.
private final class TimeTakingService: GRPCUnaryService, @unchecked Sendable {
    // @unchecked Sendable: used only on the test's embedded event loop, from the test's own thread.
    private let loop: EmbeddedEventLoop
    private let duration: TimeAmount
    private(set) var calls = 0

    init(loop: EmbeddedEventLoop, duration: TimeAmount) {
        self.loop = loop
        self.duration = duration
    }

    func handle(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        calls += 1
        loop.advanceTime(by: duration)
        return .message(call.message)
    }
}

/// Deadlines and the idle timeout through the whole connection handler, with time moved by the test: each
/// verdict is exact to the nanosecond and nothing sleeps.
@Suite("connection timing on a manual clock")
struct ConnectionTimeTests {
    private static func status(
        of streamID: Int32, in frames: [(frame: RawFrame, fields: [(name: String, value: String)])]
    )
        -> String?
    {
        frames.last { $0.frame.streamID == streamID && $0.frame.type == RawFrame.headers }?.fields.value("grpc-status")
    }

    private static func goAway(in frames: [(frame: RawFrame, fields: [(name: String, value: String)])]) -> UInt32? {
        frames.first { $0.frame.type == RawFrame.goAway }?.frame.goAwayFields?.errorCode
    }

    @Test("a deadline passing while the body is incomplete is answered by the timer, exactly on time")
    func deadlineTimer() throws {
        let service = EchoService()
        let peer = try EmbeddedHTTP2Peer(service: service)
        try peer.send(peer.request(streamID: 1, extra: [("grpc-timeout", "100m")]))
        try peer.send(RawHTTP2Client.dataFrame(streamID: 1, [0, 0, 0, 0, 10, 1, 2, 3]))
        #expect(try peer.frames().allSatisfy { $0.frame.streamID != 1 })

        peer.advanceTime(by: .milliseconds(100) - .nanoseconds(1))
        #expect(try peer.frames().allSatisfy { $0.frame.streamID != 1 })

        peer.advanceTime(by: .nanoseconds(1))
        let frames = try peer.frames()
        let answer = try #require(frames.first { $0.frame.streamID == 1 && $0.frame.type == RawFrame.headers })
        #expect(answer.frame.endStream)
        #expect(answer.fields.value("grpc-status") == "4")
        // The client was still uploading: it is asked to stop, after the answer.
        let reset = try #require(frames.firstIndex { $0.frame.streamID == 1 && $0.frame.type == RawFrame.rstStream })
        #expect(frames[reset].frame.resetCode == 0)
        #expect(reset > frames.firstIndex { $0.frame.type == RawFrame.headers }!)
        #expect(service.callCount == 0)

        // The connection goes on serving.
        try peer.send(
            peer.request(streamID: 3) + RawHTTP2Client.dataFrame(streamID: 3, grpcFrame([9, 9]), endStream: true))
        let next = try peer.frames()
        #expect(Self.status(of: 3, in: next) == "0")
        #expect(next.contains { $0.frame.streamID == 3 && $0.frame.payload == grpcFrame([9, 9]) })
        #expect(peer.channel.isActive)
    }

    @Test("a call reset mid-upload is forgotten: no answer, no service call, its deadline never fires")
    func resetMidUpload() throws {
        let service = EchoService()
        let peer = try EmbeddedHTTP2Peer(service: service)
        try peer.send(peer.request(streamID: 1, extra: [("grpc-timeout", "100m")]))
        try peer.send(RawHTTP2Client.dataFrame(streamID: 1, [0, 0, 0, 0, 10, 1, 2, 3]))
        #expect(peer.callCounter.value == 1)
        // RST_STREAM(CANCEL)
        try peer.send(RawHTTP2Client.frame(type: RawFrame.rstStream, streamID: 1, payload: [0, 0, 0, 8]))
        #expect(peer.callCounter.value == 0)
        peer.advanceTime(by: .seconds(1))
        #expect(try peer.frames().allSatisfy { $0.frame.streamID != 1 })
        #expect(service.callCount == 0)

        try peer.send(
            peer.request(streamID: 3) + RawHTTP2Client.dataFrame(streamID: 3, grpcFrame([4]), endStream: true))
        #expect(Self.status(of: 3, in: try peer.frames()) == "0")
        #expect(peer.callCounter.value == 0)
        #expect(peer.channel.isActive)
    }

    @Test("a deadline met by the body is never fired, however long the connection lives on")
    func deadlineMet() throws {
        let peer = try EmbeddedHTTP2Peer()
        try peer.send(peer.request(streamID: 1, extra: [("grpc-timeout", "100m")]))
        peer.advanceTime(by: .milliseconds(99))
        try peer.send(RawHTTP2Client.dataFrame(streamID: 1, grpcFrame([7]), endStream: true))
        #expect(Self.status(of: 1, in: try peer.frames()) == "0")
        peer.advanceTime(by: .seconds(10))
        #expect(try peer.frames().allSatisfy { $0.frame.streamID != 1 })
    }

    @Test("a deadline that passes while the service runs is DEADLINE_EXCEEDED; one that does not, OK")
    func deadlineDuringService() throws {
        let channel = EmbeddedChannel()
        let service = TimeTakingService(loop: channel.embeddedEventLoop, duration: .milliseconds(50))
        let peer = try EmbeddedHTTP2Peer(channel: channel, service: service)
        try peer.send(
            peer.request(streamID: 1, extra: [("grpc-timeout", "50m")])
                + RawHTTP2Client.dataFrame(streamID: 1, grpcFrame([1]), endStream: true)
        )
        #expect(Self.status(of: 1, in: try peer.frames()) == "4")
        try peer.send(
            peer.request(streamID: 3, extra: [("grpc-timeout", "51m")])
                + RawHTTP2Client.dataFrame(streamID: 3, grpcFrame([1]), endStream: true)
        )
        #expect(Self.status(of: 3, in: try peer.frames()) == "0")
        #expect(service.calls == 2)
    }

    @Test("an idle connection is sent GOAWAY(NO_ERROR) and closed when the timeout ends, not a nanosecond before")
    func idleTimeout() throws {
        let peer = try EmbeddedHTTP2Peer(configure: { $0.idleTimeout = .milliseconds(300) })
        peer.advanceTime(by: .milliseconds(300) - .nanoseconds(1))
        #expect(Self.goAway(in: try peer.frames()) == nil)
        #expect(peer.channel.isActive)
        peer.advanceTime(by: .nanoseconds(1))
        #expect(Self.goAway(in: try peer.frames()) == 0)
        #expect(!peer.channel.isActive)
    }

    @Test("input restarts the idle period")
    func inputRestartsTheIdlePeriod() throws {
        let peer = try EmbeddedHTTP2Peer(configure: { $0.idleTimeout = .milliseconds(300) })
        peer.advanceTime(by: .milliseconds(200))
        // A PING is input.
        try peer.send(RawHTTP2Client.frame(type: RawFrame.ping, streamID: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8]))
        peer.advanceTime(by: .milliseconds(299))
        #expect(Self.goAway(in: try peer.frames()) == nil)
        #expect(peer.channel.isActive)
        peer.advanceTime(by: .milliseconds(1))
        #expect(Self.goAway(in: try peer.frames()) == 0)
        #expect(!peer.channel.isActive)
    }

    @Test("a stream kept open keeps the connection past any number of periods; idle once it ends")
    func busyConnection() throws {
        let peer = try EmbeddedHTTP2Peer(configure: { $0.idleTimeout = .milliseconds(300) })
        try peer.send(peer.request(streamID: 1))
        for _ in 0..<10 {
            peer.advanceTime(by: .milliseconds(300))
        }
        #expect(Self.goAway(in: try peer.frames()) == nil)
        #expect(peer.channel.isActive)

        try peer.send(RawHTTP2Client.dataFrame(streamID: 1, grpcFrame([1]), endStream: true))
        #expect(Self.status(of: 1, in: try peer.frames()) == "0")
        peer.advanceTime(by: .milliseconds(300))
        #expect(Self.goAway(in: try peer.frames()) == 0)
        #expect(!peer.channel.isActive)
    }
}
