// OfferdSnapshot: the profile snapshot's read path. The binary format (SnapshotFormat.swift), the loader that maps
// a file under a read lease or copies it and verifies it (this file, SnapshotBuffer.swift, LeasedFileMapping.swift),
// lookups in place (SnapshotProfile.swift), the lock-free store, the file watcher and the reloader. The server
// depends on this module only; building snapshots is OfferdSnapshotBuilder's, on top of it, which reaches what it
// needs here through `package` declarations (no public API of its own).
//
// Unsafe code (raw pointers, `withUnsafe*`, `unsafeBitCast`, mmap and the other C calls that take pointers) is in
// exactly these files, which `-strict-memory-safety` confirms; every other file works on Swift values and the
// bounds-checked readers of SnapshotBuffer.swift:
// - SnapshotBuffer.swift: the snapshot's bytes (anonymous memory or a leased mapping) and their bounds-checked
//   reads.
// - LeasedFileMapping.swift: the mapping under a read lease, its hand-over to a private copy (mremap) when a
//   writer breaks the lease, and the check of SIGIO's disposition.
// - UnsafeIO.swift: POSIX reads, `stat`, the lease calls, the system clocks, XXH3.
// - SnapshotFormat.swift: hashing an identity's UTF-8 and the body digest, from raw buffers.
// - ProfileSnapshot.swift (this file): the declared header length read from a mapping, lookups by raw UTF-8.
// - SnapshotProfile.swift: a record's header and identity lengths read straight from the buffer once the record is
//   known to lie in it (every lookup runs this), and the primary identity's UTF-8 handed out as raw buffers.

import OfferdCore

