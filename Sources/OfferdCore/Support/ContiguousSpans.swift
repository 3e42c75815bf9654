/// The only unsafe code in OfferdCore: lending the contiguous storage of a `String`'s UTF-8 or of an `Array` as a
/// `Span`, which the rest of the module reads with bounds-checked subscripts.
///
/// Why not the standard library's own spans: `String.UTF8View.span` is an opaque call into the runtime (these
/// helpers inline to a few loads, which matters where the engine hashes or compares an id per candidate), and
/// `Array.span` needs macOS 26 where the package supports macOS 14. Each helper wraps a buffer pointer that the
/// standard library lends for the duration of a closure, and the span it makes lives only inside that closure: the
/// span cannot escape (`Span` is `~Escapable`), so no pointer outlives the storage it points into.

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
    /// Lends the array's elements to `body`, read in place: a span's subscript reads a field of an element where it
    /// lies, where copying the element out of the array costs a retain and a release per reference it holds.
    @inline(__always)
    func withSpan<Result>(_ body: (_ elements: Span<Element>) -> Result) -> Result {
        // safe: as above, the buffer is valid for the closure's duration and the span cannot leave it.
        unsafe withUnsafeBufferPointer { buffer in body(unsafe Span(_unsafeElements: buffer)) }
    }
}
