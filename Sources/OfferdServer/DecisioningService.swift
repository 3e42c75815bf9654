import Atomics
import NIOCore
import OfferdCore
import OfferdEventLog
import OfferdLiveState
import OfferdSnapshot
import OfferdTransport
import OfferdWire
import Prometheus

/// A catalog compiled into a ready engine: the unit the catalog store publishes.
public final class LoadedCatalog: Sendable {
    public let engine: DecisionEngine
    public let path: String
    /// `offerd_decision_outcomes_total`: [decision index][outcome] (see ``ServerMetrics/decisionOutcomeCounters(for:)``);
    /// nil where no metrics are kept (tests, batches).
    let decisionOutcomeCounters: [[Prometheus.Counter]]?

    public init(engine: DecisionEngine, path: String, metrics: ServerMetrics? = nil) {
        self.engine = engine
        self.path = path
        decisionOutcomeCounters = metrics?.decisionOutcomeCounters(for: engine.catalog)
    }

    public var version: String { engine.catalog.version }
}

/// The gRPC application: `offerd.v1.Decisioning/Decide` and `grpc.health.v1.Health/Check`.
///
/// It reads the current catalog and snapshot from lock-free stores once per
/// call, so a call finishes on the versions it started with while reloads
/// publish new ones. It is also the in-process path (request bytes in,
/// response bytes out) that tests and benchmarks use without sockets.
public final class DecisioningService: GRPCUnaryService {
    public static let decidePath = "/offerd.v1.Decisioning/Decide"
    public static let healthCheckPath = "/grpc.health.v1.Health/Check"
    static let servingHealthNames: Set<String> = ["", "offerd.v1.Decisioning"]

    /// Server reflection (`grpc.reflection.v1` and `v1alpha`), from the committed descriptor set.
    let reflection = ServerReflection()
    public let catalogs: AtomicReferenceStore<LoadedCatalog>
    public let snapshots: AtomicReferenceStore<ProfileSnapshot>
    let allowExplain: Bool
    let metrics: ServerMetrics
    /// The live state (SPEC 9); nil with `--events none`.
    public let live: LiveStateRuntime?
    private let shuttingDown = ManagedAtomic<Bool>(false)
    /// Without a log: the overlay of the serving snapshot's folded state (``foldedOverlay(of:)``).
    private let foldedOverlays = AtomicReferenceStore<LiveOverlaySnapshot>(nil)
    /// Request time in epoch seconds; injectable so tests can pin dates (nil: the wall clock).
    let now: @Sendable () -> Double

    public init(
        catalogs: AtomicReferenceStore<LoadedCatalog>,
        snapshots: AtomicReferenceStore<ProfileSnapshot>,
        allowExplain: Bool,
        metrics: ServerMetrics,
        live: LiveStateRuntime? = nil,
        now: (@Sendable () -> Double)? = nil
    ) {
        self.live = live
        self.catalogs = catalogs
        self.snapshots = snapshots
        self.allowExplain = allowExplain
        self.metrics = metrics
        // The wall clock by default (a `package` function, so it cannot be the default argument itself).
        self.now = now ?? { wallClockSeconds() }
    }

    /// The overlay of a snapshot's folded state, for deciding without a log; made once per snapshot.
    private func foldedOverlay(of snapshot: ProfileSnapshot) -> LiveOverlaySnapshot? {
        if let cached = foldedOverlays.load(), cached.snapshot === snapshot { return cached }
        // Two calls may both build it for a new snapshot: the same value, published twice; harmless.
        let made = LiveOverlaySnapshot.foldedOnly(snapshot)
        if let made { foldedOverlays.publish(made) }
        return made
    }

    /// Whether a catalog and a snapshot are loaded, the event log's start-up replay has finished, and shutdown
    /// has not begun.
    public var isReady: Bool {
        !shuttingDown.load(ordering: .relaxed) && catalogs.load() != nil && snapshots.load() != nil
            && (live?.isReplayed ?? true)
    }

    /// True once shutdown has begun.
    var isShuttingDown: Bool { shuttingDown.load(ordering: .relaxed) }

    /// From now on, Decide answers UNAVAILABLE and health NOT_SERVING.
    public func beginShutdown() {
        shuttingDown.store(true, ordering: .relaxed)
    }

    /// Reflection is a bidirectional stream: one reply per request message.
    public func isMessageStream(path: String) -> Bool {
        // Asked for every call: the length rules the unary paths out without comparing their bytes.
        let count = path.utf8.count
        return (count == ServerReflection.v1Path.utf8.count && path == ServerReflection.v1Path)
            || (count == ServerReflection.v1AlphaPath.utf8.count && path == ServerReflection.v1AlphaPath)
    }

