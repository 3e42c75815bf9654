import Histogram

/// One line of the report: what a round at one rate measured, in microseconds. A row of the CSV.
public struct RoundReport: Sendable, Equatable {
    public var label: String
    public var targetRate: UInt64
    public var connections: Int
    /// Length of the measured part of the schedule.
    public var measuredSeconds: Double
    /// Measured calls sent (every scheduled call is sent, late or not).
    public var sent: UInt64
    public var succeeded: UInt64
    /// Failed measured calls, unanswered ones included.
    public var errors: UInt64
    /// Of ``errors``: no answer within the drain time.
    public var unanswered: UInt64
    /// Successful calls per second, from the first measured send time to the last measured answer.
    public var achievedRate: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var p999: Double
    public var max: Double
    public var sendLagP50: Double
    public var sendLagP99: Double
    public var sendLagMax: Double
    /// Sends more than ``lateThreshold`` after their scheduled time.
    public var lateSends: UInt64
    public var lateThreshold: Double
    /// The generator's own CPU time over the measured wall time, in percent of one core.
    public var generatorCPUPercent: Double

    /// The largest share of late sends for which the round still counts as kept up.
    public static let keptUpLateFraction = 0.005

    /// True when at most 0.5% of the sends were late. A stall of the generator delays the calls due during it
    /// (late sends) and about as many answers that arrive during it (read late, so timed late, though their sends
    /// were on time): with at most 0.5% of the sends late, at most about 1% of the calls are the generator's,
    /// and p99 and below are the server's to within the late threshold. (Seen here: 0.6% of sends late behind a
    /// 50 ms stall, and a p99 of 30 ms.)
    public var generatorKeptUp: Bool {
        Double(lateSends) <= Self.keptUpLateFraction * Double(sent)
    }

    public init(
        label: String,
        connections: Int,
        tally: RoundTally,
        generatorCPUSeconds: Double
    ) {
        let schedule = tally.schedule
        let measuredStart = schedule.sendTime(of: tally.firstMeasuredCall)
        let measuredNanoseconds = Double(schedule.endNanoseconds - measuredStart)
        let answeredNanoseconds = Double(
            tally.lastAnswerNanoseconds > measuredStart ? tally.lastAnswerNanoseconds - measuredStart : 0)
        func micro(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1000 }
        func percentile(_ histogram: Histogram<UInt64>, _ p: Double) -> Double {
            histogram.totalCount == 0 ? .nan : micro(histogram.valueAtPercentile(p))
        }
        self.label = label
        targetRate = schedule.callsPerSecond
        self.connections = connections
        measuredSeconds = measuredNanoseconds / 1e9
        sent = tally.sent
        succeeded = tally.succeeded
        errors = tally.errors
        unanswered = tally.failures[.unanswered] ?? 0
        // The last answer is at least the scheduled end's worth of time after the start for a server that keeps
        // up; a round whose answers came back sooner (all failed fast, say) is measured over its schedule.
        let window = Swift.max(answeredNanoseconds, measuredNanoseconds)
        achievedRate = window > 0 ? Double(tally.succeeded) / (window / 1e9) : 0
        p50 = percentile(tally.latency, 50)
        p90 = percentile(tally.latency, 90)
        p99 = percentile(tally.latency, 99)
        p999 = percentile(tally.latency, 99.9)
        max = tally.latency.totalCount == 0 ? .nan : micro(tally.latency.max)
        sendLagP50 = percentile(tally.sendLag, 50)
        sendLagP99 = percentile(tally.sendLag, 99)
        sendLagMax = tally.sendLag.totalCount == 0 ? .nan : micro(tally.sendLag.max)
        lateSends = tally.lateSends
        lateThreshold = micro(tally.lateThresholdNanoseconds)
        generatorCPUPercent = measuredNanoseconds > 0 ? generatorCPUSeconds / (measuredNanoseconds / 1e9) * 100 : 0
    }

    public static let csvHeader = [
        "label", "target_rate", "connections", "seconds", "sent", "succeeded", "errors", "unanswered",
        "achieved_rate", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "send_lag_p50_us", "send_lag_p99_us",
        "send_lag_max_us", "late_sends", "late_threshold_us", "generator_kept_up", "generator_cpu_percent",
    ].joined(separator: ",")

    /// The CSV row for ``csvHeader``; the label is quoted when it needs to be.
    public var csvRow: String {
        [
            csvField(label), String(targetRate), String(connections), fixed(measuredSeconds, 3),
            String(sent), String(succeeded), String(errors), String(unanswered),
            fixed(achievedRate, 1), fixed(p50, 1), fixed(p90, 1), fixed(p99, 1),
            fixed(p999, 1), fixed(max, 1), fixed(sendLagP50, 1), fixed(sendLagP99, 1),
            fixed(sendLagMax, 1), String(lateSends), fixed(lateThreshold, 1),
            generatorKeptUp ? "yes" : "no", fixed(generatorCPUPercent, 1),
        ].joined(separator: ",")
    }

    /// One line for people.
    public var summary: String {
        let keptUp =
            generatorKeptUp
            ? "generator kept up"
            : "GENERATOR FELL BEHIND: \(lateSends) of \(sent) sends more than \(fixed(lateThreshold, 0)) us late"
        return "\(label) @ \(targetRate)/s: \(succeeded)/\(sent) ok, \(errors) errors"
            + " (\(unanswered) unanswered), achieved \(fixed(achievedRate, 0))/s;"
            + " latency us p50 \(fixed(p50, 0)) p90 \(fixed(p90, 0)) p99 \(fixed(p99, 0))"
            + " p99.9 \(fixed(p999, 0)) max \(fixed(max, 0)); send lag us p99 \(fixed(sendLagP99, 0))"
            + " max \(fixed(sendLagMax, 0)); \(keptUp); generator CPU \(fixed(generatorCPUPercent, 0))%"
    }
}

/// `value` with `digits` decimals, "nan" when there is no value (no successful call).
func fixed(_ value: Double, _ digits: Int) -> String {
    guard value.isFinite else {
        return "nan"
    }
    var scale = 1.0
    for _ in 0..<digits {
        scale *= 10
    }
    let rounded = (value * scale).rounded() / scale
    if digits == 0 {
        return String(Int64(rounded))
    }
    // String(Double) may use exponent notation; build the decimals by hand instead.
    let negative = rounded < 0
    let scaled = Int64((abs(rounded) * scale).rounded())
    let whole = scaled / Int64(scale)
    var fraction = String(scaled % Int64(scale))
    while fraction.count < digits {
        fraction = "0" + fraction
    }
    return (negative ? "-" : "") + "\(whole).\(fraction)"
}

/// A CSV field: quoted (with doubled quotes) when it holds a comma, a quote or a line break.
func csvField(_ text: String) -> String {
    guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
        return text
    }
    return "\"" + String(text.flatMap { $0 == "\"" ? ["\"", "\""] : [$0] }) + "\""
}
