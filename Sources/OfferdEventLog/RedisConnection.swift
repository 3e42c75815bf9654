// The only file of the module that imports hiredis. hiredis formats every command (redisCommandArgv, binary
// safe: each argument has its length) and parses every reply (its reader); this file only copies replies into
// Swift values and turns hiredis's errors into EventLogError, in one function.
private import CHiredis

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A Redis reply, copied out of hiredis's reply object (which is freed at once).
enum RedisValue: Hashable, Sendable {
    case string([UInt8])
    case status(String)
    case integer(Int64)
    case null
    case array([RedisValue])
    /// An error reply (`-ERR ...`): Redis refused the command.
    case error(String)

    /// The bytes of a bulk string or status reply.
    var bytes: [UInt8]? {
        switch self {
        case .string(let bytes): bytes
        case .status(let text): Array(text.utf8)
        default: nil
        }
    }

    var text: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }
}

/// How long a connection waits to connect and for each reply.
public struct RedisTimeouts: Hashable, Sendable {
    /// The longest a connection attempt may take.
    public var connect: Duration
    /// The longest a command may wait for its reply (a blocking `XREAD` waits its block time on top).
    public var command: Duration

    /// One second each: SPEC 9.1 wants RecordEvents to answer UNAVAILABLE within a second of an outage.
    public init(connect: Duration = .seconds(1), command: Duration = .seconds(1)) {
        self.connect = connect
        self.command = command
    }
}

/// One blocking connection to Redis: the single Swift owner of one `redisContext`.
///
/// Not thread-safe: its owner calls it under a lock, from one thread at a time. It connects on the first
/// command (and `AUTH`s and `SELECT`s as configured); any connection error frees the context and throws
/// ``EventLogError/unavailable(_:)``, and the next command connects anew. A command whose reply was lost may
/// still have run on the server.
final class RedisConnection {
    private let configuration: RedisEventLogConfiguration
    private let timeouts: RedisTimeouts
    // The context, when connected. hiredis's structure is only read here; it is freed only by `disconnect`.
    private var context: UnsafeMutablePointer<redisContext>?
    /// The socket timeout set on the context now, to skip redundant `setsockopt`s.
    private var currentTimeout: Duration?

    init(configuration: RedisEventLogConfiguration, timeouts: RedisTimeouts) {
        self.configuration = configuration
        self.timeouts = timeouts
    }

    deinit { disconnect() }

    /// Frees the context; the next command connects again.
    func disconnect() {
        if let context { redisFree(context) }
        context = nil
        currentTimeout = nil
    }

    /// Sends one command and returns its reply. `extraWait` lengthens the reply timeout (for `XREAD BLOCK`).
    /// An error reply is returned as ``RedisValue/error(_:)``, not thrown; connection failures are thrown.
    func command(_ arguments: [[UInt8]], extraWait: Duration = .zero) throws(EventLogError) -> RedisValue {
        precondition(!arguments.isEmpty)
        let context = try connected()
        try setTimeout(timeouts.command + extraWait, on: context)
        return try withSIGPIPEBlocked { () throws(EventLogError) -> RedisValue in
            try send(arguments, on: context)
        }
    }