    public func handle(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        let started = NIODeadline.now()
        let method: ServerMetrics.Method
        let reply: GRPCUnaryReply
        switch call.path {
        case Self.decidePath:
            method = .decide
            reply = decide(call, allocator: allocator)
        case Self.healthCheckPath:
            method = .healthCheck
            reply = healthCheck(call, allocator: allocator)
        case Self.recordEventsPath, Self.updateConsentPath:
            method = call.path == Self.recordEventsPath ? .recordEvents : .updateConsent
            if method == .recordEvents {
                reply = recordEvents(call, allocator: allocator)
            } else {
                reply = updateConsent(call, allocator: allocator)
            }
        case ServerReflection.v1Path, ServerReflection.v1AlphaPath:
            // One message of a reflection stream: not a call of its own in the per-method metrics.
            guard call.codec == .proto else {
                return .failure(GRPCStatus(.unimplemented, "server reflection speaks protobuf only"))
            }
            return reflection.answer(call, allocator: allocator)
        default:
            method = .unknown
            reply = .failure(GRPCStatus(.unimplemented, "unknown method \(call.path)"))
        }
        switch reply {
        case .message: metrics.recordCall(method, status: .ok, nanoseconds: (NIODeadline.now() - started).nanoseconds)
        case .failure(let status):
            metrics.recordCall(method, status: status.code, nanoseconds: (NIODeadline.now() - started).nanoseconds)
        case .deferred(let pending):
            // Counted when answered, with the time until then.
            pending.whenComplete { [metrics] completed in
                let code: GRPCStatus.Code = if case .failure(let status) = completed { status.code } else { .ok }
                metrics.recordCall(method, status: code, nanoseconds: (NIODeadline.now() - started).nanoseconds)
            }
        }
        return reply
    }

