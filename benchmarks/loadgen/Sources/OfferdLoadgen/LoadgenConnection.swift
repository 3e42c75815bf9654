import LoadgenCore
import NIOCore

/// Hears how calls end, and when the loop is awake anyway after reading.
protocol LoadgenConnectionReceiver: NGHTTP2ClientSessionDelegate {
    /// A read burst was handled: the loop is awake, a good moment to send calls that are due.
    func connectionReadComplete()
}

/// One HTTP/2 connection of the generator: a NIO channel handler that owns an ``NGHTTP2ClientSession``, feeds it
/// what the server sends and writes what it queues. Calls are submitted by the round (``submit(_:body:at:)``) and
/// written by ``flush()``; their ends go to ``receiver``. Everything runs on the one event loop.
final class LoadgenConnection: ChannelInboundHandler, NGHTTP2ClientSessionDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let target: CallTarget
    private let bodies: [GRPCRequestBody]
    /// Hears how calls end. Weak: the round owns its connections and may be gone before a late channel event.
    weak var receiver: (any LoadgenConnectionReceiver)?
    private var session: NGHTTP2ClientSession?
    private var context: ChannelHandlerContext?
    /// Calls were submitted since the last ``flush()``.
    private(set) var hasUnwrittenOutput = false
    /// Set once the connection is unusable; later calls fail at once.
    private(set) var isClosed = false

    init(target: CallTarget, bodies: [GRPCRequestBody]) {
        self.target = target
        self.bodies = bodies
    }

    func callFinished(_ call: UInt64, _ outcome: CallOutcome, at nanoseconds: UInt64) {
        self.receiver?.callFinished(call, outcome, at: nanoseconds)
    }

    var openCalls: Int { self.session?.openCalls ?? 0 }

    /// Queues a call with body number `body`; ``flush()`` writes it. A call the connection cannot take ends at once as
    /// ``CallOutcome/connectionLost``.
    func submit(_ call: UInt64, body: Int, at nanoseconds: UInt64) {
        guard !self.isClosed, let session = self.session, session.submitCall(call, body: body) else {
            self.receiver?.callFinished(call, .connectionLost, at: nanoseconds)
            return
        }
        self.hasUnwrittenOutput = true
    }

    /// Writes whatever the session has queued, in one write.
    func flush() {
        guard let context = self.context, let session = self.session, !self.isClosed else {
            return
        }
        self.hasUnwrittenOutput = false
        var output = context.channel.allocator.buffer(capacity: 1024)
        do {
            try session.drainOutput(into: &output)
        } catch {
            self.fail(error, at: monotonicNanoseconds())
            return
        }
        if output.readableBytes > 0 {
            context.writeAndFlush(self.wrapOutboundOut(output), promise: nil)
        }
    }

    /// Ends the open calls with `outcome` and closes the connection.
    func close(failingOpenCallsWith outcome: CallOutcome, at nanoseconds: UInt64) {
        self.session?.failOpenCalls(outcome, at: nanoseconds)
        self.isClosed = true
        self.context?.close(promise: nil)
    }

    // MARK: - ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            self.session = try NGHTTP2ClientSession(target: self.target, bodies: self.bodies, delegate: self)
        } catch {
            self.isClosed = true
            context.fireErrorCaught(error)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        // The client preface (magic and SETTINGS) goes out before any call.
        self.flush()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // One clock read per read: the answers in these bytes all arrived now.
        let now = monotonicNanoseconds()
        guard let session = self.session, !self.isClosed else {
            return
        }
        do {
            try session.receive(self.unwrapInboundIn(data), at: now)
        } catch {
            self.fail(error, at: now)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // SETTINGS acknowledgements, WINDOW_UPDATEs and PING answers that reading queued.
        self.flush()
        self.receiver?.connectionReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.isClosed = true
        self.session?.failOpenCalls(.connectionLost, at: monotonicNanoseconds())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.fail(error, at: monotonicNanoseconds())
    }

    private func fail(_ error: any Error, at nanoseconds: UInt64) {
        guard !self.isClosed else {
            return
        }
        reportError("connection to \(self.target.authority): \(error)")
        self.close(failingOpenCallsWith: .connectionLost, at: nanoseconds)
    }
}
