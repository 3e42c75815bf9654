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
        receiver?.callFinished(call, outcome, at: nanoseconds)
    }

    var openCalls: Int { session?.openCalls ?? 0 }

    /// Queues a call with body number `body`; ``flush()`` writes it. A call the connection cannot take ends at once as
    /// ``CallOutcome/connectionLost``.
    func submit(_ call: UInt64, body: Int, at nanoseconds: UInt64) {
        guard !isClosed, let session = session, session.submitCall(call, body: body) else {
            receiver?.callFinished(call, .connectionLost, at: nanoseconds)
            return
        }
        hasUnwrittenOutput = true
    }

    /// Writes whatever the session has queued, in one write.
    func flush() {
        guard let context = context, let session = session, !isClosed else {
            return
        }
        hasUnwrittenOutput = false
        var output = context.channel.allocator.buffer(capacity: 1024)
        do {
            try session.drainOutput(into: &output)
        } catch {
            fail(error, at: monotonicNanoseconds())
            return
        }
        if output.readableBytes > 0 {
            context.writeAndFlush(wrapOutboundOut(output), promise: nil)
        }
    }

    /// Ends the open calls with `outcome` and closes the connection.
    func close(failingOpenCallsWith outcome: CallOutcome, at nanoseconds: UInt64) {
        session?.failOpenCalls(outcome, at: nanoseconds)
        isClosed = true
        context?.close(promise: nil)
    }

    // MARK: - ChannelInboundHandler

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            session = try NGHTTP2ClientSession(target: target, bodies: bodies, delegate: self)
        } catch {
            isClosed = true
            context.fireErrorCaught(error)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        // The client preface (magic and SETTINGS) goes out before any call.
        flush()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // One clock read per read: the answers in these bytes all arrived now.
        let now = monotonicNanoseconds()
        guard let session = session, !isClosed else {
            return
        }
        do {
            try session.receive(unwrapInboundIn(data), at: now)
        } catch {
            fail(error, at: now)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // SETTINGS acknowledgements, WINDOW_UPDATEs and PING answers that reading queued.
        flush()
        receiver?.connectionReadComplete()
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isClosed = true
        session?.failOpenCalls(.connectionLost, at: monotonicNanoseconds())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, at: monotonicNanoseconds())
    }

    private func fail(_ error: any Error, at nanoseconds: UInt64) {
        guard !isClosed else {
            return
        }
        reportError("connection to \(target.authority): \(error)")
        close(failingOpenCallsWith: .connectionLost, at: nanoseconds)
    }
}
