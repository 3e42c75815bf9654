import NIOCore
import Testing

@testable import OfferdTransport

/// A clock that says what the test sets.
private final class ManualClock: GRPCClock {
    var current = NIODeadline.uptimeNanoseconds(1_000_000_000)

    func now() -> NIODeadline {
        current
    }

    func advance(by amount: TimeAmount) {
        current = current + amount
    }
}

/// Every transition of the per-stream state machine, legal and illegal, without sockets or nghttp2.
@Suite("stream state machine")
struct GRPCServerStreamStateMachineTests {
    private static let allocator = ByteBufferAllocator()

    private static func machine(
        _ configure: (inout GRPCServerConfiguration) -> Void = { _ in }
    ) -> GRPCServerStreamStateMachine {
        var configuration = GRPCServerConfiguration()
        configure(&configuration)
        return GRPCServerStreamStateMachine(configuration: configuration)
    }

    private static func add(_ fields: [(String, String)], to machine: inout GRPCServerStreamStateMachine) {
        for (name, value) in fields {
            var name = name
            var value = value
            name.withUTF8 { nameBytes in
                value.withUTF8 { valueBytes in
                    machine.receivedHeaderField(
                        name: UnsafeRawBufferPointer(nameBytes), value: UnsafeRawBufferPointer(valueBytes))
                }
            }
        }
    }

    private static let validHead: [(String, String)] = [
        (":method", "POST"), (":scheme", "http"), (":path", "/test.Echo/Echo"), ("content-type", "application/grpc"),
    ]

    /// A machine that accepted a valid head (with `extra` fields) and is receiving the message.
    private static func receiving(
        extra: [(String, String)] = [],
        clock: ManualClock = ManualClock()
    ) -> (GRPCServerStreamStateMachine, GRPCServerStreamStateMachine.Action) {
        var machine = Self.machine()
        Self.add(Self.validHead + extra, to: &machine)
        let action = machine.receivedHeaders(endStream: false, clock: clock)
        return (machine, action)
    }

    private static func data(_ bytes: [UInt8], into machine: inout GRPCServerStreamStateMachine)
        -> GRPCServerStreamStateMachine.Action
    {
        bytes.withUnsafeBytes { machine.receivedData($0, allocator: Self.allocator) }
    }

    private static func message(_ payload: [UInt8]) -> [UInt8] {
        [0, 0, 0, 0, UInt8(payload.count)] + payload
    }

    // MARK: - Outcome helpers (Action is not Equatable: GRPCUnaryCall is a public type without it)

    private static func isNone(_ action: GRPCServerStreamStateMachine.Action) -> Bool {
        if case .none = action { return true }
        return false
    }

    private static func isQueued(_ action: GRPCServerStreamStateMachine.Action) -> Bool {
        if case .queueForDispatch = action { return true }
        return false
    }

    private static func answer(_ action: GRPCServerStreamStateMachine.Action) -> GRPCStreamRejection? {
        if case .answer(let rejection) = action { return rejection }
        return nil
    }

    private static func call(_ action: GRPCServerStreamStateMachine.Action) -> GRPCUnaryCall? {
        if case .dispatch(let call) = action { return call }
        return nil
    }

    private static let deadlineExceeded = GRPCStreamRejection.status(GRPCServerStreamStateMachine.deadlineExceeded)

    // MARK: - The ordinary call

    @Test("headers, one message, end of stream: dispatch, then respond; the answer sent asks for nothing more")
    func ordinaryCall() throws {
        let clock = ManualClock()
        var (machine, headersAction) = Self.receiving(clock: clock)
        #expect(Self.isNone(headersAction))
        #expect(machine.phase == .receivingMessage)
        #expect(Self.isNone(Self.data(Self.message([1, 2, 3]), into: &machine)))
        #expect(Self.isQueued(machine.receivedEndOfStream()))
        #expect(machine.phase == .awaitingDispatch)
        let call = try #require(Self.call(machine.dispatch(clock: clock)))
        #expect(call.path == "/test.Echo/Echo")
        #expect(Array(call.message.readableBytesView) == [1, 2, 3])
        #expect(call.deadline == nil)
        #expect(machine.phase == .dispatched)
        let reply = machine.replyReady(.message(ByteBuffer(bytes: [9])), clock: clock)
        guard case .respond(let payload) = reply else {
            Issue.record("expected respond, got \(reply)")
            return
        }
        #expect(Array(payload.readableBytesView) == [9])
        #expect(machine.phase == .responding)
        #expect(Self.isNone(machine.answerSent()))
        machine.closed()
        #expect(machine.phase == .closed)
    }