    private func decide(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        let decoded = call.message.withUnsafeReadableBytes { bytes in
            Result { () throws(WireDecodeError) in
                // Connect with application/json: proto3 JSON onto the same core values.
                call.codec == .json
                    ? try DecideJSONCodec.decodeRequest(Array(bytes)) : try DecideCodec.decodeRequest(bytes)
            }
        }
        let request: DecisionRequest
        switch consume decoded {
        case .success(let value): request = value
        case .failure(let error): return .failure(GRPCStatus(.invalidArgument, error.message))
        }
        if let problem = request.validationError() {
            return .failure(GRPCStatus(.invalidArgument, problem))
        }
        if request.explain && !allowExplain {
            return .failure(
                GRPCStatus(.permissionDenied, "explain is not allowed: start the server with --allow-explain"))
        }
        if shuttingDown.load(ordering: .relaxed) {
            return .failure(GRPCStatus(.unavailable, "the server is shutting down"))
        }
        guard let catalog = catalogs.load() else {
            return .failure(GRPCStatus(.unavailable, "no catalog is loaded yet"))
        }
        // With live state the snapshot comes with the overlay that sits on it, in one load (SPEC 9.6: a swap
        // publishes both at once).
        let overlay: LiveOverlaySnapshot?
        let snapshot: ProfileSnapshot
        if let live {
            guard live.isReplayed, let loaded = live.overlays.load(), let paired = loaded.snapshot else {
                return .failure(GRPCStatus(.unavailable, "the event log's start-up replay has not finished"))
            }
            overlay = loaded
            snapshot = paired
        } else {
            guard let loaded = snapshots.load() else {
                return .failure(GRPCStatus(.unavailable, "no profile snapshot is loaded yet"))
            }
            // Without a log a folded snapshot still brings its folded counts and consents (SPEC 9.3, 9.6).
            overlay = loaded.hasFoldedState ? foldedOverlay(of: loaded) : nil
            snapshot = loaded
        }
        if let deadline = call.deadline, deadline <= .now() {
            return .failure(GRPCStatus(.deadlineExceeded, "the deadline expired before the decision started"))
        }
        let profile = snapshot.profile(for: request.identity)
        let result: DecisionResult
        if let overlay {
            let time = now()
            // The key's hash from the bytes where they are: most keys have nothing live, and then the key's
            // strings are built only if a decision event names it.
            let keyHash =
                profile?.withPrimaryIdentityUTF8 { LiveProfileKeyHash(namespace: $0, id: $1) }
                ?? request.identity.withUTF8 { LiveProfileKeyHash(namespace: $0, id: $1) }
            var key: EventLogProfileKey?
            if overlay.mayHaveState(keyHash) || catalog.engine.catalog.hasTotalScopeCaps {
                // SPEC 9.2/9.3/9.5: the overlay under the profile key, its consents over the snapshot's.
                let resolved = EventLogProfileKey(identity: request.identity, primaryIdentity: profile?.primaryIdentity)
                let inputs = overlay.decideInputs(
                    for: resolved, keyHash: keyHash, snapshotConsents: profile?.consents ?? .empty)
                result = catalog.engine.decide(
                    request, profile: profile, live: inputs.counts, consents: inputs.consents, now: time)
                key = resolved
            } else {
                // Nothing live for the key and no totals to read: the counts and consents are the snapshot's.
                result = catalog.engine.decide(request, profile: profile, now: time)
            }
            if let live, !request.dryRun {
                let timeMs = CalendarBuckets.milliseconds(time)
                live.recordDecisions(result, catalog: catalog.engine.catalog, timeMs: timeMs) {
                    key ?? EventLogProfileKey(identity: request.identity, primaryIdentity: profile?.primaryIdentity)
                }
            }
        } else {
            result = catalog.engine.decide(request, profile: profile, now: now())
        }
        metrics.recordDecisions(result, catalog: catalog)
        if call.codec == .json {
            let requestID = request.requestID.isEmpty ? UUIDv4.random() : request.requestID
            let json = DecideJSONCodec.encodeResponse(
                result, requestID: requestID, snapshotVersion: snapshot.version,
                includeContent: request.includeContent, includeMetadata: request.includeMetadata)
            var buffer = allocator.buffer(capacity: json.count)
            buffer.writeBytes(json)
            if let deadline = call.deadline, deadline <= .now() {
                return .failure(GRPCStatus(.deadlineExceeded, "the deadline expired while deciding"))
            }
            return .message(buffer)
        }
        // Without a request id of its own the response gets a fresh one, written in place by the encoder.
        let message = DecideCodec.encodeResponse(
            result, requestID: request.requestID.isEmpty ? nil : request.requestID,
            snapshotVersion: snapshot.version,
            includeContent: request.includeContent, includeMetadata: request.includeMetadata
        ) { size, pack in
            var buffer = allocator.buffer(capacity: size)
            if size > 0 {
                buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { raw in
                    // Safe: at least `size` > 0 writable bytes have a base address.
                    let written = pack(raw.baseAddress.unsafelyUnwrapped.assumingMemoryBound(to: UInt8.self))
                    precondition(written == size, "protobuf-c packed \(written) bytes, announced \(size)")
                    return written
                }
            }
            return buffer
        }
        if let deadline = call.deadline, deadline <= .now() {
            return .failure(GRPCStatus(.deadlineExceeded, "the deadline expired while deciding"))
        }
        return .message(message)
    }

    private func healthCheck(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        if call.codec == .json {
            return healthCheckJSON(call, allocator: allocator)
        }
        let decoded = call.message.withUnsafeReadableBytes { bytes in
            Result { () throws(WireDecodeError) in try HealthCodec.decodeCheckRequest(bytes) }
        }
        let service: String
        switch decoded {
        case .success(let value): service = value
        case .failure(let error): return .failure(GRPCStatus(.invalidArgument, error.message))
        }
        guard Self.servingHealthNames.contains(service) else {
            return .failure(GRPCStatus(.notFound, "unknown service \(service)"))
        }
        let encoded = HealthCodec.encodeCheckResponse(isReady ? .serving : .notServing)
        var buffer = allocator.buffer(capacity: encoded.count)
        buffer.writeBytes(encoded)
        return .message(buffer)
    }
}

extension DecisioningService {
    /// Health over Connect JSON: `{"service":"..."}` in, `{"status":"SERVING"}` out (proto3 JSON of the same
    /// messages).
    fileprivate func healthCheckJSON(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        let document: JSONValue
        do {
            document = try JSONParser.parse(Array(call.message.readableBytesView))
        } catch {
            return .failure(GRPCStatus(.invalidArgument, "invalid JSON: \(error)"))
        }
        var service = ""
        switch document["service"] {
        case .string(let name)?: service = name
        case .null?, nil: break
        default: return .failure(GRPCStatus(.invalidArgument, "service: expected a string"))
        }
        guard Self.servingHealthNames.contains(service) else {
            return .failure(GRPCStatus(.notFound, "unknown service \(service)"))
        }
        var buffer = allocator.buffer(capacity: 32)
        buffer.writeString(isReady ? "{\"status\":\"SERVING\"}" : "{\"status\":\"NOT_SERVING\"}")
        return .message(buffer)
    }
}
