import NIOCore
import OfferdCore
import OfferdEventLog
import OfferdLiveState
import OfferdSnapshot
import OfferdTransport
import OfferdWire

/// `RecordEvents` and `UpdateConsent` (SPEC 9.4, 9.5).
///
/// Both validate the whole request first (INVALID_ARGUMENT naming the first bad field, nothing recorded), then
/// resolve each identity's profile key with the snapshot this server serves, then write and answer once the
/// entries are durable and applied here (``LiveStateRuntime/submit(_:timeout:completion:)``), so that a Decide
/// on this server after the answer sees them. The answer is a deferred reply: the event loop serves other calls
/// while the write is under way. With `--events none` they answer FAILED_PRECONDITION; while the log is
/// unreachable, or when it does not answer within a second, UNAVAILABLE (the client retries with the same event
/// ids).
extension DecisioningService {
    public static let recordEventsPath = "/offerd.v1.Decisioning/RecordEvents"
    public static let updateConsentPath = "/offerd.v1.Decisioning/UpdateConsent"

    /// What both RPCs need before they record: the live state, ready, and the snapshot for profile keys.
    private func liveState() -> Result<(LiveStateRuntime, ProfileSnapshot), GRPCStatus> {
        guard let live else {
            return .failure(
                GRPCStatus(.failedPrecondition, "this server has no event log (--events none): nothing can be recorded")
            )
        }
        if isShuttingDown { return .failure(GRPCStatus(.unavailable, "the server is shutting down")) }
        // The snapshot the overlay sits on: keys resolve as the Decides that read this overlay resolve them.
        guard live.isReplayed, let snapshot = live.overlays.load()?.snapshot ?? snapshots.load() else {
            return .failure(GRPCStatus(.unavailable, "the event log's start-up replay has not finished"))
        }
        return .success((live, snapshot))
    }

    private func profileKey(_ identity: Identity, in snapshot: ProfileSnapshot) -> EventLogProfileKey {
        EventLogProfileKey(identity: identity, primaryIdentity: snapshot.profile(for: identity)?.primaryIdentity)
    }

    private func message(_ bytes: [UInt8], allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        Self.message(bytes, allocator: allocator)
    }

    private static func message(_ bytes: [UInt8], allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        return .message(buffer)
    }

    private static func recordEventsResponse(recorded: UInt32, duplicates: UInt32, position: String, json: Bool)
        -> [UInt8]
    {
        json
            ? EventsJSONCodec.encodeRecordEventsResponse(recorded: recorded, duplicates: duplicates, position: position)
            : EventsCodec.encodeRecordEventsResponse(recorded: recorded, duplicates: duplicates, position: position)
    }

    private static func updateConsentResponse(position: String, duplicate: Bool, json: Bool) -> [UInt8] {
        json
            ? EventsJSONCodec.encodeUpdateConsentResponse(position: position, duplicate: duplicate)
            : EventsCodec.encodeUpdateConsentResponse(position: position, duplicate: duplicate)
    }