    @Test("a message split at every byte is reassembled")
    func messageSplitAtEveryByte() throws {
        let bytes = Self.message(Array(0..<20))
        for split in 0...bytes.count {
            var (machine, _) = Self.receiving()
            #expect(Self.isNone(Self.data(Array(bytes[..<split]), into: &machine)))
            #expect(Self.isNone(Self.data(Array(bytes[split...]), into: &machine)))
            #expect(Self.isQueued(machine.receivedEndOfStream()))
            let call = try #require(Self.call(machine.dispatch(clock: ManualClock())))
            #expect(Array(call.message.readableBytesView) == Array(0..<20))
        }
    }

    @Test("a failed reply is answered in one header block")
    func failedReply() throws {
        let clock = ManualClock()
        var (machine, _) = Self.receiving(clock: clock)
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        _ = try #require(Self.call(machine.dispatch(clock: clock)))
        let status = GRPCStatus(.notFound, "no such thing")
        #expect(Self.answer(machine.replyReady(.failure(status), clock: clock)) == .status(status))
        #expect(machine.phase == .answered)
    }

    @Test("headers ending the stream: queued at once, and dispatch finds no message")
    func headersEndingTheStream() {
        var machine = Self.machine()
        Self.add(Self.validHead, to: &machine)
        #expect(Self.isQueued(machine.receivedHeaders(endStream: true, clock: ManualClock())))
        #expect(machine.requestEnded)
        let answer = Self.answer(machine.dispatch(clock: ManualClock()))
        #expect(answer?.grpcStatus?.code == .invalidArgument)
        #expect(machine.phase == .answered)
        // The client had already finished: nothing to stop.
        #expect(Self.isNone(machine.answerSent()))
    }

    // MARK: - Refusals

    @Test("a refused head is answered at once and the upload is stopped once the answer is out")
    func refusedHead() {
        var machine = Self.machine()
        Self.add([(":method", "GET"), (":path", "/x")], to: &machine)
        #expect(Self.answer(machine.receivedHeaders(endStream: false, clock: ManualClock())) == .methodNotAllowed)
        #expect(machine.phase == .answered)
        // Body bytes after the answer are dropped.
        #expect(Self.isNone(Self.data([0, 0, 0, 0, 1, 1], into: &machine)))
        guard case .stopUpload = machine.answerSent() else {
            Issue.record("expected stopUpload")
            return
        }
        #expect(machine.requestEnded)
        // Said once.
        #expect(Self.isNone(machine.answerSent()))
        #expect(Self.isNone(machine.receivedEndOfStream()))
    }

    @Test("after an early answer the rest of a small declared body is left to arrive; a large one is stopped")
    func earlyAnswerWithDeclaredBody() {
        let limit = GRPCServerStreamStateMachine.maxBodyBytesLeftToFinish
        var small = Self.machine()
        Self.add([(":method", "GET"), (":path", "/x"), ("content-length", String(limit + 10))], to: &small)
        #expect(Self.answer(small.receivedHeaders(endStream: false, clock: ManualClock())) == .methodNotAllowed)
        // Ten bytes arrived before the answer went out: what is left is exactly the limit.
        #expect(Self.isNone(Self.data(Array(repeating: 0, count: 10), into: &small)))
        #expect(Self.isNone(small.answerSent()))
        #expect(!small.requestEnded)
        #expect(Self.isNone(Self.data([1, 2, 3], into: &small)))
        #expect(Self.isNone(small.receivedEndOfStream()))
        #expect(small.requestEnded)

        var large = Self.machine()
        Self.add([(":method", "GET"), (":path", "/x"), ("content-length", String(limit + 10))], to: &large)
        #expect(Self.answer(large.receivedHeaders(endStream: false, clock: ManualClock())) == .methodNotAllowed)
        #expect(Self.isNone(Self.data(Array(repeating: 0, count: 9), into: &large)))
        guard case .stopUpload = large.answerSent() else {
            Issue.record("expected stopUpload: one byte more than the limit is left")
            return
        }

        // A malformed content-length declares nothing: the upload is stopped.
        var malformed = Self.machine()
        Self.add([(":method", "GET"), (":path", "/x"), ("content-length", "1x")], to: &malformed)
        #expect(Self.answer(malformed.receivedHeaders(endStream: false, clock: ManualClock())) == .methodNotAllowed)
        guard case .stopUpload = malformed.answerSent() else {
            Issue.record("expected stopUpload for an undeclared length")
            return
        }
    }