    private func send(_ arguments: [[UInt8]], on context: UnsafeMutablePointer<redisContext>) throws(EventLogError)
        -> RedisValue
    {
        // One buffer for all arguments, so one `withUnsafeBytes` gives stable pointers to each.
        let joined = arguments.flatMap { $0 }
        var lengths = arguments.map { $0.count }
        let reply: UnsafeMutableRawPointer? = joined.withUnsafeBytes { raw in
            // An empty buffer may have no base address; hiredis reads no byte of a zero-length argument, but it
            // must still get a valid pointer.
            let base = raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(arguments.count)
            var offset = 0
            for argument in arguments {
                pointers.append((base + offset).assumingMemoryBound(to: CChar.self))
                offset += argument.count
            }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeMutableBufferPointer { argvLengths in
                    redisCommandArgv(context, Int32(arguments.count), argv.baseAddress, argvLengths.baseAddress)
                }
            }
        }
        guard let reply else {
            throw hiredisFailure(command: arguments[0], context: context, reply: nil)
        }
        let typed = reply.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(reply) }
        return Self.copy(typed)
    }

    /// The connected context, connecting (with AUTH and SELECT) when there is none.
    private func connected() throws(EventLogError) -> UnsafeMutablePointer<redisContext> {
        if let context { return context }
        let endpoint = "\(configuration.host):\(configuration.port)"
        guard
            let fresh = redisConnectWithTimeout(
                configuration.host, Int32(configuration.port), timeval(timeouts.connect))
        else {
            throw EventLogError.unavailable("connect \(endpoint): out of memory")
        }
        guard fresh.pointee.err == 0 else {
            let failure = hiredisFailure(command: Array("connect \(endpoint)".utf8), context: fresh, reply: nil)
            redisFree(fresh)
            throw failure
        }
        context = fresh
        _ = redisEnableKeepAlive(fresh)
        if let password = configuration.password {
            var auth: [[UInt8]] = [Array("AUTH".utf8)]
            if let user = configuration.user { auth.append(Array(user.utf8)) }
            auth.append(Array(password.utf8))
            try expectOK(command(auth), command: "AUTH")
        }
        if configuration.database != 0 {
            try expectOK(command([Array("SELECT".utf8), Array("\(configuration.database)".utf8)]), command: "SELECT")
        }
        return fresh
    }

    private func expectOK(_ reply: RedisValue, command: String) throws(EventLogError) {
        if case .status = reply { return }
        // A refused AUTH or SELECT leaves a connection that would run the log's commands as the wrong user or
        // on the wrong database: drop it.
        disconnect()
        throw hiredisFailure(command: Array(command.utf8), context: nil, reply: reply)
    }

    private func setTimeout(_ timeout: Duration, on context: UnsafeMutablePointer<redisContext>) throws(EventLogError) {
        guard currentTimeout != timeout else { return }
        guard redisSetTimeout(context, timeval(timeout)) == 0 else {
            throw hiredisFailure(command: Array("setsockopt".utf8), context: context, reply: nil)
        }
        currentTimeout = timeout
    }

    /// The one place where hiredis's failures become Swift errors.
    ///
    /// - A connection failure (`context.err`: I/O, EOF, protocol, timeout) frees the connection and is
    ///   ``EventLogError/unavailable(_:)``: the next command reconnects.
    /// - An error reply is ``EventLogError/rejected(command:message:)``, except the replies of a server that is
    ///   up but cannot serve yet (`LOADING` after a restart, `MASTERDOWN`, `TRYAGAIN`, `BUSY`), which are
    ///   ``EventLogError/unavailable(_:)``.
    private func hiredisFailure(
        command: [UInt8], context failed: UnsafeMutablePointer<redisContext>?, reply: RedisValue?
    )
        -> EventLogError
    {
        let name = String(decoding: command, as: UTF8.self)
        if case .error(let message)? = reply { return Self.replyError(command: name, message: message) }
        var reason = "unknown error"
        if let failed {
            reason = withUnsafeBytes(of: failed.pointee.errstr) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if failed.pointee.err == REDIS_ERR_EOF { reason = "connection closed by the server" }
        }
        if failed != nil && failed == context { disconnect() }
        return .unavailable("\(name): \(reason)")
    }

    /// An error reply as a Swift error: the replies of a server that is up but cannot serve yet are
    /// `unavailable`, every other one is `rejected`.
    static func replyError(command: String, message: String) -> EventLogError {
        let transient = ["LOADING", "MASTERDOWN", "TRYAGAIN", "BUSY"]
        if transient.contains(where: { message.hasPrefix($0 + " ") }) {
            return .unavailable("\(command): \(message)")
        }
        return .rejected(command: command, message: message)
    }

    /// Copies a reply tree into Swift values (hiredis's reader bounds its nesting depth).
    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            return .string(bytes(value.str, value.len))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_ERROR:
            return .error(String(decoding: bytes(value.str, value.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(value.integer)
        case REDIS_REPLY_ARRAY:
            var elements: [RedisValue] = []
            elements.reserveCapacity(value.elements)
            for position in 0..<value.elements {
                guard let element = value.element[position] else {
                    elements.append(.null)
                    continue
                }
                elements.append(copy(element))
            }
            return .array(elements)
        default:
            return .null
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ count: Int) -> [UInt8] {
        guard let pointer, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }
}

extension timeval {
    /// A duration as a `timeval`, at least 1 ms (a zero timeout means "none" to the socket layer).
    fileprivate init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let microseconds = max(1000, max(0, seconds) * 1_000_000 + max(0, attoseconds) / 1_000_000_000_000)
        self.init(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
    }
}
