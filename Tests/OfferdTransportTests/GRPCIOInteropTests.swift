import Foundation
import OfferdTransport
import Testing

/// Interoperability with a real gRPC stack (Python grpcio, C core) against the transport alone.
///
/// Runs with the `python3` on `PATH` (`scripts/install-deps.sh --with-python` installs grpcio), or the
/// interpreter named by `OFFERD_TRANSPORT_GRPCIO_PYTHON`. The interop suite in `tests/interop` covers most of
/// these answers through a whole `offerd serve`; what only this test sees is grpcio decoding a percent-encoded,
/// non-ASCII `grpc-message`, and an empty response message.
///
/// Every verdict holds whatever the timing: `/test.Echo/Slow` outlasts its 20 ms deadline, and whether
/// grpcio's timer or the server's answer comes first, the call ends DEADLINE_EXCEEDED.
@Suite("interop with grpcio")
struct GRPCIOInteropTests {
    private static let client = #"""
        import sys, grpc
        port = sys.argv[1]
        channel = grpc.insecure_channel("127.0.0.1:" + port)
        identity = lambda b: b
        def call(path, payload, timeout=5):
            method = channel.unary_unary(path, request_serializer=identity, response_deserializer=identity)
            try:
                reply = method(payload, timeout=timeout)
                print("OK", path, reply.decode("utf-8", "replace"))
            except grpc.RpcError as error:
                print("ERR", path, error.code().name, error.details())
        call("/test.Echo/Echo", b"hello grpcio")
        call("/test.Echo/Echo", b"")
        call("/test.Echo/Fail", "100% wrong: café".encode())
        call("/nope.Service/Nope", b"x")
        call("/test.Echo/Slow", b"x", timeout=0.02)
        call("/test.Echo/Echo", b"y" * 70000)
        for i in range(200):
            call("/test.Echo/Echo", b"n%d" % i)
        """#

    @Test("grpcio sees the statuses, messages and payloads the transport sends")
    func grpcioClient() async throws {
        let environment = ProcessInfo.processInfo.environment
        let (program, arguments) =
            environment["OFFERD_TRANSPORT_GRPCIO_PYTHON"].map { ($0, [String]()) } ?? ("/usr/bin/env", ["python3"])
        try await withTestServer { _, port, _ in
            let output = try await runProcess(program, arguments + ["-c", Self.client, "\(port)"], timeout: 60)
            let lines = output.standardOutput.split(separator: "\n").map(String.init)
            #expect(lines.count == 206, "\(output.standardOutput)\n\(output.standardError)")
            #expect(lines.first == "OK /test.Echo/Echo hello grpcio")
            #expect(lines.dropFirst(1).first == "OK /test.Echo/Echo ")
            #expect(lines.dropFirst(2).first == "ERR /test.Echo/Fail INVALID_ARGUMENT 100% wrong: café")
            #expect(lines.dropFirst(3).first?.hasPrefix("ERR /nope.Service/Nope UNIMPLEMENTED") == true)
            #expect(lines.dropFirst(4).first?.hasPrefix("ERR /test.Echo/Slow DEADLINE_EXCEEDED") == true)
            #expect(lines.dropFirst(5).first?.hasPrefix("ERR /test.Echo/Echo RESOURCE_EXHAUSTED") == true)
            #expect(lines.dropFirst(6).allSatisfy { $0.hasPrefix("OK /test.Echo/Echo n") })
        }
    }
}
