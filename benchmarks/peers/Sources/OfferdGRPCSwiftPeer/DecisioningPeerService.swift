import GRPCCore
import NIOCore
import OfferdServer
import OfferdTransport

/// `offerd.v1.Decisioning/Decide` on grpc-swift-2, answered by offerd's own `DecisioningService`.
///
/// The request is collected as a unary message, handed to `DecisioningService.handle` exactly as offerd's
/// transport would hand it, and the reply mapped back: a message, or an `RPCError` with the same status code and
/// message. Deadlines are grpc-swift-2's business here (it cancels the handler), so the call carries none.
struct DecisioningPeerService: RegistrableRPCService {
    static let decide = MethodDescriptor(fullyQualifiedService: "offerd.v1.Decisioning", method: "Decide")

    let service: DecisioningService

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.decide, deserializer: RawBytesDeserializer(), serializer: RawBytesSerializer()
        ) { [service] streamingRequest, _ in
            let request = try await ServerRequest(stream: streamingRequest)
            let call = GRPCUnaryCall(path: DecisioningService.decidePath, message: request.message)
            switch service.handle(call, allocator: ByteBufferAllocator()).waitedFor() {
            case .message(let payload):
                return StreamingServerResponse(single: ServerResponse(message: payload))
            case .failure(let status):
                let code = Status.Code(rawValue: status.code.rawValue).flatMap(RPCError.Code.init) ?? .unknown
                let error = RPCError(code: code, message: status.message)
                return StreamingServerResponse(single: ServerResponse(error: error))
            case .deferred:
                fatalError("waitedFor() returns a completed reply")
            }
        }
    }
}
