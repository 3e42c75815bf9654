import FuzzDriver
import FuzzXXHash
import OfferdCore
import OfferdSnapshot

#if canImport(Glibc)
    import Glibc
#endif

/// The snapshot loader on fuzzed files. Inputs that start like a snapshot (magic, plausible header length) are
/// re-sealed first: the file length and the XXH3 checksum are rewritten to match, as a hostile writer would,
/// so the fuzzer explores the structure checks and the record readers rather than the checksum. A loaded
/// snapshot is then read in full (every profile, identity lookups, attributes).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSnapshot(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var bytes = Array(UnsafeBufferPointer(start: data, count: count))
    reseal(&bytes)
    let path = snapshotPath
    guard let file = fopen(path, "wb") else {
        return 0
    }
    _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
    guard let snapshot = try? ProfileSnapshot.load(path: path) else {
        return 0
    }
    for profile in snapshot.allProfiles() {
        _ = profile.identities
        _ = profile.toInMemoryProfile()
        _ = profile.consents
        _ = profile.isMember(of: InternedName("vip"))
        _ = profile.cappingCount(for: InternedName("o1"))
        for path in probePaths {
            _ = profile.attribute(at: path)
        }
        _ = snapshot.profile(for: profile.primaryIdentity)
    }
    _ = snapshot.profile(for: Identity(namespace: "ECID", id: "4711"))
    return 0
}

private let snapshotPath = "/tmp/offerd-fuzz-snapshot-\(getpid()).snap"

private let probePaths: [AttributePath] = [
    AttributePath(["loyalty", "tier"]), AttributePath(["loyalty"]), AttributePath(["a", "b", "c"]),
    AttributePath([""]),
]

private func storeLE(_ value: UInt64, at offset: Int, in bytes: inout [UInt8]) {
    for i in 0..<8 {
        bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))
    }
}

/// Mirrors the loader's check: XXH3(header with a zero checksum field, seed: the chunked body digest).
private func reseal(_ bytes: inout [UInt8]) {
    guard bytes.count >= 112, bytes.starts(with: Array("OFRDSNAP".utf8)) else {
        return
    }
    // The header length is the file's own (offset 12, little-endian u32), as the loader reads it.
    let headerLength = (0..<4).reduce(0) { $0 | Int(bytes[12 + $1]) << (8 * $1) }
    guard headerLength >= 112, headerLength <= bytes.count, headerLength % 8 == 0 else {
        return
    }
    storeLE(UInt64(bytes.count), at: 24, in: &bytes)
    storeLE(0, at: 16, in: &bytes)
    // `bytes` holds at least 112 bytes here, so its base address exists.
    // Format 2: the body digest is XXH3 over the little-endian XXH3 digests of the body's 1 MiB chunks.
    var chunkDigests: [UInt8] = []
    var chunkStart = headerLength
    while chunkStart < bytes.count {
        let chunkEnd = min(bytes.count, chunkStart + (1 << 20))
        let digest = bytes.withUnsafeBytes { raw in
            UInt64(XXH3_64bits(raw.baseAddress! + chunkStart, chunkEnd - chunkStart))
        }
        for i in 0..<8 { chunkDigests.append(UInt8(truncatingIfNeeded: digest >> (8 * UInt64(i)))) }
        chunkStart = chunkEnd
    }
    let bodyDigest = chunkDigests.withUnsafeBytes { raw in XXH3_64bits(raw.baseAddress, raw.count) }
    let checksum = bytes.withUnsafeBytes { raw in
        XXH3_64bits_withSeed(raw.baseAddress, headerLength, XXH64_hash_t(bodyDigest))
    }
    storeLE(UInt64(checksum), at: 16, in: &bytes)
}

/// The executable's entry (SwiftPM aliases `main` to it): hands the arguments and the target to libFuzzer.
@_cdecl("FuzzSnapshot_main")
public func fuzzSnapshotMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    offerd_fuzz_run(argc, argv) { data, size in fuzzSnapshot(data, size) }
}
