import Dispatch
import NIOConcurrencyHelpers
import NIOCore

/// One complete unary call, as handed to a `GRPCUnaryService`.
public struct GRPCUnaryCall {
    /// The HTTP/2 `:path`, e.g. `/offerd.v1.Decisioning/Decide`. The transport does no routing: an unknown path
    /// is the service's to answer (usually `UNIMPLEMENTED`).
    public var path: String
    /// The request message payload, without the 5-byte gRPC length prefix.
    public var message: ByteBuffer
    /// When the call must be answered by, from the request's `grpc-timeout` (or Connect's
    /// `connect-timeout-ms`); `nil` when the client set none.
    public var deadline: NIODeadline?
    /// How the request message is encoded, and how the reply must be: protobuf, or proto3 JSON (Connect with
    /// `application/json`). The transport frames both alike; the service decodes and encodes.
    public var codec: GRPCMessageCodec = .proto

    /// Creates a call; the transport builds these, tests and in-process callers may too.
    public init(path: String, message: ByteBuffer, deadline: NIODeadline? = nil) {
        self.path = path
        self.message = message
        self.deadline = deadline
    }
}

/// The encoding of a call's messages.
public enum GRPCMessageCodec: Sendable, Equatable {
    /// Protobuf binary: gRPC, gRPC-Web, Connect with `application/proto`.
    case proto
    /// proto3 JSON mapping: Connect with `application/json`. A service that cannot speak it answers
    /// `UNIMPLEMENTED`.
    case json
}

/// What a service answers to a unary call.
public enum GRPCUnaryReply: Sendable {
    /// The serialized response payload. The transport adds the length prefix, the response headers and the
    /// trailers with `grpc-status: 0`.
    case message(ByteBuffer)
    /// A failed call, sent in the Trailers-Only form (a single HEADERS frame ending the stream).
    case failure(GRPCStatus)
    /// The reply comes later, from any thread, through ``GRPCPendingReply/complete(_:)``: the event loop serves
    /// other streams and connections meanwhile. Unary calls only (a message stream's reply must be immediate:
    /// the stream fails with INTERNAL otherwise).
    case deferred(GRPCPendingReply)
}

/// A reply a service gives after `handle` returned (``GRPCUnaryReply/deferred(_:)``): for calls that wait for
/// I/O, such as a write that must be durable before the answer.
///
/// - The service completes it exactly once, from any thread, with `.message` or `.failure`; later completions
///   are ignored. A reply never completed leaves its stream unanswered until the call's deadline (or the
///   client) ends it, so a service gives every deferred reply a bound of its own.
/// - The transport answers on the connection's event loop once it is completed, unless the stream was reset,
///   the connection closed or the deadline answered meanwhile: then the reply is dropped. Nothing of the
///   stream (nghttp2's stream data included) is touched after it is gone.
public final class GRPCPendingReply: Sendable {
    private let state = NIOLockedValueBox<(reply: GRPCUnaryReply?, observers: [@Sendable (GRPCUnaryReply) -> Void])>(
        (nil, []))

    public init() {}

    /// Completes the reply (the first call only). `reply` must not be `.deferred`.
    public func complete(_ reply: GRPCUnaryReply) {
        if case .deferred = reply {
            preconditionFailure("a pending reply cannot be completed with another pending reply")
        }
        let observers = state.withLockedValue { state -> [@Sendable (GRPCUnaryReply) -> Void] in
            guard state.reply == nil else { return [] }
            state.reply = reply
            defer { state.observers = [] }
            return state.observers
        }
        for observer in observers { observer(reply) }
    }

    /// Calls `body` with the reply once it is complete: at once (on this thread) when it is, else on the thread
    /// that completes it.
    public func whenComplete(_ body: @escaping @Sendable (GRPCUnaryReply) -> Void) {
        let ready = state.withLockedValue { state -> GRPCUnaryReply? in
            if let reply = state.reply { return reply }
            state.observers.append(body)
            return nil
        }
        if let ready { body(ready) }
    }

    /// The reply as a future on `eventLoop` (the transport's view).
    func futureResult(on eventLoop: any EventLoop) -> EventLoopFuture<GRPCUnaryReply> {
        let promise = eventLoop.makePromise(of: GRPCUnaryReply.self)
        whenComplete { promise.succeed($0) }
        return promise.futureResult
    }

    /// Blocks the calling thread until the reply is complete (in-process callers and tests; never an event
    /// loop).
    public func wait() -> GRPCUnaryReply {
        let done = DispatchSemaphore(value: 0)
        let result = NIOLockedValueBox<GRPCUnaryReply?>(nil)
        whenComplete { reply in
            result.withLockedValue { $0 = reply }
            done.signal()
        }
        done.wait()
        return result.withLockedValue { $0 }!
    }
}

extension GRPCUnaryReply {
    /// The reply itself, or a deferred one waited for (in-process callers and tests; never on an event loop).
    public func waitedFor() -> GRPCUnaryReply {
        if case .deferred(let pending) = self { return pending.wait() }
        return self
    }
}

/// The application behind a `GRPCServer`.
///
/// `handle` is called on the connection's event loop, once per call, after the whole request message has
/// arrived. It must not block: offerd's decisions take microseconds; a call that waits for I/O answers
/// ``GRPCUnaryReply/deferred(_:)`` and completes it later. If the call's deadline passes before the reply,
/// the transport answers `DEADLINE_EXCEEDED` instead.
public protocol GRPCUnaryService: Sendable {
    /// Answers one call. `allocator` is the connection's allocator, for building the response buffer.
    func handle(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply

    /// Whether calls on `path` are message streams: bidirectional streams answered one reply per request
    /// message, each message handed to ``handle(_:allocator:)`` as a call of its own, the stream ending once the
    /// client has half-closed and every message is answered (server reflection works this way). Asked once
    /// per call, after the request head; the default is `false` (unary).
    func isMessageStream(path: String) -> Bool
}

extension GRPCUnaryService {
    /// Every path is unary.
    public func isMessageStream(path: String) -> Bool {
        false
    }
}
