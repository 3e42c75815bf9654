import NIOCore

/// Reassembles the single length-prefixed message of a unary gRPC request from DATA chunks of any size.
///
/// The 5-byte prefix (1 flag byte, 4 bytes big-endian length) is checked before anything is buffered: a
/// compressed flag is refused, a length over `maxMessageBytes` is refused, and only then is exactly `length`
/// bytes of capacity reserved. The reader never grows past that reservation.
///
/// Choices, fixed here for the whole transport:
/// - a second message on a unary call is `INVALID_ARGUMENT` ("more than one message");
/// - a stream that ends before the prefix's length has arrived is `INVALID_ARGUMENT` (the client is wrong;
///   `INTERNAL` is kept for offerd's own bugs);
/// - a stream with no message at all is `INVALID_ARGUMENT`;
/// - a flag byte other than 0 or 1 is `INVALID_ARGUMENT`.
///
/// A message stream (``allowSeveralMessages()``) takes any number of messages instead: each completed one is
/// queued for ``nextMessage()`` and the reader starts over on the next prefix; at most
/// ``maxQueuedMessages`` wait at once (the owner takes them after every read, so only a burst of tiny
/// messages in one read reaches it).
struct GRPCMessageReader {
    private enum Phase {
        case readingPrefix
        case readingMessage
        case complete
        case failed
    }

    private let maxMessageBytes: Int
    private var phase: Phase = .readingPrefix
    private var prefixBytesSeen = 0
    private var compressionFlag: UInt8 = 0
    private var declaredLength = 0
    private var message: ByteBuffer?
    private var severalMessages = false
    /// Connect unary: the body is the bare message, with no prefix.
    private var bareBody = false
    /// Completed messages of a message stream, oldest first.
    private var completed: [ByteBuffer] = []

    /// Most completed messages a message stream holds before the owner takes them.
    static let maxQueuedMessages = 64

    /// Creates a reader that refuses messages longer than `maxMessageBytes`.
    init(maxMessageBytes: Int) {
        self.maxMessageBytes = maxMessageBytes
    }

