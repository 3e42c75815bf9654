/// The only unsafe code in OfferdCore: lending the contiguous storage of a `String`'s UTF-8 or of an `Array` as a
/// `Span`, which the rest of the module reads with bounds-checked subscripts.
///
/// Why not the standard library's own spans: `String.UTF8View.span` is an opaque call into the runtime (these
/// helpers inline to a few loads, which matters where the engine hashes or compares an id per candidate), and
/// `Array.span` needs macOS 26 where the package supports macOS 14. Each helper wraps a buffer pointer that the
/// standard library lends for the duration of a closure, and the span it makes lives only inside that closure: the
/// span cannot escape (`Span` is `~Escapable`), so no pointer outlives the storage it points into.
///
/// `body` is called from one place in each helper: a closure called from two (the in-place path and the copy
/// for a string without contiguous UTF-8) is compiled out of line, a call per use on the engine's hot paths.

extension String {
    /// Lends the string's UTF-8 to `body`: in place when the storage is contiguous (native and small strings, so
    /// always on Linux), else from a native copy.
    @inline(__always)
    func withUTF8Span<Result>(_ body: (_ utf8: Span<UInt8>) -> Result) -> Result {
        // A bridged string without contiguous UTF-8 (macOS only) is copied first: rare, and it keeps one path.
        let text = isContiguousUTF8 ? self : String(decoding: Array(utf8), as: UTF8.self)
        // safe: the buffer is valid for the closure's duration, and the span made from it cannot leave it. The
        // unwrap cannot fail: `text` has contiguous UTF-8.
        return unsafe text.utf8.withContiguousStorageIfAvailable { bytes in
            body(unsafe Span(_unsafeElements: bytes))
        }.unsafelyUnwrapped
    }
}

/// Lends the UTF-8 of two strings to `body` at once (see ``Swift/String/withUTF8Span(_:)``).
@inline(__always)
func withUTF8Spans<Result>(
    _ first: String, _ second: String, _ body: (_ first: Span<UInt8>, _ second: Span<UInt8>) -> Result
) -> Result {
    let first = first.isContiguousUTF8 ? first : String(decoding: Array(first.utf8), as: UTF8.self)
    let second = second.isContiguousUTF8 ? second : String(decoding: Array(second.utf8), as: UTF8.self)
    // safe: as above; both buffers are valid inside the nested closures, where the spans live.
    return unsafe first.utf8.withContiguousStorageIfAvailable { firstBytes in
        unsafe second.utf8.withContiguousStorageIfAvailable { secondBytes in
            body(unsafe Span(_unsafeElements: firstBytes), unsafe Span(_unsafeElements: secondBytes))
        }.unsafelyUnwrapped
    }.unsafelyUnwrapped
}

extension Array {
    /// Lends the array's elements to `body`, read in place: a span's subscript reads a field of an element where it
    /// lies, where copying the element out of the array costs a retain and a release per reference it holds.
    @inline(__always)
    func withSpan<Result>(_ body: (_ elements: Span<Element>) -> Result) -> Result {
        // safe: as above, the buffer is valid for the closure's duration and the span cannot leave it.
        unsafe withUnsafeBufferPointer { buffer in body(unsafe Span(_unsafeElements: buffer)) }
    }
}
