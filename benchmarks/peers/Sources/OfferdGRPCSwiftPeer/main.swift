import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOPosix
import OfferdCore
import OfferdServer
import OfferdSnapshot

#if canImport(Glibc)
    import Glibc
#endif

func fail(_ message: String) -> Never {
    let line = "offerd-grpc-swift-peer: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(2)
}

let arguments: PeerArguments
switch PeerArguments.parse(CommandLine.arguments.dropFirst()) {
case .success(let parsed): arguments = parsed
case .failure(let error): fail("\(error.message)\n\(PeerArguments.usage)")
}

let service: DecisioningService
do {
    // As `offerd serve` does: the catalog's per-decision counters come from the same metrics.
    let metrics = ServerMetrics()
    let catalog = try loadCatalog(path: arguments.catalogPath, options: EngineOptions(), metrics: metrics)
    let snapshot = try loadSnapshot(path: arguments.snapshotPath)
    service = DecisioningService(
        catalogs: AtomicReferenceStore(catalog), snapshots: AtomicReferenceStore(snapshot), allowExplain: false,
        metrics: metrics)
} catch {
    fail(error.message)
}

// One event loop thread like `offerd serve --threads 1`; grpc-swift-2 runs handlers as Swift tasks on the global
// executor, so the load script also pins the whole process to one core with taskset.
let group = MultiThreadedEventLoopGroup(numberOfThreads: arguments.threads)
let transport = HTTP2ServerTransport.Posix(
    address: .ipv4(host: arguments.host, port: arguments.port), transportSecurity: .plaintext,
    eventLoopGroup: group)
let server = GRPCServer(transport: transport, services: [DecisioningPeerService(service: service)])
do {
    try await withThrowingDiscardingTaskGroup { tasks in
        tasks.addTask { try await server.serve() }
        if let address = try await transport.listeningAddress.ipv4 {
            print("listening on \(address.host):\(address.port)")
        }
    }
} catch {
    fail("\(error)")
}
