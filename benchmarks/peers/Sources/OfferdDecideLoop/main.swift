import NIOCore
import OfferdCore
import OfferdServer
import OfferdSnapshot
import OfferdTransport

#if canImport(Glibc)
    import Glibc
#endif

// N in-process Decide calls through `DecisioningService.handle`, the exact code path behind both gRPC servers
// minus the transport. Made for callgrind: run it with two call counts and divide the difference in instructions
// by the difference in calls, which cancels loading the catalog and the snapshot.
//
//   offerd-decide-loop --catalog PATH --snapshot PATH --request PATH --calls N
//
// --request is a gRPC-framed DecideRequest (5-byte prefix), as benchmarks/load/make_requests.py writes them;
// several may be given and are used in turn.

func fail(_ message: String) -> Never {
    let line = "offerd-decide-loop: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(2)
}

var catalogPath = ""
var snapshotPath = ""
var requestPaths: [String] = []
var calls = 0
var remaining = CommandLine.arguments.dropFirst()
while let option = remaining.popFirst() {
    guard let value = remaining.popFirst() else { fail("\(option) needs a value") }
    switch option {
    case "--catalog": catalogPath = value
    case "--snapshot": snapshotPath = value
    case "--request": requestPaths.append(value)
    case "--calls":
        guard let count = Int(value), count >= 0 else { fail("--calls must be a count, got \(value)") }
        calls = count
    default: fail("unknown option \(option)")
    }
}
if catalogPath.isEmpty || snapshotPath.isEmpty || requestPaths.isEmpty {
    fail("usage: offerd-decide-loop --catalog PATH --snapshot PATH --request PATH... --calls N")
}

let service: DecisioningService
var requests: [ByteBuffer] = []
do {
    // As `offerd serve` does: the catalog's per-decision counters come from the same metrics.
    let metrics = ServerMetrics()
    let catalog = try loadCatalog(path: catalogPath, options: EngineOptions(), metrics: metrics)
    let snapshot = try loadSnapshot(path: snapshotPath)
    service = DecisioningService(
        catalogs: AtomicReferenceStore(catalog), snapshots: AtomicReferenceStore(snapshot), allowExplain: false,
        metrics: metrics)
    for path in requestPaths {
        let framed = try readWholeFile(path)
        guard framed.count >= 5 else { fail("\(path): shorter than a gRPC message prefix") }
        requests.append(ByteBuffer(bytes: framed.dropFirst(5)))
    }
} catch {
    fail(error.message)
}

let allocator = ByteBufferAllocator()
var responseBytes = 0
var failures = 0
for index in 0..<calls {
    let call = GRPCUnaryCall(path: DecisioningService.decidePath, message: requests[index % requests.count])
    // Decide always answers at once; `waitedFor()` only matters for deferred replies (RecordEvents).
    switch service.handle(call, allocator: allocator).waitedFor() {
    case .message(let payload): responseBytes += payload.readableBytes
    case .failure(let status):
        failures += 1
        if failures == 1 { print("first failure: \(status)") }
    case .deferred: fatalError("waitedFor() returns a completed reply")
    }
}
// Printing what the calls produced keeps the optimizer from dropping them.
print("calls \(calls) failures \(failures) response bytes \(responseBytes)")
if failures > 0 { exit(1) }
