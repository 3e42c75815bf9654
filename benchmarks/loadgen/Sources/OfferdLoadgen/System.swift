private import CLoadgenSystem
import Glibc
import NIOCore

/// The monotonic clock every time of the generator is read from, in nanoseconds: NIO's timers use it too.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    NIODeadline.now().uptimeNanoseconds
}

/// User plus system CPU time of the whole process so far.
func processCPUSeconds() -> Double {
    var usage = rusage()
    guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else {
        return 0
    }
    func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Pins the calling thread, and every thread it starts afterwards, to `cpu`.
func pinToCPU(_ cpu: Int) throws(RoundError) {
    guard loadgen_pin_to_cpu(Int32(cpu)) == 0 else {
        throw RoundError(description: "--cpu \(cpu): sched_setaffinity failed: \(String(cString: strerror(errno)))")
    }
}

/// How many CPUs the calling thread may run on (-1 if unknown).
func allowedCPUCount() -> Int {
    Int(loadgen_allowed_cpu_count())
}

/// Timers of the calling thread fire within a nanosecond of their time instead of Linux's default 50 us slack.
func tightenTimerSlack() {
    _ = loadgen_set_timer_slack_nanoseconds(1)
}

func reportError(_ message: String) {
    // write(2) on the descriptor: the C `stderr` global is shared mutable state to Swift 6.
    let line = Array("offerd-loadgen: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
