import Testing

@testable import LoadgenCore

@Suite struct RoundTallyTests {
    /// 1,000 calls/s for 3 s from t = 1 s, the first second warm-up.
    private func makeTally(lateThreshold: UInt64 = 100_000) -> RoundTally {
        let schedule = SendSchedule(startNanoseconds: 1_000_000_000, callsPerSecond: 1_000, seconds: 3)
        return RoundTally(schedule: schedule, warmupCalls: 1_000, lateThresholdNanoseconds: lateThreshold)
    }

    @Test func warmupCallsAreNotCounted() {
        var tally = makeTally()
        let schedule = tally.schedule
        tally.recordSend(0, at: schedule.sendTime(of: 0) + 50_000_000)
        tally.recordOutcome(0, .grpcStatus(13), at: schedule.sendTime(of: 0) + 60_000_000)
        tally.recordSend(999, at: schedule.sendTime(of: 999))
        tally.recordOutcome(999, .succeeded, at: schedule.sendTime(of: 999) + 1_000)
        #expect(tally.sent == 0 && tally.succeeded == 0 && tally.errors == 0 && tally.lateSends == 0)
        #expect(tally.latency.totalCount == 0)
        #expect(tally.measuredCalls == 2_000)
    }

    @Test func latencyRunsFromTheScheduledTimeNotTheSend() {
        var tally = makeTally()
        let scheduled = tally.schedule.sendTime(of: 1_500)
        // Sent 5 ms late, answered 1 ms after the send: 6 ms, as the caller waiting since `scheduled` saw it.
        tally.recordSend(1_500, at: scheduled + 5_000_000)
        tally.recordOutcome(1_500, .succeeded, at: scheduled + 6_000_000)
        #expect(tally.sent == 1 && tally.succeeded == 1 && tally.lateSends == 1)
        #expect(tally.latency.valuesAreEquivalent(tally.latency.max, 6_000_000))
        #expect(tally.sendLag.valuesAreEquivalent(tally.sendLag.max, 5_000_000))
    }

    @Test func onlySendsPastTheThresholdAreLate() {
        var tally = makeTally(lateThreshold: 100_000)
        tally.recordSend(1_000, at: tally.schedule.sendTime(of: 1_000) + 100_000)
        tally.recordSend(1_001, at: tally.schedule.sendTime(of: 1_001) + 100_001)
        tally.recordSend(1_002, at: tally.schedule.sendTime(of: 1_002))
        #expect(tally.sent == 3 && tally.lateSends == 1)
    }

    @Test func failuresAreCountedByKindAndKeptOutOfTheLatencies() {
        var tally = makeTally()
        let outcomes: [CallOutcome] = [
            .succeeded, .grpcStatus(12), .missingGRPCStatus, .httpStatus(503), .httpStatus(nil), .reset(7),
            .connectionLost, .unanswered, .unanswered,
        ]
        for (offset, outcome) in outcomes.enumerated() {
            let call = UInt64(1_000 + offset)
            tally.recordSend(call, at: tally.schedule.sendTime(of: call))
            tally.recordOutcome(call, outcome, at: tally.schedule.sendTime(of: call) + 2_000_000)
        }
        #expect(tally.succeeded == 1 && tally.errors == 8)
        #expect(tally.failures[.grpcStatus] == 2 && tally.failures[.httpStatus] == 2)
        #expect(tally.failures[.reset] == 1 && tally.failures[.connectionLost] == 1)
        #expect(tally.failures[.unanswered] == 2)
        #expect(tally.latency.totalCount == 1)
    }
}

@Suite struct CallOutcomeTests {
    @Test func outcomeFollowsTheAnswer() {
        #expect(CallOutcome.of(resetCode: 0, httpStatus: 200, grpcStatus: 0) == .succeeded)
        #expect(CallOutcome.of(resetCode: 8, httpStatus: 200, grpcStatus: 0) == .reset(8))
        #expect(CallOutcome.of(resetCode: 0, httpStatus: 404, grpcStatus: 0) == .httpStatus(404))
        #expect(CallOutcome.of(resetCode: 0, httpStatus: nil, grpcStatus: 0) == .httpStatus(nil))
        #expect(CallOutcome.of(resetCode: 0, httpStatus: 200, grpcStatus: nil) == .missingGRPCStatus)
        #expect(CallOutcome.of(resetCode: 0, httpStatus: 200, grpcStatus: 12) == .grpcStatus(12))
        #expect(CallOutcome.of(resetCode: 0, httpStatus: 200, grpcStatus: -1) == .grpcStatus(-1))
    }

    @Test func statusCodesParseOnlyFromDigits() {
        #expect(parseStatusCode(Array("0".utf8)) == 0)
        #expect(parseStatusCode(Array("200".utf8)) == 200)
        #expect(parseStatusCode(Array("".utf8)) == -1)
        #expect(parseStatusCode(Array(" 0".utf8)) == -1)
        #expect(parseStatusCode(Array("0x1".utf8)) == -1)
        #expect(parseStatusCode(Array("9999999999".utf8)) == -1)
    }
}