    @Test("a prefix over the limit is answered before the body arrives")
    func oversizedPrefix() {
        var machine = Self.machine { $0.maxMessageBytes = 10 }
        Self.add(Self.validHead, to: &machine)
        _ = machine.receivedHeaders(endStream: false, clock: ManualClock())
        let answer = Self.answer(Self.data([0, 0, 0, 0, 11], into: &machine))
        #expect(answer?.grpcStatus?.code == .resourceExhausted)
        #expect(Self.isNone(Self.data([1, 2, 3], into: &machine)))
        #expect(Self.isNone(machine.receivedEndOfStream()))
        #expect(Self.isNone(machine.dispatch(clock: ManualClock())))
    }

    @Test("a second message is INVALID_ARGUMENT")
    func secondMessage() {
        var (machine, _) = Self.receiving()
        #expect(Self.isNone(Self.data(Self.message([1]), into: &machine)))
        #expect(Self.answer(Self.data(Self.message([2]), into: &machine))?.grpcStatus?.code == .invalidArgument)
    }

    // MARK: - Illegal events

    @Test("data after the end of the stream is ignored")
    func dataAfterEndOfStream() throws {
        var (machine, _) = Self.receiving()
        _ = Self.data(Self.message([1]), into: &machine)
        #expect(Self.isQueued(machine.receivedEndOfStream()))
        #expect(Self.isNone(Self.data(Self.message([2]), into: &machine)))
        #expect(Self.isNone(machine.receivedEndOfStream()))
        let call = try #require(Self.call(machine.dispatch(clock: ManualClock())))
        #expect(Array(call.message.readableBytesView) == [1])
    }

    @Test("a second header block: trailers ending the stream end it, fields of it are ignored")
    func secondHeaders() throws {
        var (machine, _) = Self.receiving()
        _ = Self.data(Self.message([1]), into: &machine)
        // A field arriving now is not part of the request head.
        Self.add([(":path", "/evil.Path/Switch")], to: &machine)
        #expect(Self.isNone(machine.receivedHeaders(endStream: false, clock: ManualClock())))
        #expect(machine.phase == .receivingMessage)
        #expect(Self.isQueued(machine.receivedHeaders(endStream: true, clock: ManualClock())))
        let call = try #require(Self.call(machine.dispatch(clock: ManualClock())))
        #expect(call.path == "/test.Echo/Echo")
    }

    @Test("dispatch twice, or before the request is complete, does nothing")
    func dispatchOutOfTurn() throws {
        var (machine, _) = Self.receiving()
        #expect(Self.isNone(machine.dispatch(clock: ManualClock())))
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        _ = try #require(Self.call(machine.dispatch(clock: ManualClock())))
        #expect(Self.isNone(machine.dispatch(clock: ManualClock())))
    }

    @Test("a reply when nothing was dispatched is dropped")
    func replyOutOfTurn() {
        var (machine, _) = Self.receiving()
        #expect(Self.isNone(machine.replyReady(.message(ByteBuffer()), clock: ManualClock())))
        #expect(machine.phase == .receivingMessage)
    }

    @Test("reset mid-call: every later event is ignored, a late reply too")
    func resetMidCall() throws {
        let clock = ManualClock()
        var (machine, _) = Self.receiving(extra: [("grpc-timeout", "1S")], clock: clock)
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        _ = try #require(Self.call(machine.dispatch(clock: clock)))
        machine.closed()
        #expect(Self.isNone(machine.replyReady(.message(ByteBuffer(bytes: [1])), clock: clock)))
        #expect(Self.isNone(machine.deadlineReached()))
        #expect(Self.isNone(machine.answerSent()))
        #expect(Self.isNone(Self.data([1], into: &machine)))
        #expect(machine.phase == .closed)
    }

    @Test("reset while receiving: the upload and the deadline are forgotten")
    func resetWhileReceiving() {
        var (machine, _) = Self.receiving(extra: [("grpc-timeout", "1S")])
        machine.closed()
        #expect(Self.isNone(Self.data(Self.message([1]), into: &machine)))
        #expect(Self.isNone(machine.receivedEndOfStream()))
        #expect(Self.isNone(machine.dispatch(clock: ManualClock())))
        #expect(Self.isNone(machine.deadlineReached()))
    }

    // MARK: - Deadlines

    @Test("grpc-timeout arms a deadline on the injected clock")
    func armsDeadline() {
        let clock = ManualClock()
        let start = clock.current
        let (machine, action) = Self.receiving(extra: [("grpc-timeout", "150m")], clock: clock)
        guard case .armDeadline(let deadline) = action else {
            Issue.record("expected armDeadline, got \(action)")
            return
        }
        #expect(deadline == start + .milliseconds(150))
        #expect(machine.deadline == deadline)
    }

