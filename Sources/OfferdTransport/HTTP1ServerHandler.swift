import Logging
import NIOCore
import NIOHTTP1

/// Connect unary and gRPC-Web over HTTP/1.1: one request at a time (NIOHTTP1's pipelining handler holds later
/// ones back), each run through the same ``GRPCServerStreamStateMachine`` as an HTTP/2 stream, so the checks,
/// the limits, the deadline and the service call are gRPC's; only the framing differs. Answers are rendered by
/// ``RPCResponseRendering``.
///
/// Differences from HTTP/2, all forced by HTTP/1.1:
/// - plain gRPC (`application/grpc`) is refused with 415: it needs HTTP/2; this and the other refusals of a
///   request that is none of the port's protocols (405, 415) close the connection after the answer;
/// - an answer sent before the request body has fully arrived (a refused head, an oversized body) is followed
///   by reading and dropping the rest of the body (never buffered; bounded by the request timer);
/// - timing (``HTTP1ConnectionTimer``): an idle connection is closed after the idle timeout; once a request's
///   first byte arrives the whole request must arrive within `http1RequestTimeout`, or 408 and close.
///
/// Limits before allocation: the request head is bounded by NIOHTTP1's decoder limits (16 KiB of header
/// list, 64 fields, 400 and close beyond, as for a malformed request or bad chunked encoding), the body by
/// the message reader (`maxMessageBytes`, counted as it arrives, so chunked bodies are bounded too).
final class HTTP1ServerHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    private let configuration: GRPCServerConfiguration
    private let service: any GRPCUnaryService
    private let cors: CORSPolicy
    private let logger: Logger
    private let clock: any GRPCClock
    let timer: HTTP1ConnectionTimer

    private var machine: GRPCServerStreamStateMachine?
    private var keepAlive = true
    private var answered = false
    private var requestEnded = false
    private var isHead = false
    private var deadlineTimer: Scheduled<Void>?
    private var context: ChannelHandlerContext?
    private var quiescing = false
    private var readPending = false
    private var isUpgrade = false
    private var stoppedReading = false
    /// Counts request heads, so that a deferred reply answers only the request it belongs to.
    private var requestNumber = 0

    init(configuration: GRPCServerConfiguration, service: any GRPCUnaryService, logger: Logger, clock: any GRPCClock) {
        self.configuration = configuration
        self.service = service
        cors = CORSPolicy(allowedOrigins: Set(configuration.corsAllowedOrigins))
        self.logger = logger
        self.clock = clock
        timer = HTTP1ConnectionTimer(
            idleTimeout: configuration.idleTimeout, requestTimeout: configuration.http1RequestTimeout
        )
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        timer.onExpiry = { [weak self] requestStarted in
            self?.timerExpired(requestStarted: requestStarted)
        }
        timer.start(eventLoop: context.eventLoop)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A malformed request (NIOHTTP1 already answered 400) or a socket error: nothing more to read.
        logger.debug("HTTP/1.1 connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        // After an upgrade request nothing more is read (see `receivedHead`).
        guard !stoppedReading else { return }
        // A client that does not read its answers stops being read from.
        if context.channel.isWritable {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable && readPending && !stoppedReading {
            readPending = false
            context.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Finish the request in progress (its answer says `connection: close`); close an idle connection.
            quiescing = true
            if machine == nil {
                context.close(promise: nil)
            }
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            receivedHead(head, context: context)
        case .body(let bytes):
            guard !answered, machine != nil else {
                return
            }
            let allocator = context.channel.allocator
            let action = bytes.withUnsafeReadableBytes { raw in
                machine?.receivedData(raw, allocator: allocator) ?? .none
            }
            perform(action, context: context)
        case .end:
            requestEnded = true
            if isUpgrade {
                // NIOHTTP1 parses nothing after an upgrade request and would buffer whatever follows: read no
                // more. Its answer (sent or to come) closes the connection.
                stoppedReading = true
            }
            timer.requestArrived()
            guard let action = machine?.receivedEndOfStream() else {
                // Answered before the body ended: the rest of the body was read and dropped; idle again.
                if answered {
                    timer.responseSent()
                }
                return
            }
            perform(action, context: context)
        }
    }

    private func receivedHead(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        var machine = GRPCServerStreamStateMachine(configuration: configuration)
        requestNumber &+= 1
        // llhttp takes CONNECT, or `upgrade` with a `connection: upgrade` token, for a switch of protocol and
        // parses nothing after that request's end; offerd upgrades to nothing (h2c included: HTTP/2 needs the
        // preface), so such a request is answered over HTTP/1.1 and the connection closes after it.
        isUpgrade =
            head.method == .CONNECT
            || (head.headers.contains(name: "upgrade")
                && head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "upgrade" })
        keepAlive = head.isKeepAlive && !quiescing && !isUpgrade
        answered = false
        requestEnded = false
        isHead = head.method == .HEAD
        machine.add(":method", head.method.rawValue)
        machine.add(":path", head.uri)
        for (name, value) in head.headers {
            // Field names are compared as HTTP/2 sends them, lower-case; most clients already send them so.
            machine.add(name.utf8.contains(where: { $0 >= 0x41 && $0 <= 0x5A }) ? name.lowercased() : name, value)
        }
        let isPlainGRPC = machine.requestedProtocol == .grpc
        self.machine = machine
        if isPlainGRPC, head.method == .POST {
            // gRPC needs HTTP/2 (trailers, multiplexing): an HTTP/1.1 gRPC request is not one of ours.
            keepAlive = false
            writeResponse(RenderedHTTPResponse(status: 415, fields: [], body: ByteBuffer()), context: context)
            return
        }
        let action = self.machine?.receivedHeaders(endStream: false, clock: self.clock) ?? .none
        if case .answer = action {
            // Refused from its head: no 100 Continue, the answer goes out at once.
        } else if let expect = head.headers.first(name: "expect"), expect.lowercased() == "100-continue" {
            // curl asks before sending a body over 1 KiB and would otherwise wait a second.
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .continue))), promise: nil
            )
        }
        perform(action, context: context)
    }

    /// Does what the state machine asked for; the same actions an HTTP/2 stream performs.
    private func perform(_ action: GRPCServerStreamStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none, .stopUpload, .sendMessage, .finish:
            // Message streams are HTTP/2 gRPC only; stopping an upload is done by closing after the answer.
            break
        case .armDeadline(let deadline):
            deadlineTimer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) {
                [weak self] in
                guard let self, let context = self.context else { return }
                deadlineTimer = nil
                if let action = machine?.deadlineReached() {
                    perform(action, context: context)
                }
            }
        case .queueForDispatch:
            // Not inside a parser callback: NIOHTTP1 delivered a whole part. Dispatch now.
            if let next = machine?.dispatch(clock: clock) {
                perform(next, context: context)
            }
        case .dispatch(let call):
            let reply = service.handle(call, allocator: context.channel.allocator)
            if case .deferred(let pending) = reply {
                // The deadline timer stays armed while the reply is pending; NIOHTTP1's pipelining handler holds
                // later requests back until this one's answer ends.
                let request = requestNumber
                pending.futureResult(on: context.eventLoop).assumeIsolated().whenSuccess { [weak self] reply in
                    // Dropped when the connection went away or the request was answered meanwhile (deadline, 408).
                    guard let self, let context = self.context, self.requestNumber == request, self.machine != nil
                    else { return }
                    cancelDeadline()
                    if let next = machine?.replyReady(reply, clock: clock) {
                        perform(next, context: context)
                    }
                }
                return
            }
            cancelDeadline()
            if let next = machine?.replyReady(reply, clock: clock) {
                perform(next, context: context)
            }
        case .respond(let payload):
            guard let machine = machine else { return }
            writeResponse(
                RPCResponseRendering.message(
                    payload, wireProtocol: machine.wireProtocol, origin: machine.origin, cors: cors,
                    allocator: context.channel.allocator
                ),
                context: context
            )
        case .answer(let rejection):
            guard let machine = machine else { return }
            if rejection == .methodNotAllowed || rejection == .unsupportedMediaType {
                // Not one of the port's protocols: answered, then the connection closes.
                keepAlive = false
            }
            writeResponse(
                RPCResponseRendering.answer(
                    rejection,
                    wireProtocol: machine.wireProtocol == .grpc ? .connect(json: true) : machine.wireProtocol,
                    origin: machine.origin, cors: cors, allocator: context.channel.allocator
                ),
                context: context
            )
        }
    }

    private func writeResponse(_ response: RenderedHTTPResponse, context: ChannelHandlerContext) {
        cancelDeadline()
        answered = true
        // An answer before the whole body arrived: the rest of the body is read and dropped (bounded in time
        // by the request timer, never buffered), then the connection serves the next request.
        let closeAfter = !keepAlive || quiescing
        var headers = HTTPHeaders()
        for field in response.fields {
            headers.add(name: field.name, value: field.value)
        }
        headers.replaceOrAdd(name: "content-length", value: String(response.body.readableBytes))
        if closeAfter {
            headers.replaceOrAdd(name: "connection", value: "close")
        }
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))),
            promise: nil)
        if response.body.readableBytes > 0 && !isHead {
            context.write(wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        let channel = context.channel
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: written)
        machine = nil
        if closeAfter {
            written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        } else if requestEnded {
            timer.responseSent()
        }
    }

    private func timerExpired(requestStarted: Bool) {
        guard let context = context else { return }
        if requestStarted && !answered && machine != nil {
            // Too slow to send its request body (slowloris): say so, then close. A head that never completed
            // gets no answer (NIOHTTP1 has no request to answer): the connection is just closed.
            keepAlive = false
            writeResponse(RenderedHTTPResponse(status: 408, fields: [], body: ByteBuffer()), context: context)
        } else {
            context.close(promise: nil)
        }
    }

    private func cancelDeadline() {
        deadlineTimer?.cancel()
        deadlineTimer = nil
    }

    private func tearDown() {
        cancelDeadline()
        timer.stop()
        machine = nil
        context = nil
    }
}

