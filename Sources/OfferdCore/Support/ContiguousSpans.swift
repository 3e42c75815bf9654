/// Unsafe code of OfferdCore (with `ScopeWalker.considerByGroups` in Engine/DecisionEngine.swift): reading a
/// `String`'s UTF-8 and an `Array`'s elements in place, through the buffer pointers the standard library lends
/// for the duration of a closure.
///
/// Why not the standard library's own spans everywhere: `String.UTF8View.span` is an opaque call into the
/// runtime, where `withContiguousStorageIfAvailable` inlines to a few loads (these run per candidate or per
/// lookup on the engine's hot paths); `Array.span` needs macOS 26 where the package supports macOS 14; and the
/// bounds checks of a span's subscript, in the engine's per-candidate loops, cost 2 to 3% of a Decide call's
/// instructions (callgrind), as the optimizer then stops inlining the top-k buffer into the loop. Each use below
/// keeps its pointer inside the closure that lends it; the spans handed out cannot escape (`Span` is
/// `~Escapable`).

extension String {
    /// Lends the string's UTF-8 to `body`: in place when the storage is contiguous (native and small strings, so
    /// always on Linux), else from a copy.
    @inline(__always)
    func withUTF8Span<Result>(_ body: (_ utf8: Span<UInt8>) -> Result) -> Result {
        // safe: the buffer is valid for the closure's duration, and the span made from it cannot leave it.
        let inPlace = unsafe utf8.withContiguousStorageIfAvailable { bytes in
            body(unsafe Span(_unsafeElements: bytes))
        }
        if let inPlace { return inPlace }
        return Array(utf8).withSpan(body)
    }
}

extension Array {
    /// Lends the array's elements to `body`, read in place.
    @inline(__always)
    func withSpan<Result>(_ body: (_ elements: Span<Element>) -> Result) -> Result {
        // safe: as above, the buffer is valid for the closure's duration and the span cannot leave it.
        unsafe withUnsafeBufferPointer { buffer in body(unsafe Span(_unsafeElements: buffer)) }
    }
}

/// Exact comparison by Unicode code points (SPEC 4: ids and keys are not normalized). Cheaper than `String ==`,
/// which checks canonical equivalence: the length test rejects most mismatches without a call into the runtime.
/// Reads both strings' contiguous UTF-8 (native and small strings have it) rather than walking `UTF8View`
/// indices, which costs a runtime call per byte.
func sameCodePoints(_ lhs: String, _ rhs: String) -> Bool {
    guard lhs.utf8.count == rhs.utf8.count else { return false }
    // safe: both buffers are read inside their closures, at positions below their common count.
    let contiguous = unsafe lhs.utf8.withContiguousStorageIfAvailable { left in
        unsafe rhs.utf8.withContiguousStorageIfAvailable { right in
            // From the end: ids and keys often share a prefix ("offer-"), so a mismatch shows at once.
            var position = left.count
            while position > 0 {
                position -= 1
                if unsafe left[position] != right[position] { return false }
            }
            return true
        }
    }
    if let contiguous, let equal = contiguous { return equal }
    return lhs.utf8.elementsEqual(rhs.utf8)
}

/// ``stableHash(_:)`` of `text`'s UTF-8, over its contiguous storage when it has some (walking `UTF8View` costs a
/// runtime call per byte).
func contiguousStableHash(_ text: String) -> UInt64 {
    // safe: the buffer is read inside its closure only.
    let contiguous = unsafe text.utf8.withContiguousStorageIfAvailable { bytes in
        var hasher = FNV1a64()
        // (Indexed: `for byte in unsafe bytes` crashes the 6.3.1 type checker in whole-module builds.)
        for position in 0..<bytes.count { hasher.combine(unsafe bytes[position]) }
        return fmix64(hasher.value)
    }
    return contiguous ?? stableHash(text.utf8)
}
