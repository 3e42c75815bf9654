import NIOCore
import Testing

@testable import OfferdTransport

@Suite("request head validation")
struct GRPCRequestHeadTests {
    private static func head(
        _ fields: [(String, String)],
        maxCount: Int = 64,
        maxBytes: Int = 16384
    )
        -> GRPCRequestHead
    {
        var head = GRPCRequestHead(maxHeaderCount: maxCount, maxHeaderListBytes: maxBytes)
        for (name, value) in fields {
            head.add(name, value)
        }
        return head
    }

    private static let valid: [(String, String)] = [
        (":method", "POST"), (":scheme", "http"), (":path", "/offerd.v1.Decisioning/Decide"),
        (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers"),
    ]

    @Test("a well-formed gRPC request is accepted with its path")
    func accepted() throws {
        let accepted = try Self.head(Self.valid).validate().get()
        #expect(accepted.path == "/offerd.v1.Decisioning/Decide")
        #expect(accepted.timeout == nil)
    }

    @Test("grpc-timeout is parsed, a malformed one is INVALID_ARGUMENT")
    func timeout() throws {
        #expect(try Self.head(Self.valid + [("grpc-timeout", "150m")]).validate().get().timeout == .milliseconds(150))
        let malformed = Self.head(Self.valid + [("grpc-timeout", "soon")]).validate()
        #expect(malformed == .failure(.status(GRPCStatus(.invalidArgument, "malformed grpc-timeout 'soon'"))))
    }

    @Test("methods other than POST get 405", arguments: ["GET", "PUT", "post", "HEAD"])
    func method(method: String) {
        var fields = Self.valid
        fields[0] = (":method", method)
        #expect(Self.head(fields).validate() == .failure(.methodNotAllowed))
    }

    @Test(
        "content-type",
        arguments: [
            ("application/grpc", true), ("application/grpc+proto", true), ("application/grpc;charset=utf-8", true),
            ("Application/GRPC", true), ("application/json", true), ("application/proto", true),
            ("application/grpc-web", true), ("application/grpc-web-text+proto", true), ("application/xml", false),
            ("application/grpcx", false), ("application/grp", false), ("", false), ("text/plain", false),
        ]
    )
    func contentType(value: String, accepted: Bool) {
        var fields = Self.valid
        fields[4] = ("content-type", value)
        let result = Self.head(fields).validate()
        if accepted {
            #expect((try? result.get()) != nil)
        } else {
            #expect(result == .failure(.unsupportedMediaType))
        }
    }

    @Test("a missing content-type gets 415")
    func missingContentType() {
        #expect(Self.head(Self.valid.filter { $0.0 != "content-type" }).validate() == .failure(.unsupportedMediaType))
    }

    @Test("grpc-encoding other than identity is UNIMPLEMENTED", arguments: ["gzip", "deflate", "Identity"])
    func encoding(encoding: String) {
        let result = Self.head(Self.valid + [("grpc-encoding", encoding)]).validate()
        guard case .failure(.compressionUnsupported(let message)) = result else {
            Issue.record("expected compressionUnsupported, got \(result)")
            return
        }
        #expect(message.contains(encoding))
        #expect((try? Self.head(Self.valid + [("grpc-encoding", "identity")]).validate().get()) != nil)
    }

    @Test("too many header fields: exactly the limit passes, one more is refused")
    func headerCount() {
        let padding = (0..<(10 - Self.valid.count)).map { ("x-pad-\($0)", "v") }
        #expect((try? Self.head(Self.valid + padding, maxCount: 10).validate().get()) != nil)
        let result = Self.head(Self.valid + padding + [("x-one-more", "v")], maxCount: 10).validate()
        guard case .failure(.headersTooLarge) = result else {
            Issue.record("expected headersTooLarge, got \(result)")
            return
        }
    }

    @Test("too large a header list is refused, counting 32 bytes per field")
    func headerListSize() {
        let baseBytes = Self.valid.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 32 }
        // One more field of exactly the remaining room passes; one byte more fails.
        let room = 2048 - baseBytes - 32 - "x-big".utf8.count
        let fits = Self.head(Self.valid + [("x-big", String(repeating: "a", count: room))], maxBytes: 2048)
        #expect(fits.headerListBytes == 2048)
        #expect((try? fits.validate().get()) != nil)
        let tooBig = Self.head(Self.valid + [("x-big", String(repeating: "a", count: room + 1))], maxBytes: 2048)
        guard case .failure(.headersTooLarge) = tooBig.validate() else {
            Issue.record("expected headersTooLarge")
            return
        }
    }

    @Test("size problems win over method problems")
    func order() {
        var fields = Self.valid
        fields[0] = (":method", "GET")
        guard case .failure(.headersTooLarge) = Self.head(fields, maxCount: 3).validate() else {
            Issue.record("expected headersTooLarge first")
            return
        }
    }
}