@available(*, unavailable)
extension HTTP1ServerHandler: Sendable {}

extension GRPCServerStreamStateMachine {
    /// Adds one request field given as strings (HTTP/1.1 heads arrive decoded).
    fileprivate mutating func add(_ name: String, _ value: String) {
        var name = name
        var value = value
        name.withUTF8 { nameBytes in
            value.withUTF8 { valueBytes in
                receivedHeaderField(
                    name: UnsafeRawBufferPointer(nameBytes), value: UnsafeRawBufferPointer(valueBytes))
            }
        }
    }
}

/// An HTTP/1.1 connection's one timer: while idle it closes the connection after the idle timeout; once the
/// first byte of a request arrives (``bytesArrived()``, from the raw byte stream before the decoder), the whole
/// request must arrive within the request timeout. Stopped while a complete request is being answered.
final class HTTP1ConnectionTimer {
    private let idleTimeout: TimeAmount
    private let requestTimeout: TimeAmount
    private var eventLoop: (any EventLoop)?
    private var scheduled: Scheduled<Void>?
    private var requestStarted = false
    private var answering = false
    /// Called with whether a request had started when the time ran out.
    var onExpiry: ((Bool) -> Void)?

    init(idleTimeout: TimeAmount, requestTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
        self.requestTimeout = requestTimeout
    }

