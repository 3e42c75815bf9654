import Testing

@testable import OfferdServer

/// The lock-free call-duration histogram and its Prometheus text.
@Suite struct ServerMetricsTests {
    @Test func bucketsAreCumulativeWithInclusiveBounds() {
        let histogram = CallDurationHistogram(name: "d", help: "Test durations.", methods: ["a", "b"])
        histogram.record(method: 0, nanoseconds: 10_000) // on the first bound: counted in it
        histogram.record(method: 0, nanoseconds: 10_001)
        histogram.record(method: 0, nanoseconds: 2_000_000_000) // past the last bound: +Inf only
        histogram.record(method: 1, nanoseconds: 5)
        var bytes: [UInt8] = []
        histogram.emit(into: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("# HELP d Test durations.\n# TYPE d histogram\n"))
        #expect(text.components(separatedBy: "# TYPE").count == 2)
        #expect(text.contains("d_bucket{method=\"a\",le=\"0.00001\"} 1\n"))
        #expect(text.contains("d_bucket{method=\"a\",le=\"0.000025\"} 2\n"))
        #expect(text.contains("d_bucket{method=\"a\",le=\"1.0\"} 2\n"))
        #expect(text.contains("d_bucket{method=\"a\",le=\"+Inf\"} 3\n"))
        #expect(text.contains("d_sum{method=\"a\"} 2.000020001\n"))
        #expect(text.contains("d_count{method=\"a\"} 3\n"))
        #expect(text.contains("d_bucket{method=\"b\",le=\"0.00001\"} 1\n"))
        #expect(text.contains("d_count{method=\"b\"} 1\n"))
    }

    @Test func boundsAreWrittenAsSwiftPrometheusWritesDurations() {
        #expect(CallDurationHistogram.seconds(10_000) == "0.00001")
        #expect(CallDurationHistogram.seconds(2_500_000) == "0.0025")
        #expect(CallDurationHistogram.seconds(1_000_000_000) == "1.0")
        #expect(CallDurationHistogram.seconds(0) == "0.0")
    }

    @Test func serverMetricsTextHoldsCountersAndDurations() {
        let metrics = ServerMetrics()
        metrics.recordCall(.decide, status: .ok, nanoseconds: 12_000)
        let text = String(decoding: metrics.emitToBuffer(), as: UTF8.self)
        #expect(text.contains("offerd_grpc_calls_total{method=\"offerd.v1.Decisioning/Decide\",status=\"OK\"} 1"))
        #expect(
            text.contains(
                "offerd_grpc_call_duration_seconds_bucket{method=\"offerd.v1.Decisioning/Decide\",le=\"0.000025\"} 1"))
        #expect(text.contains("offerd_grpc_call_duration_seconds_count{method=\"grpc.health.v1.Health/Check\"} 0"))
    }
}
