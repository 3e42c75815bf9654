import NIOCore
import Testing

@testable import OfferdTransport

/// Message streams (one reply per request message): every transition, without sockets or nghttp2.
@Suite("message stream state machine")
struct MessageStreamStateMachineTests {
    private static let allocator = ByteBufferAllocator()

    private struct FixedClock: GRPCClock {
        var current = NIODeadline.uptimeNanoseconds(1_000_000_000)
        func now() -> NIODeadline { current }
    }

    private static func streaming(timeout: String? = nil, clock: FixedClock = FixedClock())
        -> (GRPCServerStreamStateMachine, GRPCServerStreamStateMachine.Action)
    {
        var machine = GRPCServerStreamStateMachine(configuration: GRPCServerConfiguration())
        var head: [(String, String)] = [
            (":method", "POST"), (":path", "/test.Reflect/Info"), ("content-type", "application/grpc"),
        ]
        if let timeout { head.append(("grpc-timeout", timeout)) }
        for (name, value) in head {
            var name = name
            var value = value
            name.withUTF8 { n in
                value.withUTF8 { v in
                    machine.receivedHeaderField(name: UnsafeRawBufferPointer(n), value: UnsafeRawBufferPointer(v))
                }
            }
        }
        let action = machine.receivedHeaders(endStream: false, clock: clock) { $0 == "/test.Reflect/Info" }
        return (machine, action)
    }

    private static func frame(_ payload: [UInt8]) -> [UInt8] {
        [0, 0, 0, 0, UInt8(payload.count)] + payload
    }

    private static func feed(_ bytes: [UInt8], _ machine: inout GRPCServerStreamStateMachine)
        -> GRPCServerStreamStateMachine.Action
    {
        bytes.withUnsafeBytes { machine.receivedData($0, allocator: Self.allocator) }
    }

    private static func dispatchedPayload(_ action: GRPCServerStreamStateMachine.Action) -> [UInt8]? {
        guard case .dispatch(let call) = action else { return nil }
        return Array(call.message.readableBytesView)
    }

    private static func kind(_ action: GRPCServerStreamStateMachine.Action) -> String {
        switch action {
        case .none: "none"
        case .armDeadline: "armDeadline"
        case .queueForDispatch: "queue"
        case .dispatch: "dispatch"
        case .respond: "respond"
        case .answer(let rejection): "answer \(rejection.grpcStatus?.code.rawValue ?? -1)"
        case .stopUpload: "stopUpload"
        case .sendMessage: "send"
        case .finish(let status): "finish \(status.code.rawValue)"
        }
    }

    private static func reply(_ bytes: [UInt8]) -> GRPCUnaryReply {
        var buffer = Self.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return .message(buffer)
    }

    @Test("the path the service names is a message stream; others stay unary")
    func chosenByPath() {
        let (machine, action) = Self.streaming()
        #expect(machine.isMessageStream)
        #expect(machine.phase == .streaming)
        #expect(Self.kind(action) == "none")
        var unary = GRPCServerStreamStateMachine(configuration: GRPCServerConfiguration())
        _ = unary.receivedHeaders(endStream: false, clock: FixedClock()) { _ in false }
        #expect(!unary.isMessageStream)
    }

    @Test("two messages in one read: two calls, two replies in order, trailers after the half-close")
    func twoMessagesThenEnd() {
        let clock = FixedClock()
        var (machine, _) = Self.streaming()
        #expect(Self.kind(Self.feed(Self.frame([1]) + Self.frame([2, 2]), &machine)) == "queue")
        #expect(Self.dispatchedPayload(machine.dispatch(clock: clock)) == [1])
        #expect(Self.kind(machine.replyReady(Self.reply([10]), clock: clock)) == "send")
        #expect(Self.dispatchedPayload(machine.dispatch(clock: clock)) == [2, 2])
        #expect(Self.kind(machine.replyReady(Self.reply([20]), clock: clock)) == "send")
        // Nothing queued and the client still open: wait.
        #expect(Self.kind(machine.dispatch(clock: clock)) == "none")
        #expect(Self.kind(machine.receivedEndOfStream()) == "queue")
        #expect(Self.kind(machine.dispatch(clock: clock)) == "finish 0")
        #expect(machine.phase == .responding)
        #expect(Self.kind(machine.answerSent()) == "none")
    }

