import Testing

@testable import LoadgenCore

@Suite struct RoundReportTests {
    /// 100 calls/s for 10 measured seconds, every call answered `latency` after its time, `late` of them sent
    /// 2 ms late.
    private func makeReport(late: Int, latency: UInt64 = 400_000, failing: Set<UInt64> = []) -> RoundReport {
        let schedule = SendSchedule(startNanoseconds: 0, callsPerSecond: 100, seconds: 10)
        var tally = RoundTally(schedule: schedule, warmupCalls: 0, lateThresholdNanoseconds: 1_000_000)
        for call in 0..<schedule.callCount {
            let lag: UInt64 = call < late ? 2_000_000 : 0
            tally.recordSend(call, at: schedule.sendTime(of: call) + lag)
            let outcome: CallOutcome = failing.contains(call) ? .grpcStatus(14) : .succeeded
            tally.recordOutcome(call, outcome, at: schedule.sendTime(of: call) + lag + latency)
        }
        return RoundReport(label: "offerd, formula", connections: 4, tally: tally, generatorCPUSeconds: 0.5)
    }

    @Test func percentilesRatesAndCountsComeFromTheTally() {
        let report = makeReport(late: 0, failing: [3, 4])
        #expect(report.sent == 1_000 && report.succeeded == 998 && report.errors == 2 && report.unanswered == 0)
        #expect(report.targetRate == 100 && report.measuredSeconds == 10)
        #expect(abs(report.p50 - 400) < 1 && abs(report.p99 - 400) < 1 && abs(report.max - 400) < 1)
        // 998 successes over the 10 s of the schedule: the last answer (9.9904 s) came before its end.
        #expect(abs(report.achievedRate - 99.8) < 1e-9)
        #expect(abs(report.generatorCPUPercent - 5) < 1e-9)
    }

    @Test func theGeneratorKeptUpWithAtMostHalfAPercentLate() {
        #expect(makeReport(late: 5).generatorKeptUp)
        let behind = makeReport(late: 6)
        #expect(!behind.generatorKeptUp)
        #expect(behind.lateSends == 6)
        #expect(behind.summary.contains("GENERATOR FELL BEHIND"))
    }

    @Test func csvRowsMatchTheHeaderAndQuoteTheLabel() {
        let report = makeReport(late: 0)
        let header = RoundReport.csvHeader.split(separator: ",")
        #expect(report.csvRow.hasPrefix("\"offerd, formula\",100,4,10.000,1000,1000,0,0,"))
        // The quoted label holds one comma.
        #expect(report.csvRow.split(separator: ",").count == header.count + 1)
        #expect(report.csvRow.hasSuffix(",yes,5.0"))
    }

    @Test func aRoundWithoutSuccessReportsNoLatency() {
        let report = makeReport(late: 0, failing: Set(0..<1_000))
        #expect(report.succeeded == 0 && report.p99.isNaN && report.achievedRate == 0)
        #expect(report.csvRow.contains(",nan,nan,nan,nan,nan,"))
    }

    @Test func fixedNeverUsesExponents() {
        #expect(fixed(0.000_012, 1) == "0.0")
        #expect(fixed(12_345_678.96, 1) == "12345679.0")
        #expect(fixed(-2.25, 1) == "-2.3" || fixed(-2.25, 1) == "-2.2")
        #expect(fixed(7.0, 3) == "7.000")
        #expect(fixed(.nan, 1) == "nan")
        #expect(fixed(41.6, 0) == "42")
    }
}

@Suite struct RequestInputsTests {
    @Test func urlsNameHostPortAndMethod() throws {
        let target = try CallTarget(url: "http://127.0.0.1:50051/offerd.v1.Decisioning/Decide")
        #expect(target.host == "127.0.0.1" && target.port == 50051 && target.path == "/offerd.v1.Decisioning/Decide")
        #expect(target.authority == "127.0.0.1:50051")
        #expect(try CallTarget(url: "http://[::1]:80/a.B/C").host == "::1")
    }

    @Test func badUrlsSayWhatIsWrong() {
        for (url, words) in [
            ("https://h:1/a.B/C", "http://"), ("http://h/a.B/C", "port"), ("http://h:0/a.B/C", "port"),
            ("http://h:1", "no path"), ("http://h:1/", "gRPC method"), ("http://:1/a.B/C", "no host"),
        ] {
            #expect {
                try CallTarget(url: url)
            } throws: { error in
                (error as? LoadgenInputError)?.description.contains(words) == true
            }
        }
    }

    @Test func bodiesMustBeOneGRPCMessage() throws {
        #expect(try GRPCRequestBody(bytes: [0, 0, 0, 0, 2, 8, 1], source: "f").bytes.count == 7)
        #expect(try GRPCRequestBody(bytes: [0, 0, 0, 0, 0], source: "f").bytes.count == 5)
        for (bytes, words) in [
            ([0, 0, 0] as [UInt8], "shorter"), ([0, 0, 0, 0, 3, 8, 1], "says 3 message bytes"),
            ([2, 0, 0, 0, 0], "compression flag 2"), ([UInt8](repeating: 0, count: 20_000), "more than"),
        ] {
            #expect {
                try GRPCRequestBody(bytes: bytes, source: "--body x.bin")
            } throws: { error in
                let text = (error as? LoadgenInputError)?.description ?? ""
                return text.hasPrefix("--body x.bin") && text.contains(words)
            }
        }
    }

    @Test func concatenatedBodiesSplitAtEachPrefix() throws {
        let bodies = try GRPCRequestBody.split(
            concatenated: [0, 0, 0, 0, 2, 8, 1] + [0, 0, 0, 0, 0] + [0, 0, 0, 0, 1, 9], source: "f"
        )
        #expect(bodies.map(\.bytes) == [[0, 0, 0, 0, 2, 8, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 9]])
        for (bytes, words) in [
            ([] as [UInt8], "empty"), ([0, 0, 0, 0, 0, 0, 0], "message 2 at byte 5: 2 bytes left"),
            ([0, 0, 0, 0, 1, 9, 0, 0, 0, 0, 4, 1], "message 2 at byte 6: the gRPC prefix says 4"),
            ([0, 0, 0, 0, 0, 3, 0, 0, 0, 0], "message 2 at byte 5: compression flag 3"),
        ] {
            #expect {
                try GRPCRequestBody.split(concatenated: bytes, source: "--bodies all.bin")
            } throws: { error in
                let text = (error as? LoadgenInputError)?.description ?? ""
                return text.hasPrefix("--bodies all.bin") && text.contains(words)
            }
        }
    }
}