/// Why a snapshot file was refused. The message names the file and the problem.
public struct SnapshotLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem, for callers that react differently (tests, metrics labels).
    public enum Kind: String, Sendable, Equatable {
        /// The file cannot be opened or read (missing, permissions, a directory).
        case unreadable
        /// The file does not start with the snapshot magic number (empty, foreign).
        case notASnapshot
        /// A snapshot of a format version this build does not read.
        case unsupportedVersion
        /// Shorter than its header says.
        case truncated
        /// The checksum does not match the content.
        case checksumMismatch
        /// Structurally invalid although the checksum matched (a hostile or buggy writer).
        case malformed
    }

    public var path: String
    public var kind: Kind
    public var message: String

    public init(path: String, kind: Kind, message: String) {
        self.path = path
        self.kind = kind
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// How a snapshot's bytes came into memory.
public enum SnapshotLoadMethod: Sendable, Equatable, CustomStringConvertible {
    /// Mapped in place under a read lease: loading costs one checksum pass over the page cache. A writer that
    /// later opens or truncates the file waits until the mapping has moved to a private copy (same bytes,
    /// same addresses), which readers do not notice.
    case mapped
    /// Read into a private buffer; `reason` says why the file was not mapped (e.g. it was open for writing).
    case copied(reason: String)

    public var description: String {
        switch self {
        case .mapped: "mapped under a read lease"
        case .copied(let reason): "copied into memory (\(reason))"
        }
    }
}

/// How ``ProfileSnapshot/load(path:loading:)`` may bring the file into memory.
public enum SnapshotLoading: Sendable, Equatable {
    /// Map the file under a read lease when one can be had, else read it into memory (the default).
    case mapWhenLeased
    /// Always read the file into private memory.
    case copy
}

/// A loaded, verified, immutable profile snapshot (SPEC 5.2), looked up in place.
///
/// The file is mapped under a read lease, or read once into one buffer when no
/// lease can be had (see `SnapshotBuffer`); ``profile(for:)`` hashes the identity, probes the open-addressing
/// index and returns a ``SnapshotProfile`` view over the record's bytes, with
/// no per-profile objects. The buffer is freed when the last reference (the
/// store, or a ``SnapshotProfile`` still used by a request) goes away.
///
/// Loading checks the magic number, the format version, the file length, the
/// XXH3 checksum over the whole content (computed while reading, two threads
/// for large files) and every section bound. Records are
/// bounds-checked on every read instead of at load, which keeps loading at
/// checksum speed: a file with a valid checksum but hostile records yields
/// missing values, never a read outside the buffer.
public final class ProfileSnapshot: Sendable {
    let region: SnapshotBuffer
    /// Snapshot version string (`--version`, or a content hash).
    public let version: String
    /// When the snapshot was built, in epoch seconds.
    public let createdAt: Int64
    public let profileCount: Int
    public let identityCount: Int
    /// Size of the file in bytes.
    public let fileSize: Int
    /// The stored checksum (verified at load).
    public let checksum: UInt64

    /// The event log folded into this snapshot (SPEC 9.6); empty, with no watermark, when none was.
    public let folded: FoldedState
    /// The position of the last folded log entry (SPEC 9.6); nil for a snapshot built without folding.
    public var watermark: String? { folded.watermark }
    /// Whether anything was folded in (a stored flag: Decide asks it on every call without an event log).
    public let hasFoldedState: Bool

    let recordsStart: Int
    let recordsEnd: Int
    let stringsStart: Int
    let stringsEnd: Int
    let stringCount: Int
    let slotsStart: Int
    let slotCount: Int

    private init(
        region: SnapshotBuffer, version: String, createdAt: Int64, profileCount: Int, identityCount: Int,
        checksum: UInt64, recordsStart: Int, recordsEnd: Int, stringsStart: Int, stringsEnd: Int,
        stringCount: Int, slotsStart: Int, slotCount: Int, folded: FoldedState
    ) {
        self.folded = folded
        hasFoldedState = !folded.isEmpty
        self.region = region
        self.version = version
        self.createdAt = createdAt
        self.profileCount = profileCount
        self.identityCount = identityCount
        fileSize = region.count
        self.checksum = checksum
        self.recordsStart = recordsStart
        self.recordsEnd = recordsEnd
        self.stringsStart = stringsStart
        self.stringsEnd = stringsEnd
        self.stringCount = stringCount
        self.slotsStart = slotsStart
        self.slotCount = slotCount
    }

    /// How the bytes were loaded (for logs: "mapped under a read lease" or "copied into memory (why)").
    public var loadMethod: SnapshotLoadMethod { region.loadMethod }

    /// Whether lookups read the file's own pages right now: true for a mapped snapshot until a writer of the
    /// file made it move to a private copy.
    public var isFileMapped: Bool { region.isFileMapped }

    /// Reads and verifies the snapshot at `path`: maps it under a read lease when `loading` allows and a lease
    /// can be had, else reads it into memory.
    public static func load(
        path: String, loading: SnapshotLoading = .mapWhenLeased
    ) throws(SnapshotLoadError) -> ProfileSnapshot {
        func fail(_ kind: SnapshotLoadError.Kind, _ message: String) -> SnapshotLoadError {
            SnapshotLoadError(path: path, kind: kind, message: message)
        }
        let file: PosixFile
        do {
            file = try PosixFile.openForReading(path)
        } catch {
            throw fail(.unreadable, error.isNotFound ? "no such file" : "cannot open: \(error)")
        }
        // A mapping keeps the descriptor: its lease lives as long as the descriptor stays open.
        var descriptorOwnedByMapping = false
        defer { if !descriptorOwnedByMapping { try? file.close() } }
        let status: FileStatus
        do {
            status = try FileStatus.of(file)
        } catch {
            throw fail(.unreadable, "cannot stat: \(error)")
        }
        guard !status.isDirectory else { throw fail(.unreadable, "is a directory, not a snapshot file") }
        guard status.isRegularFile else { throw fail(.unreadable, "not a regular file") }
        guard status.size > 0 else { throw fail(.notASnapshot, "empty file, not a snapshot") }
        var whyNotMapped = "mapping not requested"
        if loading == .mapWhenLeased {
            // The size and the header length are read again under the lease: from then on no writer can change
            // them without first making the mapping move to a private copy.
            switch LeasedFileMapping.map(
                file: file,
                count: { file throws(SystemCallError) in
                    Int(try FileStatus.of(file).size)
                })
            {
            case .success(let mapping):
                descriptorOwnedByMapping = true
                let region = SnapshotBuffer(mapping: mapping, chunkedFrom: headerLength(of: mapping))
                return try verify(region, fail: fail)
            case .failure(let unavailable):
                whyNotMapped = unavailable.description
            }
        }
        let size = Int(status.size)
        // The header length first, so that the body's chunks can be digested while they are read.
        var expectedHeaderLength = SnapshotFormat.headerLength
        if let start = try? file.read(count: min(size, 16), at: 0), let length = start.loadLE32(at: 12) {
            expectedHeaderLength = Int(length)
        }
        let region: SnapshotBuffer
        do {
            region = try SnapshotBuffer(
                file: file, count: size, chunkedFrom: expectedHeaderLength, whyNotMapped: whyNotMapped)
        } catch {
            throw fail(.unreadable, "cannot read: \(error)")
        }
        return try verify(region, fail: fail)
    }

    /// The header length a mapped file declares (checked later by `verify`), or the standard one.
    private static func headerLength(of mapping: LeasedFileMapping) -> Int {
        guard mapping.count >= 16 else { return SnapshotFormat.headerLength }
        let bytes = UnsafeRawBufferPointer(start: mapping.start, count: 16)
        return Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
    }

    private static func verify(
        _ region: SnapshotBuffer, fail: (SnapshotLoadError.Kind, String) -> SnapshotLoadError
    ) throws(SnapshotLoadError) -> ProfileSnapshot {
        typealias Field = SnapshotFormat.Header
        guard let magic = region.copyBytes(0, 8), magic == SnapshotFormat.magic else {
            throw fail(.notASnapshot, "not an offerd snapshot (wrong magic number)")
        }
        guard let formatVersion = region.u32(Field.formatVersion), let headerLength = region.int32(Field.headerLength)
        else { throw fail(.truncated, "truncated header (\(region.count) bytes)") }
        guard (SnapshotFormat.oldestReadableVersion...SnapshotFormat.formatVersion).contains(formatVersion) else {
            throw fail(
                .unsupportedVersion,
                "unsupported snapshot format version \(formatVersion)"
                    + " (this build reads \(SnapshotFormat.formatVersion))")
        }
        guard headerLength >= SnapshotFormat.versionOffset, headerLength % 8 == 0 else {
            throw fail(.malformed, "invalid header length \(headerLength)")
        }
        guard region.count >= headerLength, let fileLength = region.int64(Field.fileLength) else {
            throw fail(.truncated, "truncated header: file has \(region.count) bytes, header needs \(headerLength)")
        }
        guard fileLength == region.count else {
            if fileLength > region.count {
                throw fail(.truncated, "truncated: file has \(region.count) bytes, header says \(fileLength)")
            }
            throw fail(.malformed, "file has \(region.count) bytes, header says \(fileLength)")
        }

        // Checksum first: every later check then only guards against a hostile writer, not damage.
        guard let storedChecksum = region.u64(Field.checksum), var header = region.copyBytes(0, headerLength) else {
            throw fail(.truncated, "truncated header")
        }
        header.storeLE(UInt64(0), at: Field.checksum)
        let bodyDigest = region.bodyDigest(from: headerLength)
        guard xxh3(header, seed: bodyDigest) == storedChecksum else {
            throw fail(.checksumMismatch, "checksum mismatch: the file is corrupted or was modified")
        }

        guard let createdAt = region.u64(Field.createdAt),
            let profileCount = region.int64(Field.profileCount),
            let identityCount = region.int64(Field.identityCount),
            let recordsOffset = region.int64(Field.recordsOffset),
            let recordsLength = region.int64(Field.recordsLength),
            let stringsOffset = region.int64(Field.stringsOffset),
            let stringsLength = region.int64(Field.stringsLength),
            let indexOffset = region.int64(Field.indexOffset),
            let indexLength = region.int64(Field.indexLength),
            let versionLength = region.int32(Field.versionLength)
        else { throw fail(.malformed, "header field out of range") }

        guard versionLength <= SnapshotFormat.maximumVersionLength,
            SnapshotFormat.versionOffset + versionLength <= headerLength,
            let version = region.string(SnapshotFormat.versionOffset, versionLength)
        else { throw fail(.malformed, "invalid version string length \(versionLength)") }

        for (name, offset, length) in [
            ("records", recordsOffset, recordsLength), ("strings", stringsOffset, stringsLength),
            ("index", indexOffset, indexLength),
        ] {
            guard offset >= headerLength, offset + length <= fileLength else {
                throw fail(.malformed, "\(name) section [\(offset), +\(length)) outside the file")
            }
        }

        var folded = FoldedState()
        if formatVersion >= 4, headerLength >= Field.foldedLength + 8 {
            guard let foldedOffset = region.int64(Field.foldedOffset),
                let foldedLength = region.int64(Field.foldedLength)
            else { throw fail(.malformed, "header field out of range") }
            if foldedLength > 0 {
                guard foldedOffset >= headerLength, foldedOffset + foldedLength <= fileLength,
                    let bytes = region.copyBytes(foldedOffset, foldedLength)
                else {
                    throw fail(.malformed, "folded-state section [\(foldedOffset), +\(foldedLength)) outside the file")
                }
                switch FoldedState.decode(bytes) {
                case .success(let state): folded = state
                case .failure(let error): throw fail(.malformed, "folded-state section: \(error.message)")
                }
            }
        }

        guard let stringCount = region.int64(stringsOffset), stringsLength >= 8,
            stringCount <= (stringsLength - 8) / 8
        else { throw fail(.malformed, "invalid string table") }

        guard let slotCount = region.int64(indexOffset), slotCount >= 1,
            slotCount <= (indexLength - 8) / SnapshotFormat.slotLength,
            indexLength == 8 + slotCount * SnapshotFormat.slotLength
        else { throw fail(.malformed, "invalid identity index") }
        guard identityCount <= slotCount, profileCount <= identityCount else {
            throw fail(.malformed, "inconsistent counts: \(profileCount) profiles, \(identityCount) identities")
        }

        return ProfileSnapshot(
            region: region, version: version, createdAt: Int64(bitPattern: createdAt), profileCount: profileCount,
            identityCount: identityCount, checksum: storedChecksum, recordsStart: recordsOffset,
            recordsEnd: recordsOffset + recordsLength, stringsStart: stringsOffset,
            stringsEnd: stringsOffset + stringsLength, stringCount: stringCount, slotsStart: indexOffset + 8,
            slotCount: slotCount, folded: folded)
    }

    /// The profile holding `identity` (namespace compared case-insensitively in ASCII, id exact), if any.
    public func profile(for identity: Identity) -> SnapshotProfile? {
        var namespace = identity.namespace
        var id = identity.id
        return namespace.withUTF8 { namespaceBytes in
            id.withUTF8 { idBytes in
                profile(namespace: UnsafeRawBufferPointer(namespaceBytes), id: UnsafeRawBufferPointer(idBytes))
            }
        }
    }

    /// ``profile(for:)`` of an identity's UTF-8: hashing and comparing the bytes directly, and checking a record
    /// whole only once its identities matched, is most of what a lookup of a cached profile costs.
    func profile(namespace: UnsafeRawBufferPointer, id: UnsafeRawBufferPointer) -> SnapshotProfile? {
        let hash = SnapshotFormat.identityHash(namespace: namespace, id: id)
        var slot = SnapshotFormat.homeSlot(hash, slotCount: slotCount)
        // Bounded by the slot count, so a hostile index without empty slots still terminates.
        for _ in 0..<slotCount {
            let slotOffset = slotsStart + slot * SnapshotFormat.slotLength
            guard let recordOffset = region.u64(slotOffset + 8), recordOffset != SnapshotFormat.emptySlot else {
                return nil
            }
            if region.u64(slotOffset) == hash, recordOffset < UInt64(recordsEnd - recordsStart),
                recordHasIdentity(recordsStart + Int(recordOffset), namespace: namespace, id: id),
                let profile = SnapshotProfile(snapshot: self, recordStart: recordsStart + Int(recordOffset))
            {
                return profile
            }
            slot += 1
            if slot == slotCount { slot = 0 }
        }
        return nil
    }

    /// Whether the record at `recordStart` lists the identity. Reads only its identities, each bounds-checked
    /// against the file; the record as a whole is checked when a ``SnapshotProfile`` is made of it.
    private func recordHasIdentity(
        _ recordStart: Int, namespace: UnsafeRawBufferPointer, id: UnsafeRawBufferPointer
    ) -> Bool {
        guard let count = region.int32(recordStart + SnapshotFormat.Record.identityCount) else { return false }
        var position = recordStart + SnapshotFormat.Record.headerLength
        // Each identity moves `position` on by at least 8 bytes, so a hostile count ends at the end of the file.
        for _ in 0..<count {
            guard let namespaceLength = region.int32(position),
                let idLength = region.int32(position + 4 + namespaceLength)
            else { return false }
            let idStart = position + 8 + namespaceLength
            if region.equals(idStart, idLength, id), region.equalsFoldingASCII(position + 4, namespaceLength, namespace)
            {
                return true
            }
            position = idStart + idLength
        }
        return false
    }

    /// Every profile in file order (for tools and tests; the server only looks up).
    public func allProfiles() -> [SnapshotProfile] {
        var profiles: [SnapshotProfile] = []
        var position = recordsStart
        while position < recordsEnd, let profile = SnapshotProfile(snapshot: self, recordStart: position) {
            profiles.append(profile)
            position += profile.recordLength
        }
        return profiles
    }

    // MARK: String table

    /// The absolute position and length of string `index`, bounds-checked.
    @inline(__always)
    func stringLocation(_ index: UInt32) -> (offset: Int, length: Int)? {
        let index = Int(index)
        guard index < stringCount, let relative = region.int64(stringsStart + 8 + index * 8) else { return nil }
        let offset = stringsStart + relative
        guard let length = region.int32(offset), offset + 4 + length <= stringsEnd else { return nil }
        return (offset + 4, length)
    }

    func string(_ index: UInt32) -> String? {
        guard let location = stringLocation(index) else { return nil }
        return region.string(location.offset, location.length)
    }

    func stringEquals(_ index: UInt32, _ text: String) -> Bool {
        guard let location = stringLocation(index) else { return false }
        return region.equals(location.offset, location.length, text)
    }
}
