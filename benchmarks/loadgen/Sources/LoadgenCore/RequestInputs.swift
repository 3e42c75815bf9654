/// Where the calls go: an `http://` URL (HTTP/2 with prior knowledge, no TLS) naming the host, the port and the
/// gRPC method's path.
public struct CallTarget: Sendable, Equatable {
    public let host: String
    public let port: Int
    /// `/package.Service/Method`.
    public let path: String

    /// `:authority` of every request.
    public var authority: String { "\(host):\(port)" }

    /// Parses `http://HOST:PORT/PATH`; the error says what is wrong with the text.
    public init(url: String) throws(LoadgenInputError) {
        let scheme = "http://"
        guard url.hasPrefix(scheme) else {
            throw LoadgenInputError("--url \(url): must start with http:// (HTTP/2 without TLS)")
        }
        let rest = url.dropFirst(scheme.count)
        guard let slash = rest.firstIndex(of: "/") else {
            throw LoadgenInputError("--url \(url): no path (expected http://HOST:PORT/package.Service/Method)")
        }
        let hostPort = rest[..<slash]
        let path = String(rest[slash...])
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]),
            (1...65535).contains(port)
        else {
            throw LoadgenInputError("--url \(url): no valid port (expected http://HOST:PORT/...)")
        }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        }
        guard !host.isEmpty else {
            throw LoadgenInputError("--url \(url): no host")
        }
        guard path.count > 1, !path.contains(where: { $0 == " " || $0 == "?" || $0 == "#" }) else {
            throw LoadgenInputError("--url \(url): the path must be a gRPC method, /package.Service/Method")
        }
        self.host = host
        self.port = port
        self.path = path
    }
}

/// A request body as sent on the wire: one gRPC length-prefixed message (1 flag byte, 4 bytes of big-endian
/// length, the message), as benchmarks/load/make_requests.py writes them.
public struct GRPCRequestBody: Sendable, Equatable {
    public let bytes: [UInt8]

    /// The largest body accepted: it must fit one DATA frame of the default size (16 KiB), which keeps each call
    /// at one frame of each kind.
    public static let maximumBytes = 16_384

    /// Checks the framing; `source` names the file in the error.
    public init(bytes: [UInt8], source: String) throws(LoadgenInputError) {
        guard bytes.count >= 5 else {
            throw LoadgenInputError("\(source): \(bytes.count) bytes, shorter than a gRPC message prefix (5 bytes)")
        }
        guard bytes.count <= Self.maximumBytes else {
            throw LoadgenInputError("\(source): \(bytes.count) bytes, more than \(Self.maximumBytes)")
        }
        guard bytes[0] == 0 || bytes[0] == 1 else {
            throw LoadgenInputError("\(source): compression flag \(bytes[0]), expected 0 or 1 (a gRPC message)")
        }
        let length = bytes[1...4].reduce(0) { $0 << 8 | Int($1) }
        guard length == bytes.count - 5 else {
            throw LoadgenInputError(
                "\(source): the gRPC prefix says \(length) message bytes, the file holds \(bytes.count - 5)"
            )
        }
        self.bytes = bytes
    }
}

extension GRPCRequestBody {
    /// Splits a file of gRPC-framed messages written one after another (make_requests.py with
    /// `OFFERD_ONE_FILE=1`): one file for many thousands of profiles, where a `--body` per profile would pass the
    /// command line's length limit. `source` names the file in the error, with the message's number and offset.
    public static func split(concatenated bytes: [UInt8], source: String) throws(LoadgenInputError) -> [GRPCRequestBody]
    {
        var bodies: [GRPCRequestBody] = []
        var offset = 0
        while offset < bytes.count {
            guard bytes.count - offset >= 5 else {
                throw LoadgenInputError(
                    "\(source): message \(bodies.count + 1) at byte \(offset): \(bytes.count - offset) bytes left, "
                        + "shorter than a gRPC message prefix (5 bytes)"
                )
            }
            let length = bytes[(offset + 1)...(offset + 4)].reduce(0) { $0 << 8 | Int($1) }
            guard length <= bytes.count - offset - 5 else {
                throw LoadgenInputError(
                    "\(source): message \(bodies.count + 1) at byte \(offset): the gRPC prefix says \(length) "
                        + "message bytes, the file holds \(bytes.count - offset - 5) after it"
                )
            }
            let end = offset + 5 + length
            bodies.append(
                try GRPCRequestBody(
                    bytes: Array(bytes[offset..<end]),
                    source: "\(source): message \(bodies.count + 1) at byte \(offset)"
                )
            )
            offset = end
        }
        guard !bodies.isEmpty else {
            throw LoadgenInputError("\(source): empty, no gRPC message in it")
        }
        return bodies
    }
}

/// Bad input: the message names the option or file and what is wrong with it.
public struct LoadgenInputError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
