import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import OfferdTransport

/// The HTTP/1.1 pipeline on an embedded channel: its timers on the loop's manual clock (exact to the
/// nanosecond, no sleeps), keep-alive, and the answers to hostile input.
@Suite("HTTP/1.1 connection")
struct HTTP1ConnectionTests {
    private static func channel(_ configure: (inout GRPCServerConfiguration) -> Void = { _ in }) throws
        -> EmbeddedChannel
    {
        let channel = EmbeddedChannel()
        var configuration = GRPCServerConfiguration()
        configure(&configuration)
        try GRPCServer.configureHTTP1(
            channel.pipeline.syncOperations, configuration: configuration, service: EchoService(),
            logger: Logger(label: "test")
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private static func send(_ text: String, to channel: EmbeddedChannel) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    private static func output(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let part = try channel.readOutbound(as: ByteBuffer.self) {
            text += String(buffer: part)
        }
        return text
    }

    /// The connection is open one nanosecond before `timeout` has passed and closed when it has: the timer fires
    /// exactly then, on the loop's manual clock.
    private static func expectClosed(
        _ channel: EmbeddedChannel, exactlyAfter timeout: TimeAmount, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        channel.embeddedEventLoop.advanceTime(by: timeout - .nanoseconds(1))
        #expect(channel.isActive, "closed before the timeout", sourceLocation: sourceLocation)
        channel.embeddedEventLoop.advanceTime(by: .nanoseconds(1))
        #expect(!channel.isActive, "still open at the timeout", sourceLocation: sourceLocation)
    }

    private static let echo = "POST /test.Echo/Echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/proto\r\n"

    @Test("a body slower than the request timeout gets 408 and the connection closes, not a nanosecond earlier")
    func slowBody() throws {
        let channel = try Self.channel()
        try Self.send(Self.echo + "content-length: 10\r\n\r\nab", to: channel)
        channel.embeddedEventLoop.advanceTime(by: .seconds(10) - .nanoseconds(1))
        #expect(try Self.output(channel) == "")
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .nanoseconds(1))
        #expect(try Self.output(channel).hasPrefix("HTTP/1.1 408"))
        #expect(!channel.isActive)
    }

    @Test("a head that never completes (slowloris) is closed after the request timeout")
    func slowHead() throws {
        let channel = try Self.channel()
        try Self.send("POST /test.Echo/Echo HT", to: channel)
        Self.expectClosed(channel, exactlyAfter: .seconds(10))
    }

    @Test("keep-alive: answered requests leave the connection open until the idle timeout")
    func keepAliveThenIdle() throws {
        let channel = try Self.channel { $0.idleTimeout = .seconds(60) }
        for _ in 0..<3 {
            try Self.send(Self.echo + "content-length: 2\r\n\r\nhi", to: channel)
            let answer = try Self.output(channel)
            #expect(answer.hasPrefix("HTTP/1.1 200 OK"))
            #expect(answer.hasSuffix("\r\n\r\nhi"))
        }
        Self.expectClosed(channel, exactlyAfter: .seconds(60))
    }

    @Test(
        "a head cut short behind complete pipelined requests is closed by the request timer, not the idle one",
        arguments: ["POST /test.Echo/Echo HT", "PO", "POST ", "POST /test.Echo/Echo HTTP/1.1\r\nhost: x\r\n"]
    )
    func partialHeadBehindPipelined(tail: String) throws {
        let channel = try Self.channel()
        let request = Self.echo + "content-length: 2\r\n\r\nhi"
        try Self.send(request + request + tail, to: channel)
        let answers = try Self.output(channel)
        #expect(answers.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        Self.expectClosed(channel, exactlyAfter: .seconds(10))
    }

    /// A client that pipelines requests and reads the answers slowly: the handler stops reading while the answers
    /// back up (the channel is not writable), so the rest of the request cut short at the end of the last read
    /// waits unread in the socket. Regression: the request clock ran meanwhile and closed such a client after 10 s
    /// (the hostile pipelined-flood test, on a loaded machine, got a reset).
    private static func pipelinedWhileNotReadBack(idleTimeout: TimeAmount) throws -> EmbeddedChannel {
        let channel = try Self.channel { $0.idleTimeout = idleTimeout }
        let request = Self.echo + "content-length: 2\r\n\r\nhi"
        channel.isWritable = false
        try Self.send(request + request + "POST /test.Echo/Echo HT", to: channel)
        #expect(try Self.output(channel).components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        // What NIO does after a read when auto-read is on: ask for the next one, which the handler holds back.
        channel.read()
        return channel
    }

    @Test("while the client does not read its answers, the request clock waits; it restarts when reading resumes")
    func heldBackReadingKeepsTheRequestClockWaiting() throws {
        let channel = try Self.pipelinedWhileNotReadBack(idleTimeout: .seconds(60))
        channel.embeddedEventLoop.advanceTime(by: .seconds(59))
        #expect(channel.isActive)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        // Reading again: the request cut short has the whole request timeout from now to arrive.
        channel.embeddedEventLoop.advanceTime(by: .seconds(10) - .nanoseconds(1))
        #expect(channel.isActive)
        try Self.send(
            "TP/1.1\r\nhost: x\r\ncontent-type: application/proto\r\ncontent-length: 2\r\n\r\nhi", to: channel)
        #expect(try Self.output(channel).hasPrefix("HTTP/1.1 200 OK"))
        #expect(channel.isActive)
    }

    @Test("a client that never reads its answers is closed after the idle timeout, not before")
    func neverReadingBackIsClosedAtTheIdleTimeout() throws {
        let channel = try Self.pipelinedWhileNotReadBack(idleTimeout: .seconds(60))
        Self.expectClosed(channel, exactlyAfter: .seconds(60))
    }

    @Test("reading resumed with the request still cut short: closed one request timeout later")
    func resumedReadingRestartsTheRequestClock() throws {
        let channel = try Self.pipelinedWhileNotReadBack(idleTimeout: .seconds(60))
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        Self.expectClosed(channel, exactlyAfter: .seconds(10))
    }

    @Test("a body cut short behind a complete pipelined request gets 408 after the request timeout")
    func partialBodyBehindPipelined() throws {
        let channel = try Self.channel()
        try Self.send(
            Self.echo + "content-length: 2\r\n\r\nhi" + Self.echo + "content-length: 10\r\n\r\nab", to: channel)
        #expect(try Self.output(channel).hasPrefix("HTTP/1.1 200 OK"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(10) - .nanoseconds(1))
        #expect(try Self.output(channel) == "")
        channel.embeddedEventLoop.advanceTime(by: .nanoseconds(1))
        #expect(try Self.output(channel).hasPrefix("HTTP/1.1 408"))
        #expect(!channel.isActive)
    }

    @Test(
        "complete pipelined requests (with or without line ends after them) leave the connection to the idle timer",
        arguments: ["", "\r\n"]
    )
    func completePipelinedThenIdle(tail: String) throws {
        let channel = try Self.channel { $0.idleTimeout = .seconds(60) }
        let request = Self.echo + "content-length: 2\r\n\r\nhi"
        try Self.send(request + request + tail, to: channel)
        #expect(try Self.output(channel).components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        Self.expectClosed(channel, exactlyAfter: .seconds(60))
    }

    @Test("a head cut short in its own read, after an answered request, is closed by the request timer")
    func partialHeadInLaterRead() throws {
        let channel = try Self.channel()
        try Self.send(Self.echo + "content-length: 2\r\n\r\nhi", to: channel)
        #expect(try Self.output(channel).hasPrefix("HTTP/1.1 200 OK"))
        channel.embeddedEventLoop.advanceTime(by: .seconds(100))
        try Self.send("POST /te", to: channel)
        Self.expectClosed(channel, exactlyAfter: .seconds(10))
    }

    @Test("a body over the limit is refused from its size; the rest is dropped and the connection serves on")
    func oversizedBody() throws {
        let channel = try Self.channel { $0.maxMessageBytes = 4 }
        try Self.send(Self.echo + "transfer-encoding: chunked\r\n\r\n5\r\nabcde\r\n", to: channel)
        let refused = try Self.output(channel)
        #expect(refused.hasPrefix("HTTP/1.1 429"))
        #expect(refused.contains("\"code\":\"resource_exhausted\""))
        try Self.send("5\r\nfghij\r\n0\r\n\r\n", to: channel)
        try Self.send(Self.echo + "content-length: 2\r\n\r\nok", to: channel)
        #expect(try Self.output(channel).hasSuffix("\r\n\r\nok"))
        #expect(channel.isActive)
    }

    @Test("malformed chunked encoding: 400 and close")
    func badChunked() throws {
        let channel = try Self.channel()
        try? Self.send(Self.echo + "transfer-encoding: chunked\r\n\r\nzz\r\n", to: channel)
        #expect(try Self.output(channel).hasPrefix("HTTP/1.1 400"))
        #expect(!channel.isActive)
    }

    @Test("plain gRPC over HTTP/1.1 is 415 and closes")
    func plainGRPC() throws {
        let channel = try Self.channel()
        try Self.send(
            "POST /test.Echo/Echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc\r\ncontent-length: 0\r\n\r\n",
            to: channel
        )
        #expect(try Self.output(channel).hasPrefix("HTTP/1.1 415"))
        #expect(!channel.isActive)
    }
}
