import Foundation
import NIOCore
import OfferdTransport
import Testing

/// End-to-end calls through the real `nghttp` and `h2load` clients against a server bound to port 0.
@Suite("end to end with nghttp and h2load", .serialized)
struct EndToEndNGHTTPTests {
    @Test("an echo call succeeds with grpc-status 0 and returns the message")
    func echo() async throws {
        try await withTestServer { _, port, service in
            let payload = Array("ping from nghttp".utf8)
            let call = try await NGHTTPCall.run(port: port, path: "/test.Echo/Echo", body: grpcFrame(payload))
            #expect(call.value(":status") == "200", "\(call.output.standardOutput)")
            #expect(call.value("content-type") == "application/grpc")
            #expect(call.value("grpc-status") == "0")
            #expect(call.value("grpc-message") == nil)
            #expect(call.output.standardOutput.contains("ping from nghttp"))
            #expect(service.callCount == 1)
        }
    }

    @Test("a service failure is sent Trailers-Only with a percent-encoded grpc-message")
    func failure() async throws {
        try await withTestServer { _, port, _ in
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Fail",
                body: grpcFrame(Array("100% wrong: café".utf8))
            )
            #expect(call.value(":status") == "200")
            #expect(call.value("grpc-status") == "3")
            #expect(call.value("grpc-message") == "100%25 wrong: caf%C3%A9")
            // Trailers-Only: exactly one header block, so no second ":status"-less trailer block and no DATA.
            #expect(!call.output.standardOutput.contains("recv DATA frame"))
        }
    }

    @Test("an unknown method is UNIMPLEMENTED, decided by the service")
    func unknownMethod() async throws {
        try await withTestServer { _, port, _ in
            let call = try await NGHTTPCall.run(port: port, path: "/nope.Service/Nope", body: grpcFrame([1]))
            #expect(call.value("grpc-status") == "12")
        }
    }

    @Test("GET gets 405")
    func wrongMethod() async throws {
        try await withTestServer { _, port, service in
            let call = try await NGHTTPCall.run(port: port, path: "/test.Echo/Echo", method: "GET", body: nil)
            #expect(call.value(":status") == "405")
            #expect(call.value("allow") == "POST")
            #expect(service.callCount == 0)
        }
    }

    @Test("a content-type of none of the port's protocols gets 415", arguments: ["text/plain", nil])
    func wrongContentType(contentType: String?) async throws {
        try await withTestServer { _, port, service in
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Echo",
                contentType: contentType,
                body: grpcFrame([1, 2])
            )
            #expect(call.value(":status") == "415")
            #expect(service.callCount == 0)
        }
    }

    @Test("a compressed message is UNIMPLEMENTED with grpc-accept-encoding: identity")
    func compressed() async throws {
        try await withTestServer { _, port, service in
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Echo",
                body: grpcFrame([1, 2, 3], compressed: true)
            )
            #expect(call.value("grpc-status") == "12", "\(call.output.standardOutput) \(call.output.standardError)")
            #expect(call.value("grpc-accept-encoding") == "identity")
            #expect(service.callCount == 0)
        }
    }

    @Test("grpc-encoding: gzip is UNIMPLEMENTED")
    func gzipEncoding() async throws {
        try await withTestServer { _, port, _ in
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Echo",
                extraHeaders: ["grpc-encoding: gzip"],
                body: grpcFrame([1])
            )
            #expect(call.value("grpc-status") == "12")
            #expect(call.value("grpc-accept-encoding") == "identity")
        }
    }

    @Test("a length prefix over the limit is RESOURCE_EXHAUSTED")
    func oversizedPrefix() async throws {
        let configure: (inout GRPCServerConfiguration) -> Void = { $0.maxMessageBytes = 1024 }
        try await withTestServer(configure: configure) { _, port, service in
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Echo",
                body: grpcFrame(Array(repeating: 7, count: 1025))
            )
            #expect(call.value("grpc-status") == "8")
            #expect(call.value("grpc-message")?.contains("1025") == true)
            #expect(service.callCount == 0)
        }
    }

    @Test("two messages on a unary call are INVALID_ARGUMENT")
    func twoMessages() async throws {
        try await withTestServer { _, port, service in
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Echo",
                body: grpcFrame([1]) + grpcFrame([2])
            )
            #expect(call.value("grpc-status") == "3")
            #expect(service.callCount == 0)
        }
    }

    @Test("a prefix announcing more bytes than the request carries is INVALID_ARGUMENT")
    func truncatedMessage() async throws {
        try await withTestServer { _, port, service in
            let call = try await NGHTTPCall.run(port: port, path: "/test.Echo/Echo", body: [0, 0, 0, 0, 50, 1, 2, 3])
            #expect(call.value("grpc-status") == "3")
            #expect(service.callCount == 0)
        }
    }

    @Test("an already expired grpc-timeout is DEADLINE_EXCEEDED", arguments: ["0S", "1n"])
    func expiredDeadline(timeout: String) async throws {
        try await withTestServer { _, port, service in
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Echo",
                extraHeaders: ["grpc-timeout: \(timeout)"],
                body: grpcFrame([1])
            )
            #expect(call.value("grpc-status") == "4")
            #expect(service.callCount == 0)
        }
    }

    @Test("a malformed grpc-timeout is INVALID_ARGUMENT")
    func malformedTimeout() async throws {
        try await withTestServer { _, port, _ in
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Echo",
                extraHeaders: ["grpc-timeout: 1.5S"],
                body: grpcFrame([1])
            )
            #expect(call.value("grpc-status") == "3")
            #expect(call.value("grpc-message")?.contains("grpc-timeout") == true)
        }
    }

    @Test("too many header fields get 431 with RESOURCE_EXHAUSTED")
    func tooManyHeaders() async throws {
        let configure: (inout GRPCServerConfiguration) -> Void = { $0.maxHeaderCount = 16 }
        try await withTestServer(configure: configure) { _, port, service in
            let extra = (0..<20).map { "x-filler-\($0): value" }
            let call = try await NGHTTPCall.run(
                port: port,
                path: "/test.Echo/Echo",
                extraHeaders: extra,
                body: grpcFrame([1])
            )
            #expect(call.value(":status") == "431")
            #expect(call.value("grpc-status") == "8")
            #expect(service.callCount == 0)
        }
    }

    @Test("h2load: thousands of calls over several connections, none failing")
    func h2load() async throws {
        try await withTestServer { server, port, service in
            let body = try temporaryFile(grpcFrame(Array(repeating: 0x2A, count: 100)))
            defer { try? FileManager.default.removeItem(atPath: body) }
            let output = try await runProcess(
                "/usr/bin/h2load",
                [
                    "-n", "5000", "-c", "4", "-m", "32", "-H", "content-type: application/grpc", "-d", body,
                    "http://127.0.0.1:\(port)/test.Echo/Echo",
                ]
            )
            #expect(output.standardOutput.contains("5000 succeeded, 0 failed, 0 errored"), "\(output.standardOutput)")
            #expect(output.standardOutput.contains("status codes: 5000 2xx"), "\(output.standardOutput)")
            #expect(service.callCount == 5000)
            #expect(server.activeCalls == 0)
        }
    }
}
