import Logging
import NIOCore
import OfferdCore
import OfferdEventLog
import OfferdServer
import OfferdSnapshot
import OfferdTransport
import OfferdWire

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
//
// --events PATH decides instead as `offerd decide batch --events file:PATH --dry-run` does (`BatchDecider.decideOne`:
// the file log's counts and consents over the snapshot, the server's live-state decision path, a JSON response),
// for the live counters' cost (benchmarks/live/decide_counters_callgrind.py). `offerd` itself does not run under
// valgrind 3.19 here (it stops at start with an internal error), this loop does.

func fail(_ message: String) -> Never {
    let line = "offerd-decide-loop: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(2)
}

var catalogPath = ""
var snapshotPath = ""
var requestPaths: [String] = []
var calls = 0
var eventsPath: String?
var remaining = CommandLine.arguments.dropFirst()
while let option = remaining.popFirst() {
    guard let value = remaining.popFirst() else { fail("\(option) needs a value") }
    switch option {
    case "--catalog": catalogPath = value
    case "--snapshot": snapshotPath = value
    case "--request": requestPaths.append(value)
    case "--events": eventsPath = value
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
/// With --events: the batch path and the requests decoded for it.
var batch: (decider: BatchDecider, requests: [DecisionRequest])?
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
    if let eventsPath {
        let events = try BatchEventLog(
            log: try FileEventLog(readingOnly: eventsPath), describedLog: "file:\(eventsPath)", snapshot: snapshot,
            records: false, logger: Logger(label: "offerd-decide-loop"))
        batch = (
            BatchDecider(
                catalog: catalog, snapshot: snapshot, configuration: BatchDecider.Configuration(threads: 1),
                events: events),
            try requests.map { try DecideCodec.decodeRequest(Array($0.readableBytesView)) }
        )
    }
} catch let error as LoadError {
    fail(error.message)
} catch {
    fail("\(error)")
}

let allocator = ByteBufferAllocator()
var responseBytes = 0
var failures = 0
for index in 0..<calls {
    if let batch {
        responseBytes += batch.decider.decideOne(batch.requests[index % batch.requests.count]).count
        continue
    }
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
