// The builder's writing side of the POSIX calls (creating, writing, renaming and syncing files) and its streaming
// XXH3 checksum, on top of the read path's PosixFile (OfferdSnapshot's UnsafeIO.swift). One of the files of
// OfferdSnapshotBuilder that hold unsafe code (the list is in SnapshotBuilder.swift).
internal import CXXHash
import OfferdSnapshot

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

extension PosixFile {
    /// Creates a new file, failing if it exists.
    static func createExclusive(_ path: String, mode: mode_t = 0o644) throws(SystemCallError) -> PosixFile {
        let fd = retryingOnInterrupt { open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode) }
        guard fd >= 0 else { throw SystemCallError.last("open") }
        return PosixFile(descriptor: fd)
    }

    /// Writes all of `bytes` at the current position.
    func write(_ bytes: ArraySlice<UInt8>) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                retryingOnInterrupt { systemWrite(descriptor, raw.baseAddress! + done, raw.count - done) }
            }
            guard written >= 0 else { throw SystemCallError.last("write") }
            done += written
        }
    }

    /// Writes all of `bytes` (raw memory) at the current position.
    func write(_ bytes: UnsafeRawBufferPointer) throws(SystemCallError) {
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let written = retryingOnInterrupt { systemWrite(descriptor, base + done, bytes.count - done) }
            guard written >= 0 else { throw SystemCallError.last("write") }
            done += written
        }
    }

    /// Writes all of `bytes` at `offset`, leaving the current position alone.
    func write(_ bytes: [UInt8], at offset: Int) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                retryingOnInterrupt {
                    pwrite(descriptor, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                }
            }
            guard written >= 0 else { throw SystemCallError.last("pwrite") }
            done += written
        }
    }

    func synchronize() throws(SystemCallError) {
        guard fsync(descriptor) == 0 else { throw SystemCallError.last("fsync") }
    }
}

// Named apart: inside PosixFile, `write` would otherwise resolve to the methods.
@inline(__always) private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

/// Renames `from` to `to` atomically (same file system), replacing `to`.
func renameFile(from: String, to: String) throws(SystemCallError) {
    guard rename(from, to) == 0 else { throw SystemCallError.last("rename") }
}

/// Removes a file, ignoring a missing one.
func removeFileIfPresent(_ path: String) {
    _ = unlink(path)
}

/// Flushes a directory's entries (after a rename into it) so the new name survives a crash.
func synchronizeDirectory(_ path: String) {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    _ = fsync(fd)
    _ = close(fd)
}

/// The process id, to make temporary names unique.
func currentProcessID() -> Int32 { getpid() }

// MARK: - XXH3 checksum

/// Streaming XXH3-64 over the bytes a builder writes; owns its C state.
final class XXH3Stream {
    private let state: OpaquePointer

    init() {
        // XXH3_createState only fails when malloc fails, which Swift treats as fatal anyway.
        guard let state = XXH3_createState() else { fatalError("XXH3_createState: out of memory") }
        self.state = state
        XXH3_64bits_reset(state)
    }

    deinit {
        XXH3_freeState(state)
    }

    func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { raw in
            _ = XXH3_64bits_update(state, raw.baseAddress, raw.count)
        }
    }

    func digest() -> UInt64 { UInt64(XXH3_64bits_digest(state)) }

    /// Starts over, as if just created.
    func reset() { XXH3_64bits_reset(state) }

    /// ``update(_:)`` from raw memory (the builder's records, written straight from a parsed batch).
    func update(_ bytes: UnsafeRawBufferPointer) {
        _ = XXH3_64bits_update(state, bytes.baseAddress, bytes.count)
    }
}

/// The builder's side of ``SnapshotChecksum``: chunk digests of bytes streamed in pieces of any size, read from
/// raw memory; a complete chunk inside one piece is hashed in one call, without the streaming state.
final class ChunkedDigestStream {
    private let stream = XXH3Stream()
    private var pendingInChunk = 0
    private var digests: [UInt64] = []

    func update(_ bytes: UnsafeRawBufferPointer) {
        let chunkLength = SnapshotFormat.checksumChunkLength
        var position = 0
        while position < bytes.count {
            if pendingInChunk == 0, bytes.count - position >= chunkLength {
                digests.append(xxh3(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + chunkLength)])))
                position += chunkLength
                continue
            }
            let take = min(bytes.count - position, chunkLength - pendingInChunk)
            stream.update(UnsafeRawBufferPointer(rebasing: bytes[position..<(position + take)]))
            pendingInChunk += take
            position += take
            if pendingInChunk == chunkLength {
                digests.append(stream.digest())
                stream.reset()
                pendingInChunk = 0
            }
        }
    }

    func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    func update(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The body digest of everything streamed (call once, at the end).
    func digest() -> UInt64 {
        if pendingInChunk > 0 {
            digests.append(stream.digest())
            stream.reset()
            pendingInChunk = 0
        }
        return SnapshotChecksum.combine(digests)
    }
}
