import Logging
import NIOCore

/// The NIO side of one connection: feeds inbound bytes to `GRPCServerConnection`, writes what it produces,
/// and owns the connection-level effects (backpressure, idle timeout, graceful shutdown, closing).
///
/// Output is drained from nghttp2 into one buffer and flushed once per read burst (`channelReadComplete`),
/// once per asynchronous event (a deadline timer, an idle or shutdown GOAWAY), and right away on a fatal
/// error. While the channel is not writable no `read` is passed on, so a client that does not read its
/// responses stops being read from; reading resumes when the channel drains.
///
/// Time comes from the injected ``GRPCClock`` (deadlines and the idle timeout, decided by
/// ``GRPCServerStreamStateMachine`` and ``GRPCIdleTimeout``); timers are the event loop's, scheduled at
/// deadlines read from that clock. Tests run it in an `EmbeddedChannel` whose loop time is the clock.
final class GRPCServerConnectionHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let configuration: GRPCServerConfiguration
    private let service: any GRPCUnaryService
    private let callCounter: GRPCActiveCallCounter
    private let logger: Logger
    private let clock: any GRPCClock

    private var connection: GRPCServerConnection?
    private var context: ChannelHandlerContext?
    private var readPending = false
    private var isClosing = false
    private var idleTimeout: GRPCIdleTimeout?
    private var idleTimer: Scheduled<Void>?

    init(
        configuration: GRPCServerConfiguration,
        service: any GRPCUnaryService,
        callCounter: GRPCActiveCallCounter,
        logger: Logger,
        clock: any GRPCClock = GRPCSystemClock()
    ) {
        self.configuration = configuration
        self.service = service
        self.callCounter = callCounter
        self.logger = logger
        self.clock = clock
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        do {
            let connection = try GRPCServerConnection(
                configuration: configuration,
                service: service,
                eventLoop: context.eventLoop,
                clock: clock,
                allocator: context.channel.allocator,
                callCounter: callCounter,
                logger: logger
            )
            // Unowned: the handler owns the connection and clears this hook before it goes away.
            connection.onAsynchronousOutput = { [unowned self] in
                flushOutput()
            }
            self.connection = connection
        } catch {
            logger.error("could not create an HTTP/2 session", metadata: ["error": "\(error)"])
            isClosing = true
            context.close(promise: nil)
            return
        }
        if context.channel.isActive {
            connectionBecameActive(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        connectionBecameActive(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let connection = connection, !isClosing else {
            return
        }
        idleTimeout?.activity(now: clock.now())
        do {
            try connection.receive(unwrapInboundIn(data))
        } catch {
            logger.debug("closing HTTP/2 connection after an error", metadata: ["error": "\(error)"])
            connection.terminate(errorCode: error.goAwayErrorCode)
            flushOutput()
            closeAfterPendingWrites()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushOutput()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && readPending {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            connection?.beginGracefulShutdown()
            flushOutput()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("HTTP/2 connection error", metadata: ["error": "\(error)"])
        isClosing = true
        context.close(promise: nil)
    }

    // MARK: - Effects

    private func connectionBecameActive(context: ChannelHandlerContext) {
        guard idleTimer == nil, !isClosing else {
            return
        }
        let idleTimeout = GRPCIdleTimeout(timeout: configuration.idleTimeout, now: clock.now())
        self.idleTimeout = idleTimeout
        scheduleIdleCheck(at: idleTimeout.firstCheck)
        // The server preface (SETTINGS) goes out without waiting for the client.
        flushOutput()
    }

    /// Writes everything nghttp2 has queued as one buffer, and closes the channel once nghttp2 is done with it.
    private func flushOutput() {
        guard let context = context, let connection = connection, !isClosing else {
            return
        }
        do {
            if let output = try connection.drainOutput() {
                context.writeAndFlush(wrapOutboundOut(output), promise: nil)
            }
        } catch {
            logger.debug("HTTP/2 send failed", metadata: ["error": "\(error)"])
            isClosing = true
            context.close(promise: nil)
            return
        }
        if connection.isFinished {
            closeAfterPendingWrites()
        }
    }

    /// Closes once what was already written has been sent (a plain `close` would drop a final GOAWAY).
    private func closeAfterPendingWrites() {
        guard let context = context, !isClosing else {
            return
        }
        isClosing = true
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// Arms the idle timer; its deadline comes from ``GRPCIdleTimeout``, read on the same clock.
    private func scheduleIdleCheck(at deadline: NIODeadline) {
        guard let context = context else {
            return
        }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            self?.idleTimerFired()
        }
    }

    /// Does what ``GRPCIdleTimeout`` decides: look again later, send GOAWAY, or close.
    private func idleTimerFired() {
        idleTimer = nil
        guard let connection = connection, let context = context, !isClosing else {
            return
        }
        let action = idleTimeout?.timerFired(now: clock.now(), openStreams: connection.openStreamCount)
        switch action {
        case .checkAgain(let deadline):
            scheduleIdleCheck(at: deadline)
        case .goAway(let closeAt):
            logger.debug("closing idle HTTP/2 connection")
            connection.beginGracefulShutdown()
            flushOutput()
            if !isClosing {
                // A client that never lets the connection finish still loses it after one more period.
                scheduleIdleCheck(at: closeAt)
            }
        case .close:
            isClosing = true
            context.close(promise: nil)
        case nil:
            break
        }
    }

    private func tearDown() {
        idleTimer?.cancel()
        idleTimer = nil
        connection?.tearDown()
    }
}

@available(*, unavailable)
extension GRPCServerConnectionHandler: Sendable {}