    @Test("deadline before dispatch: DEADLINE_EXCEEDED, the service is never called, the upload stopped")
    func deadlineBeforeDispatch() {
        var (machine, _) = Self.receiving(extra: [("grpc-timeout", "100m")])
        _ = Self.data([0, 0, 0, 0, 10, 1], into: &machine)
        #expect(Self.answer(machine.deadlineReached()) == Self.deadlineExceeded)
        #expect(Self.isNone(machine.receivedEndOfStream()))
        #expect(Self.isNone(machine.dispatch(clock: ManualClock())))
        #expect(Self.isNone(machine.deadlineReached()))
        #expect(machine.requestEnded)
    }

    @Test("deadline before dispatch, found at dispatch: the service is not called")
    func deadlinePassedAtDispatch() {
        let clock = ManualClock()
        var (machine, _) = Self.receiving(extra: [("grpc-timeout", "100m")], clock: clock)
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        clock.advance(by: .milliseconds(100))
        #expect(Self.answer(machine.dispatch(clock: clock)) == Self.deadlineExceeded)
    }

    @Test("a zero grpc-timeout is refused at dispatch, the clock unmoved; a missing body is reported first")
    func zeroTimeout() {
        let clock = ManualClock()
        var (machine, action) = Self.receiving(extra: [("grpc-timeout", "0S")], clock: clock)
        guard case .armDeadline(let deadline) = action else {
            Issue.record("expected armDeadline, got \(action)")
            return
        }
        #expect(deadline == clock.current)
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        #expect(Self.answer(machine.dispatch(clock: clock)) == Self.deadlineExceeded)

        var headersOnly = Self.machine()
        Self.add(Self.validHead + [("grpc-timeout", "0S")], to: &headersOnly)
        #expect(Self.isQueued(headersOnly.receivedHeaders(endStream: true, clock: clock)))
        #expect(Self.answer(headersOnly.dispatch(clock: clock))?.grpcStatus?.code == .invalidArgument)
    }

    @Test("deadline one tick short of passing: the call is dispatched and its reply sent")
    func deadlineNotYetPassed() throws {
        let clock = ManualClock()
        var (machine, _) = Self.receiving(extra: [("grpc-timeout", "100m")], clock: clock)
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        clock.advance(by: .milliseconds(100) - .nanoseconds(1))
        let call = try #require(Self.call(machine.dispatch(clock: clock)))
        #expect(call.deadline == machine.deadline)
        guard case .respond = machine.replyReady(.message(ByteBuffer()), clock: clock) else {
            Issue.record("expected respond")
            return
        }
    }

    @Test("deadline passing while the service runs: the reply is replaced by DEADLINE_EXCEEDED")
    func deadlineAfterDispatch() throws {
        let clock = ManualClock()
        var (machine, _) = Self.receiving(extra: [("grpc-timeout", "10m")], clock: clock)
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        _ = try #require(Self.call(machine.dispatch(clock: clock)))
        clock.advance(by: .milliseconds(10))
        #expect(Self.answer(machine.replyReady(.message(ByteBuffer()), clock: clock)) == Self.deadlineExceeded)
    }

    @Test("deadline timer while dispatched answers at once; the late reply is dropped")
    func deadlineTimerWhileDispatched() throws {
        let clock = ManualClock()
        var (machine, _) = Self.receiving(extra: [("grpc-timeout", "10m")], clock: clock)
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        _ = try #require(Self.call(machine.dispatch(clock: clock)))
        #expect(Self.answer(machine.deadlineReached()) == Self.deadlineExceeded)
        #expect(Self.isNone(machine.replyReady(.message(ByteBuffer()), clock: clock)))
    }

    @Test("deadline after the answer does nothing")
    func deadlineAfterAnswer() throws {
        let clock = ManualClock()
        var (machine, _) = Self.receiving(extra: [("grpc-timeout", "10m")], clock: clock)
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        _ = try #require(Self.call(machine.dispatch(clock: clock)))
        guard case .respond = machine.replyReady(.message(ByteBuffer()), clock: clock) else {
            Issue.record("expected respond")
            return
        }
        clock.advance(by: .seconds(1))
        #expect(Self.isNone(machine.deadlineReached()))
        #expect(machine.phase == .responding)
    }

    @Test("no deadline without grpc-timeout: time never refuses the call")
    func noDeadline() throws {
        let clock = ManualClock()
        var (machine, action) = Self.receiving(clock: clock)
        #expect(Self.isNone(action))
        _ = Self.data(Self.message([1]), into: &machine)
        _ = machine.receivedEndOfStream()
        clock.advance(by: .hours(1000))
        _ = try #require(Self.call(machine.dispatch(clock: clock)))
        clock.advance(by: .hours(1000))
        guard case .respond = machine.replyReady(.message(ByteBuffer()), clock: clock) else {
            Issue.record("expected respond")
            return
        }
    }
}