    /// Takes the next bytes of the request body. Returns a rejection the first time the body turns out to be
    /// unacceptable; after that, further bytes are ignored.
    mutating func consume(_ bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> GRPCStreamRejection? {
        if bareBody {
            return consumeBare(bytes, allocator: allocator)
        }
        var offset = 0
        while offset < bytes.count {
            switch phase {
            case .readingPrefix:
                let byte = bytes[offset]
                offset += 1
                if prefixBytesSeen == 0 {
                    compressionFlag = byte
                } else {
                    declaredLength = declaredLength << 8 | Int(byte)
                }
                prefixBytesSeen += 1
                if prefixBytesSeen == 5, let rejection = prefixCompleted(allocator: allocator) {
                    phase = .failed
                    return rejection
                }
            case .readingMessage:
                let written = message?.readableBytes ?? 0
                let take = min(declaredLength - written, bytes.count - offset)
                message?.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
                offset += take
                if written + take == declaredLength, let rejection = messageCompleted() {
                    return rejection
                }
            case .complete:
                phase = .failed
                message = nil
                return .status(GRPCStatus(.invalidArgument, "unary request carried more than one message"))
            case .failed:
                return nil
            }
        }
        return nil
    }

    /// Takes `bytes` as the whole unary message when they are exactly that (an uncompressed prefix announcing
    /// the rest, within the limit) and nothing has been read before: the message is then `payload(5)`, the
    /// bytes after the prefix as they already sit in a received buffer, not a copy of them. Returns false and
    /// takes nothing otherwise (`payload` returning nil included); the caller then hands the bytes to
    /// ``consume(_:allocator:)``, which also answers every refusal.
    mutating func takeWholeMessage(_ bytes: UnsafeRawBufferPointer, payload: (_ droppingFirst: Int) -> ByteBuffer?)
        -> Bool
    {
        guard !bareBody, !severalMessages, phase == .readingPrefix, prefixBytesSeen == 0, bytes.count >= 5,
            bytes[0] == 0
        else {
            return false
        }
        let length = Int(bytes[1]) << 24 | Int(bytes[2]) << 16 | Int(bytes[3]) << 8 | Int(bytes[4])
        guard length == bytes.count - 5, length <= maxMessageBytes, let whole = payload(5),
            whole.readableBytes == length
        else {
            return false
        }
        message = whole
        compressionFlag = 0
        declaredLength = length
        prefixBytesSeen = 5
        phase = .complete
        return true
    }

    /// Convenience for tests and in-process callers.
    mutating func consume(_ bytes: [UInt8], allocator: ByteBufferAllocator) -> GRPCStreamRejection? {
        bytes.withUnsafeBytes { consume($0, allocator: allocator) }
    }

    /// The request body has ended: returns the message, or why there is none.
    mutating func finish() -> Result<ByteBuffer, GRPCStreamRejection> {
        switch phase {
        case .complete:
            if let message = message {
                self.message = nil
                phase = .failed
                return .success(message)
            }
            if bareBody {
                // An empty Connect body is the empty message.
                phase = .failed
                return .success(ByteBuffer())
            }
            return .failure(.status(GRPCStatus(.invalidArgument, "unary request message was already taken")))
        case .readingPrefix where prefixBytesSeen == 0:
            return .failure(.status(GRPCStatus(.invalidArgument, "unary request carried no message")))
        case .readingPrefix:
            return .failure(
                .status(
                    GRPCStatus(
                        .invalidArgument,
                        "request ended inside the message prefix (\(prefixBytesSeen) of 5 bytes)"
                    )
                )
            )
        case .readingMessage:
            let received = message?.readableBytes ?? 0
            return .failure(
                .status(
                    GRPCStatus(
                        .invalidArgument,
                        "request ended after \(received) of the \(declaredLength) message bytes "
                            + "its prefix announced"
                    )
                )
            )
        case .failed:
            return .failure(.status(GRPCStatus(.invalidArgument, "request message was already refused")))
        }
    }

    private mutating func prefixCompleted(allocator: ByteBufferAllocator) -> GRPCStreamRejection? {
        switch compressionFlag {
        case 0:
            break
        case 1:
            return .compressionUnsupported("compressed messages are not supported; send identity-encoded messages")
        default:
            return .status(GRPCStatus(.invalidArgument, "invalid message flag \(compressionFlag)"))
        }
        guard declaredLength <= maxMessageBytes else {
            return .status(
                GRPCStatus(
                    .resourceExhausted,
                    "request message of \(declaredLength) bytes exceeds the limit of \(maxMessageBytes) bytes"
                )
            )
        }
        message = allocator.buffer(capacity: declaredLength)
        if declaredLength == 0 {
            return messageCompleted()
        }
        phase = .readingMessage
        return nil
    }

    /// The message's last byte arrived: keep it (unary) or queue it and start over (message stream).
    private mutating func messageCompleted() -> GRPCStreamRejection? {
        guard severalMessages else {
            phase = .complete
            return nil
        }
        guard completed.count < Self.maxQueuedMessages, let message = message else {
            phase = .failed
            return .status(GRPCStatus(.resourceExhausted, "more than \(Self.maxQueuedMessages) messages in one read"))
        }
        completed.append(message)
        self.message = nil
        prefixBytesSeen = 0
        declaredLength = 0
        phase = .readingPrefix
        return nil
    }

    // MARK: - Bare bodies (Connect unary)

    /// Turns this reader into a Connect unary reader: the whole body is the message, at most
    /// `maxMessageBytes`, refused as soon as it grows past that.
    mutating func expectBareBody() {
        bareBody = true
        phase = .complete
    }

    private mutating func consumeBare(_ bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator)
        -> GRPCStreamRejection?
    {
        guard phase == .complete else {
            return nil
        }
        let received = message?.readableBytes ?? 0
        guard bytes.count <= maxMessageBytes - received else {
            phase = .failed
            message = nil
            return .status(
                GRPCStatus(
                    .resourceExhausted,
                    "request message of more than \(maxMessageBytes) bytes exceeds the limit"
                )
            )
        }
        if message == nil {
            message = allocator.buffer(capacity: min(max(bytes.count, 256), maxMessageBytes))
        }
        message?.writeBytes(bytes)
        return nil
    }

    // MARK: - Message streams

    /// Turns this reader into a message stream's: any number of messages, each queued when complete.
    mutating func allowSeveralMessages() {
        severalMessages = true
    }

    /// True when a completed message waits for ``nextMessage()``.
    var hasMessage: Bool {
        !completed.isEmpty
    }

    /// The oldest completed message of a message stream, if any.
    mutating func nextMessage() -> ByteBuffer? {
        completed.isEmpty ? nil : completed.removeFirst()
    }

    /// A message stream's request ended: nil when it ended between messages, else why it is wrong.
    func streamEndRejection() -> GRPCStreamRejection? {
        switch phase {
        case .readingPrefix where prefixBytesSeen == 0:
            return nil
        case .readingPrefix:
            return .status(
                GRPCStatus(
                    .invalidArgument, "request ended inside a message prefix (\(prefixBytesSeen) of 5 bytes)")
            )
        case .readingMessage:
            return .status(
                GRPCStatus(
                    .invalidArgument,
                    "request ended after \(message?.readableBytes ?? 0) of the \(declaredLength) message "
                        + "bytes its prefix announced"
                )
            )
        case .complete, .failed:
            return .status(GRPCStatus(.invalidArgument, "request message was already refused"))
        }
    }
}