    func start(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        arm(idleTimeout)
    }

    /// Raw bytes arrived: the first ones of a request start its clock.
    func bytesArrived() {
        guard !requestStarted, !answering else { return }
        requestStarted = true
        arm(requestTimeout)
    }

    /// A request arrived whole: no timer while it is answered.
    func requestArrived() {
        answering = true
        requestStarted = false
        scheduled?.cancel()
        scheduled = nil
    }

    /// The answer is written: the connection is idle again.
    func responseSent() {
        answering = false
        requestStarted = false
        arm(idleTimeout)
    }

    func stop() {
        scheduled?.cancel()
        scheduled = nil
        onExpiry = nil
        eventLoop = nil
    }

    private func arm(_ amount: TimeAmount) {
        scheduled?.cancel()
        guard let eventLoop = eventLoop else { return }
        scheduled = eventLoop.assumeIsolated().scheduleTask(in: amount) { [weak self] in
            guard let self else { return }
            scheduled = nil
            onExpiry?(requestStarted)
        }
    }
}

/// Sits before the HTTP/1.1 decoder and tells the connection timer when request bytes arrive.
final class HTTP1ByteWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timer: HTTP1ConnectionTimer

    init(timer: HTTP1ConnectionTimer) {
        self.timer = timer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        timer.bytesArrived()
        context.fireChannelRead(data)
    }
}

/// Tells the protocols apart on a cleartext connection by its first bytes: the HTTP/2 connection preface
/// (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`) means HTTP/2 (nghttp2: gRPC, and Connect and gRPC-Web over HTTP/2);
/// anything else is HTTP/1.1 (NIOHTTP1: Connect and gRPC-Web). It decides at the first byte that differs
/// from the preface, or once the 24 preface bytes have arrived, then replaces itself with the chosen
/// handlers and passes them the bytes it held (at most 24). It costs nothing per call: it is gone before the
/// first request is parsed.
final class ProtocolDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private let makeHTTP2: () -> any ChannelHandler
    private let makeHTTP1: (ChannelPipeline.SynchronousOperations) throws -> Void
    private let timeout: TimeAmount?
    private var timer: Scheduled<Void>?
    private var held: ByteBuffer?

    /// `timeout`: a client that has not said enough to choose within it (silent, or a partial preface) is
    /// closed.
    init(
        timeout: TimeAmount? = nil,
        makeHTTP2: @escaping () -> any ChannelHandler,
        makeHTTP1: @escaping (ChannelPipeline.SynchronousOperations) throws -> Void
    ) {
        self.timeout = timeout
        self.makeHTTP2 = makeHTTP2
        self.makeHTTP1 = makeHTTP1
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let timeout = timeout else { return }
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            channel.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            // Shutting down before the client said anything: nothing to finish.
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var held = held {
            held.writeBuffer(&bytes)
            bytes = held
        }
        let view = bytes.readableBytesView
        var isHTTP2: Bool?
        for (offset, byte) in view.prefix(Self.preface.count).enumerated() where byte != Self.preface[offset] {
            isHTTP2 = false
            break
        }
        if isHTTP2 == nil && view.count >= Self.preface.count {
            isHTTP2 = true
        }
        guard let isHTTP2 else {
            held = bytes
            return
        }
        held = nil
        do {
            let pipeline = context.pipeline.syncOperations
            if isHTTP2 {
                try pipeline.addHandler(makeHTTP2(), position: .after(self))
            } else {
                try makeHTTP1(pipeline)
            }
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(self, promise: nil)
    }
}
