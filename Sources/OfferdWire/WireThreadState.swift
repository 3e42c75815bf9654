#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// xoshiro256** (Blackman and Vigna): a fast, small-state generator with excellent statistical quality.
///
/// Proposition ids need uniqueness, not secrecy: nobody gains anything by predicting one. Drawing them from
/// `SystemRandomNumberGenerator` costs a `getrandom` system call per call (about 2 microseconds, as much as a
/// whole decision), so each thread seeds one of these once from the system generator and draws from it.
/// 256 bits of state seeded from the kernel make a collision between threads or restarts as unlikely as with
/// the system generator.
struct Xoshiro256StarStar: RandomNumberGenerator {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    init<Seed: RandomNumberGenerator>(seededFrom seed: inout Seed) {
        repeat {
            state = (seed.next(), seed.next(), seed.next(), seed.next())
        } while state == (0, 0, 0, 0) // The all-zero state is the one fixed point.
    }

    mutating func next() -> UInt64 {
        let result = rotateLeft(state.1 &* 5, by: 7) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = rotateLeft(state.3, by: 45)
        return result
    }

    // Masking shifts: `<<` and `>>` guard against shift counts of 64 and more with branches of their own, and
    // their sum was not recognised as a rotation (about 38 instructions a call, measured with callgrind).
    @inline(__always)
    private func rotateLeft(_ value: UInt64, by amount: UInt64) -> UInt64 {
        (value &<< amount) | (value &>> (64 &- amount))
    }
}

/// Per-thread state of the wire codec: the id generator and a reusable arena.
///
/// Owned by exactly one thread (stored under a pthread key), so it needs no lock; never handed to another
/// thread. The arena's chunks are kept between calls, so a steady stream of requests allocates nothing for the
/// protobuf-c object graphs.
final class WireThreadState {
    // `@exclusivity(unchecked)`: read and written on every call, by the one thread that owns the state, in
    // accesses that never overlap; a run-time check would cost a `swift_beginAccess` call each time.
    @exclusivity(unchecked) var random: Xoshiro256StarStar
    let arena = ProtoArena(initialCapacity: 16 * 1024)
    /// Whether `arena` is lent out: a nested codec call on the same thread gets a fresh arena instead.
    @exclusivity(unchecked) var arenaInUse = false

    private init() {
        var system = SystemRandomNumberGenerator()
        random = Xoshiro256StarStar(seededFrom: &system)
    }

    /// This thread's state, created on first use and released when the thread exits.
    static var current: WireThreadState {
        if let existing = pthread_getspecific(threadStateKey) {
            // The key only ever holds a retained WireThreadState (stored below).
            return Unmanaged<WireThreadState>.fromOpaque(existing).takeUnretainedValue()
        }
        let state = WireThreadState()
        pthread_setspecific(threadStateKey, Unmanaged.passRetained(state).toOpaque())
        return state
    }

    /// Calls `body` with this thread's arena, emptied first; the arena must not outlive the call.
    static func withScratchArena<Result, Failure: Error>(
        _ body: (ProtoArena) throws(Failure) -> Result
    ) throws(Failure) -> Result {
        let state = current
        guard !state.arenaInUse else { return try body(ProtoArena()) }
        state.arenaInUse = true
        defer {
            state.arena.reset()
            state.arenaInUse = false
        }
        return try body(state.arena)
    }
}

@available(*, unavailable)
extension WireThreadState: Sendable {}

/// The pthread key of ``WireThreadState/current``; its destructor releases the thread's state at thread exit.
private let threadStateKey: pthread_key_t = {
    var key = pthread_key_t()
    #if canImport(Darwin)
        let status = pthread_key_create(&key) { pointer in
            Unmanaged<WireThreadState>.fromOpaque(pointer).release()
        }
    #else
        let status = pthread_key_create(&key) { pointer in
            guard let pointer else { return }
            Unmanaged<WireThreadState>.fromOpaque(pointer).release()
        }
    #endif
    // Only fails when the process ran out of keys (PTHREAD_KEYS_MAX): a programming error, not input.
    precondition(status == 0, "pthread_key_create failed with \(status)")
    return key
}()