    @Test("a message split at every byte is dispatched once, whole")
    func splitAtEveryByte() {
        let bytes = Self.frame([7, 8, 9])
        for split in 1..<bytes.count {
            var (machine, _) = Self.streaming()
            #expect(Self.kind(Self.feed(Array(bytes[..<split]), &machine)) == "none")
            #expect(Self.kind(Self.feed(Array(bytes[split...]), &machine)) == "queue")
            #expect(Self.dispatchedPayload(machine.dispatch(clock: FixedClock())) == [7, 8, 9])
        }
    }

    @Test("a second queue request while one is pending is not repeated")
    func queuedOnce() {
        var (machine, _) = Self.streaming()
        #expect(Self.kind(Self.feed(Self.frame([1]), &machine)) == "queue")
        #expect(Self.kind(Self.feed(Self.frame([2]), &machine)) == "none")
        #expect(Self.kind(machine.receivedEndOfStream()) == "none")
    }

    @Test("no message at all: Trailers-Only OK")
    func emptyStream() {
        var (machine, _) = Self.streaming()
        #expect(Self.kind(machine.receivedEndOfStream()) == "queue")
        #expect(Self.kind(machine.dispatch(clock: FixedClock())) == "answer 0")
    }

    @Test("a failure reply before any message is Trailers-Only; after one, trailers")
    func failureReply() {
        let clock = FixedClock()
        var (first, _) = Self.streaming()
        _ = Self.feed(Self.frame([1]), &first)
        _ = first.dispatch(clock: clock)
        #expect(Self.kind(first.replyReady(.failure(GRPCStatus(.invalidArgument, "bad")), clock: clock)) == "answer 3")

        var (later, _) = Self.streaming()
        _ = Self.feed(Self.frame([1]) + Self.frame([2]), &later)
        _ = later.dispatch(clock: clock)
        _ = later.replyReady(Self.reply([1]), clock: clock)
        _ = later.dispatch(clock: clock)
        #expect(Self.kind(later.replyReady(.failure(GRPCStatus(.invalidArgument, "bad")), clock: clock)) == "finish 3")
        // The client is still uploading: told to stop once the trailers are out.
        #expect(Self.kind(later.answerSent()) == "stopUpload")
    }

    @Test("the stream ends inside a message: INVALID_ARGUMENT after the replies")
    func truncatedAtEnd() {
        let clock = FixedClock()
        var (machine, _) = Self.streaming()
        _ = Self.feed(Self.frame([1]) + [0, 0, 0], &machine)
        _ = machine.dispatch(clock: clock)
        _ = machine.replyReady(Self.reply([1]), clock: clock)
        _ = machine.receivedEndOfStream()
        #expect(Self.kind(machine.dispatch(clock: clock)) == "finish 3")
    }

    @Test("an oversized message is refused from its prefix, mid-stream as trailers")
    func oversized() {
        let clock = FixedClock()
        var (machine, _) = Self.streaming()
        _ = Self.feed(Self.frame([1]), &machine)
        _ = machine.dispatch(clock: clock)
        _ = machine.replyReady(Self.reply([1]), clock: clock)
        #expect(Self.kind(Self.feed([0, 0x7F, 0, 0, 0], &machine)) == "finish 8")
    }

    @Test("more queued messages than the bound in one read: RESOURCE_EXHAUSTED")
    func queueBound() {
        var (machine, _) = Self.streaming()
        let burst = (0...GRPCMessageReader.maxQueuedMessages).flatMap { _ in Self.frame([]) }
        #expect(Self.kind(Self.feed(burst, &machine)) == "answer 8")
    }

    @Test("the deadline covers the whole stream")
    func deadline() {
        var clock = FixedClock()
        var (machine, action) = Self.streaming(timeout: "1S", clock: clock)
        #expect(Self.kind(action) == "armDeadline")
        _ = Self.feed(Self.frame([1]), &machine)
        _ = machine.dispatch(clock: clock)
        _ = machine.replyReady(Self.reply([1]), clock: clock)
        #expect(Self.kind(machine.deadlineReached()) == "finish 4")
        #expect(Self.kind(machine.deadlineReached()) == "none")

        var (late, _) = Self.streaming(timeout: "1S", clock: clock)
        _ = Self.feed(Self.frame([1]), &late)
        clock.current = clock.current + .seconds(2)
        #expect(Self.kind(late.dispatch(clock: clock)) == "answer 4")
    }

    @Test("after the end, nothing more happens")
    func closedIgnoresEverything() {
        var (machine, _) = Self.streaming()
        machine.closed()
        #expect(Self.kind(Self.feed(Self.frame([1]), &machine)) == "none")
        #expect(Self.kind(machine.dispatch(clock: FixedClock())) == "none")
        #expect(Self.kind(machine.receivedEndOfStream()) == "none")
    }
}
