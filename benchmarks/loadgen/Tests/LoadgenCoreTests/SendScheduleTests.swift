import Testing

@testable import LoadgenCore

@Suite struct SendScheduleTests {
    @Test func callsAreDueAtExactMultiplesOfTheInterval() {
        let schedule = SendSchedule(startNanoseconds: 1_000, callsPerSecond: 3, callCount: 9)
        #expect(schedule.sendTime(of: 0) == 1_000)
        #expect(schedule.sendTime(of: 1) == 1_000 + 333_333_333)
        #expect(schedule.sendTime(of: 2) == 1_000 + 666_666_666)
        // No drift: whole seconds land exactly, however many calls came before.
        #expect(schedule.sendTime(of: 3) == 1_000 + 1_000_000_000)
        #expect(schedule.endNanoseconds == 1_000 + 3_000_000_000)
    }

    @Test func dueCountAgreesWithSendTimes() {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<2_000 {
            let rate = 1 + generator.next() % 200_000
            let count = 1 + generator.next() % 5_000
            let schedule = SendSchedule(startNanoseconds: 5_000_000, callsPerSecond: rate, callCount: count)
            let probe = schedule.startNanoseconds + generator.next() % (schedule.endNanoseconds - 5_000_000 + 10)
            let due = schedule.dueCount(at: probe)
            // Every call below `due` is due, the next one is not (unless the round is over).
            if due > 0 {
                #expect(schedule.sendTime(of: due - 1) <= probe)
            }
            if due < count {
                #expect(schedule.sendTime(of: due) > probe)
            }
            // At a call's own send time that call is due.
            let call = generator.next() % count
            #expect(schedule.dueCount(at: schedule.sendTime(of: call)) == call + 1)
        }
    }

    @Test func nothingIsDueBeforeTheStartAndTheCountIsCapped() {
        let schedule = SendSchedule(startNanoseconds: 1_000, callsPerSecond: 1_000, seconds: 2)
        #expect(schedule.callCount == 2_000)
        #expect(schedule.dueCount(at: 0) == 0)
        #expect(schedule.dueCount(at: 999) == 0)
        #expect(schedule.dueCount(at: 1_000) == 1)
        #expect(schedule.dueCount(at: 1_000 + 999_999) == 1)
        #expect(schedule.dueCount(at: 1_000 + 1_000_000) == 2)
        #expect(schedule.dueCount(at: UInt64.max / 2) == 2_000)
    }

    @Test func longFastRoundsDoNotOverflow() {
        let rate = SendSchedule.maximumCallsPerSecond
        let schedule = SendSchedule(startNanoseconds: 0, callsPerSecond: rate, seconds: SendSchedule.maximumSeconds)
        #expect(schedule.sendTime(of: schedule.callCount) == SendSchedule.maximumSeconds * 1_000_000_000)
        #expect(schedule.dueCount(at: schedule.endNanoseconds - 1) == schedule.callCount)
    }
}

/// A small deterministic generator: the same cases on every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
