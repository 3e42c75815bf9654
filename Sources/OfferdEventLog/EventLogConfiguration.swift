/// A value of `--events` that cannot be used, with what is wrong in words for the command line.
public struct EventLogConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// Where the event log is (SPEC 9.1): the parsed value of `offerd serve --events LOG`.
public enum EventLogConfiguration: Hashable, Sendable {
    /// `file:PATH`: an append-only file this server alone writes.
    case file(path: String)
    /// `redis://...`: a Redis or Valkey stream shared by many servers.
    case redis(RedisEventLogConfiguration)
    /// `none`: no log.
    case none

    /// The default value of `--events`.
    public static let defaultValue = "file:offerd-events.log"

    /// Parses `file:PATH`, `redis://[USER:PASSWORD@]HOST:PORT[/DB][?key=KEY]` or `none`. `rediss://` is refused:
    /// this build's hiredis (Debian 12's 0.14.1) has no TLS.
    public init(parsing value: String) throws(EventLogConfigurationError) {
        if value == "none" {
            self = .none
        } else if value.hasPrefix("file:") {
            let path = String(value.dropFirst("file:".count))
            guard !path.isEmpty else { throw EventLogConfigurationError("--events file: needs a path (file:PATH)") }
            self = .file(path: path)
        } else if value.hasPrefix("redis://") {
            self = .redis(try RedisEventLogConfiguration(url: value))
        } else if value.hasPrefix("rediss://") {
            throw EventLogConfigurationError(
                "TLS to Redis is not supported by this build (its hiredis has no TLS); use redis:// on a trusted "
                    + "network or a local TLS tunnel")
        } else {
            throw EventLogConfigurationError(
                "--events \(value): expected file:PATH, redis://[USER:PASSWORD@]HOST:PORT[/DB][?key=KEY] or none")
        }
    }

    /// Opens the log this configuration names; nil for `none`. A Redis log connects on its first call.
    public func open(redisTimeouts: RedisTimeouts = RedisTimeouts()) throws(EventLogError) -> (any EventLog)? {
        switch self {
        case .file(let path): try FileEventLog(path: path)
        case .redis(let configuration): RedisStreamEventLog(configuration: configuration, timeouts: redisTimeouts)
        case .none: nil
        }
    }
}

/// Where a Redis event log is: `redis://[USER:PASSWORD@]HOST:PORT[/DB][?key=KEY]`.
///
/// The user, the password and the key may be percent-encoded (`%40` for `@`). The port defaults to 6379, the
/// database to 0, the key to ``defaultKey``. An IPv6 host is written in brackets (`redis://[::1]:6379`).
public struct RedisEventLogConfiguration: Hashable, Sendable, CustomStringConvertible {
    /// The stream key when the URL names none.
    public static let defaultKey = "offerd:events"

    public var host: String
    public var port: Int
    /// The ACL user (Redis 6+); nil for the default user.
    public var user: String?
    public var password: String?
    public var database: Int
    public var key: String

    public init(
        host: String, port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0,
        key: String = RedisEventLogConfiguration.defaultKey
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.key = key
    }

    /// The URL without the password, for logs and messages.
    public var description: String {
        let credentials = password == nil ? "" : "\(user ?? ""):***@"
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "redis://\(credentials)\(shownHost):\(port)/\(database)?key=\(key)"
    }

    /// Parses a `redis://` URL, with an error that names the part that is wrong.
    public init(url: String) throws(EventLogConfigurationError) {
        guard url.hasPrefix("redis://") else { throw EventLogConfigurationError("\(url): not a redis:// URL") }
        func fail(_ what: String) -> EventLogConfigurationError {
            EventLogConfigurationError("redis URL \(Self.redacted(url)): \(what)")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        guard !rest.contains("#") else { throw fail("a fragment (#) is not allowed") }

        var key = Self.defaultKey
        if let question = rest.firstIndex(of: "?") {
            let query = rest[rest.index(after: question)...]
            rest = rest[..<question]
            var seenKey = false
            for parameter in query.split(separator: "&", omittingEmptySubsequences: false) {
                guard let equals = parameter.firstIndex(of: "="), parameter[..<equals] == "key" else {
                    throw fail("unknown query parameter '\(parameter)' (only key=KEY is accepted)")
                }
                guard !seenKey else { throw fail("key= given twice") }
                seenKey = true
                guard let decoded = Self.percentDecoded(parameter[parameter.index(after: equals)...]) else {
                    throw fail("the key has a bad percent escape")
                }
                guard !decoded.isEmpty else { throw fail("the key is empty") }
                key = decoded
            }
        }

        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !path.isEmpty {
                guard path.allSatisfy({ $0.isASCII && $0.isNumber }), path.count <= 9, let number = Int(path) else {
                    throw fail("the database '\(path)' is not a number")
                }
                database = number
            }
        }

        var user: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = credentials.firstIndex(of: ":") else {
                throw fail("credentials must be USER:PASSWORD or :PASSWORD")
            }
            guard let decodedUser = Self.percentDecoded(credentials[..<colon]),
                let decodedPassword = Self.percentDecoded(credentials[credentials.index(after: colon)...])
            else { throw fail("the credentials have a bad percent escape") }
            guard !decodedPassword.isEmpty else { throw fail("the password is empty") }
            user = decodedUser.isEmpty ? nil : decodedUser
            password = decodedPassword
        }

        var host: Substring
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw fail("an IPv6 host without its closing ]") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected '\(after)' after the host") }
                portText = after.dropFirst()
            }
        } else {
            if let colon = rest.lastIndex(of: ":") {
                host = rest[..<colon]
                portText = rest[rest.index(after: colon)...]
            } else {
                host = rest
            }
            guard !host.contains(":") else { throw fail("an IPv6 host must be in brackets") }
        }
        guard !host.isEmpty else { throw fail("no host") }
        guard host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._:".contains($0)) }) else {
            throw fail("the host '\(host)' has characters a host name cannot have")
        }
        var port = 6379
        if let portText {
            guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
                let number = Int(portText), (1...65535).contains(number)
            else { throw fail("the port '\(portText)' is not a number from 1 to 65535") }
            port = number
        }
        self.init(host: String(host), port: port, user: user, password: password, database: database, key: key)
    }

    /// The URL with any password replaced, for error messages.
    private static func redacted(_ url: String) -> String {
        let body = url.dropFirst("redis://".count)
        guard let at = body.lastIndex(of: "@") else { return url }
        let credentials = body[..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return "redis://\(credentials[..<colon]):***\(body[at...])"
    }

    /// Decodes `%XX` escapes; nil for a malformed escape or bytes that are not UTF-8.
    private static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