    func recordEvents(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        let json = call.codec == .json
        let decoded = call.message.withUnsafeReadableBytes { bytes in
            Result { () throws(WireDecodeError) in
                // Connect with application/json: proto3 JSON onto the same values.
                json
                    ? try EventsJSONCodec.decodeRecordEventsRequest(Array(bytes))
                    : try EventsCodec.decodeRecordEventsRequest(bytes)
            }
        }
        let request: RecordEventsRequest
        switch decoded {
        case .success(let value): request = value
        case .failure(let error): return .failure(GRPCStatus(.invalidArgument, error.message))
        }
        let nowMs = CalendarBuckets.milliseconds(now())
        if let problem = request.validationError(nowMs: nowMs) {
            return .failure(GRPCStatus(.invalidArgument, problem))
        }
        let (live, snapshot): (LiveStateRuntime, ProfileSnapshot)
        switch liveState() {
        case .success(let state): (live, snapshot) = state
        case .failure(let status): return .failure(status)
        }
        let overlay = live.overlays.load() ?? LiveOverlaySnapshot.empty
        var entries: [EventLogEntry] = []
        var duplicates: UInt32 = 0
        var seenInCall: Set<String> = []
        for event in request.events {
            // Validated: identity and type are present.
            guard let identity = event.identity, let type = event.type else { continue }
            let key = profileKey(identity, in: snapshot)
            if overlay.knows(eventID: event.eventID, for: key)
                || !seenInCall.insert("\(key)\u{1F}\(event.eventID)").inserted
            {
                duplicates += 1
                continue
            }
            let entryType: EventLogEventType =
                switch type {
                case .display: .display
                case .interact: .interact
                case .dismiss, .unspecified: .dismiss
                }
            entries.append(
                EventLogEntry(
                    key: key, type: entryType, timeMs: event.timestampMs == 0 ? nowMs : event.timestampMs,
                    eventID: event.eventID, offerIDs: event.offerIDs, propositionID: event.propositionID,
                    serverID: live.serverID, batchNumber: 0))
        }
        if request.dryRun || entries.isEmpty {
            return message(
                Self.recordEventsResponse(recorded: 0, duplicates: duplicates, position: "", json: json),
                allocator: allocator)
        }
        let pending = GRPCPendingReply()
        let recorded = UInt32(entries.count)
        live.submit(entries) { [duplicates] outcome in
            switch outcome {
            case .success(let position):
                pending.complete(
                    Self.message(
                        Self.recordEventsResponse(
                            recorded: recorded, duplicates: duplicates, position: position.description, json: json),
                        allocator: allocator))
            case .failure(.unavailable(let reason)):
                pending.complete(
                    .failure(
                        GRPCStatus(.unavailable, "events not recorded: \(reason); retry with the same event ids")))
            case .failure(.overloaded(let reason)):
                pending.complete(.failure(GRPCStatus(.resourceExhausted, "events not recorded: \(reason)")))
            }
        }
        return .deferred(pending)
    }

    func updateConsent(_ call: GRPCUnaryCall, allocator: ByteBufferAllocator) -> GRPCUnaryReply {
        let json = call.codec == .json
        let decoded = call.message.withUnsafeReadableBytes { bytes in
            Result { () throws(WireDecodeError) in
                json
                    ? try EventsJSONCodec.decodeUpdateConsentRequest(Array(bytes))
                    : try EventsCodec.decodeUpdateConsentRequest(bytes)
            }
        }
        let request: UpdateConsentRequest
        switch decoded {
        case .success(let value): request = value
        case .failure(let error): return .failure(GRPCStatus(.invalidArgument, error.message))
        }
        if let problem = request.validationError() {
            return .failure(GRPCStatus(.invalidArgument, problem))
        }
        let (live, snapshot): (LiveStateRuntime, ProfileSnapshot)
        switch liveState() {
        case .success(let state): (live, snapshot) = state
        case .failure(let status): return .failure(status)
        }
        guard let identity = request.identity else {
            return .failure(GRPCStatus(.invalidArgument, "identity is required"))
        }
        let key = profileKey(identity, in: snapshot)
        let overlay = live.overlays.load() ?? LiveOverlaySnapshot.empty
        if overlay.knows(eventID: request.eventID, for: key) {
            return message(
                Self.updateConsentResponse(position: "", duplicate: true, json: json), allocator: allocator)
        }
        if request.dryRun {
            return message(
                Self.updateConsentResponse(position: "", duplicate: false, json: json), allocator: allocator)
        }
        let entry = EventLogEntry(
            key: key, type: .consent, timeMs: CalendarBuckets.milliseconds(now()), eventID: request.eventID,
            consents: request.consentMap, serverID: live.serverID, batchNumber: 0)
        let pending = GRPCPendingReply()
        live.submit([entry]) { outcome in
            switch outcome {
            case .success(let position):
                pending.complete(
                    Self.message(
                        Self.updateConsentResponse(position: position.description, duplicate: false, json: json),
                        allocator: allocator))
            case .failure(.unavailable(let reason)):
                pending.complete(
                    .failure(
                        GRPCStatus(.unavailable, "consent not recorded: \(reason); retry with the same event id")))
            case .failure(.overloaded(let reason)):
                pending.complete(.failure(GRPCStatus(.resourceExhausted, "consent not recorded: \(reason)")))
            }
        }
        return .deferred(pending)
    }
}
