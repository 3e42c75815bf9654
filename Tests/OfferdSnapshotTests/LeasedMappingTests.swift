import Foundation
import OfferdCore
import OfferdSnapshotBuilder
import OfferdSnapshotTestSupport
import Testing

@testable import OfferdSnapshot

/// Threads that look every profile up again and again and count lookups that differ from what is expected.
private final class Readers: @unchecked Sendable {
    private let stopped = LockedState(false)
    private let results = LockedState<(rounds: Int, wrong: Int)>((0, 0))
    private let done = DispatchGroup()

    init(count: Int, snapshot: ProfileSnapshot, expected: [(Identity, InMemoryProfile)]) {
        for _ in 0..<count {
            done.enter()
            Thread { [self] in
                defer { done.leave() }
                while !stopped.withLock({ $0 }) {
                    var wrong = 0
                    for (identity, profile) in expected
                    where snapshot.profile(for: identity)?.toInMemoryProfile() != profile {
                        wrong += 1
                    }
                    results.withLock {
                        $0.rounds += 1
                        $0.wrong += wrong
                    }
                }
            }.start()
        }
    }

    /// Lets the readers do at least `rounds` more rounds (or until `seconds` pass).
    func waitForRounds(_ rounds: Int, seconds: Double = 10) {
        let target = results.withLock { $0.rounds } + rounds
        let deadline = Date().addingTimeInterval(seconds)
        while results.withLock({ $0.rounds }) < target && Date() < deadline { usleep(1_000) }
    }

    /// Stops the readers; returns how many rounds they read and how many lookups were wrong.
    func stop() -> (rounds: Int, wrong: Int) {
        stopped.withLock { $0 = true }
        done.wait()
        return results.withLock { $0 }
    }
}

@Suite("Snapshot mapped under a read lease", .serialized)
struct LeasedMappingTests {
    private func build(_ directory: TemporaryDirectory, _ name: String, version: String, source: String? = nil)
        throws -> String
    {
        let output = directory.file(name)
        _ = try SnapshotBuilder.build(
            input: source ?? examplesPath(), output: output, version: version, progress: nil)
        return output
    }

    /// Every identity of the snapshot with its profile, read through the copy path (the reference).
    private func expectedProfiles(_ path: String) throws -> [(Identity, InMemoryProfile)] {
        let reference = try ProfileSnapshot.load(path: path, loading: .copy)
        return reference.allProfiles().flatMap { profile in
            profile.identities.map { ($0, profile.toInMemoryProfile()) }
        }
    }

    @Test(arguments: [12, 3_000])
    func mappedLoadReadsEveryProfileLikeTheCopy(syntheticCount: Int) throws {
        let directory = try TemporaryDirectory()
        let source = directory.file("profiles.jsonl")
        try SyntheticProfiles.write(count: syntheticCount, seed: 7, to: source)
        let path = try build(directory, "profiles.snap", version: "v1", source: source)

        let mapped = try ProfileSnapshot.load(path: path)
        let copied = try ProfileSnapshot.load(path: path, loading: .copy)
        #expect(mapped.loadMethod == .mapped)
        #expect(mapped.isFileMapped)
        #expect(copied.loadMethod == .copied(reason: "mapping not requested"))
        #expect(!copied.isFileMapped)
        #expect(mapped.version == copied.version)
        #expect(mapped.checksum == copied.checksum)
        #expect(mapped.fileSize == copied.fileSize)
        #expect(mapped.profileCount == syntheticCount)

        let mappedProfiles = mapped.allProfiles()
        let copiedProfiles = copied.allProfiles()
        #expect(mappedProfiles.count == syntheticCount)
        #expect(mappedProfiles.map { $0.toInMemoryProfile() } == copiedProfiles.map { $0.toInMemoryProfile() })
        for profile in copiedProfiles {
            for identity in profile.identities {
                #expect(mapped.profile(for: identity)?.toInMemoryProfile() == profile.toInMemoryProfile())
            }
        }
        #expect(mapped.profile(for: Identity(namespace: "ECID", id: "no-such-identity")) == nil)
    }

    @Test func damageIsRejectedThroughTheMappingToo() throws {
        let directory = try TemporaryDirectory()
        let path = try build(directory, "profiles.snap", version: "v1")
        var bytes = try readBytes(path)
        bytes[bytes.count / 2] ^= 0x01
        try writeBytes(bytes, to: path)
        #expect(throws: SnapshotLoadError.self) { try ProfileSnapshot.load(path: path) }
        do {
            _ = try ProfileSnapshot.load(path: path)
        } catch {
            #expect(error.kind == .checksumMismatch)
        }
        try writeBytes(Array(bytes.prefix(200)), to: path)
        do {
            _ = try ProfileSnapshot.load(path: path)
            Issue.record("a truncated file was loaded")
        } catch {
            #expect(error.kind == .truncated)
        }
    }

    @Test func inPlaceRewriteByAnotherProcessWaitsForTheHandOverAndReadersKeepTheOldContent() throws {
        let directory = try TemporaryDirectory()
        let path = try build(directory, "live.snap", version: "v1")
        let staging = try build(directory, "staging.snap", version: "v2")
        let expected = try expectedProfiles(path)

        let log = LockedState<[ReloadEvent]>([])
        let reloader = SnapshotReloader(path: path, pollInterval: .seconds(3600)) { event in
            log.withLock { $0.append(event) }
        }
        let old = try reloader.loadInitial()
        #expect(old.loadMethod == .mapped)
        #expect(old.isFileMapped)
        let readers = Readers(count: 2, snapshot: old, expected: expected)
        readers.waitForRounds(20)

        // `cat > file` opens with O_TRUNC: the kernel holds that open until the mapping has moved.
        let writer = try ShellProcess(#"cat "$1" > "$2""#, [staging, path])
        #expect(writer.wait(seconds: 20) == 0, "the writer did not finish")
        readers.waitForRounds(20)
        let (rounds, wrong) = readers.stop()

        #expect(wrong == 0, "\(wrong) lookups differed from the loaded content")
        #expect(rounds >= 40)
        #expect(!old.isFileMapped, "the mapping was not handed over to a private copy")
        #expect(old.loadMethod == .mapped)
        #expect(old.version == "v1")
        #expect(try readBytes(path) == readBytes(staging))
        #expect(old.allProfiles().map { $0.toInMemoryProfile() } == expected.uniqueProfiles)

        #expect(reloader.reload())
        #expect(reloader.current?.version == "v2")
        #expect(reloader.current?.loadMethod == .mapped)
        #expect(old.profile(for: expected[0].0)?.toInMemoryProfile() == expected[0].1)
    }

    @Test func truncationByAnotherProcessKeepsTheOldSnapshotReadable() throws {
        let directory = try TemporaryDirectory()
        let path = try build(directory, "live.snap", version: "v1")
        let staging = try build(directory, "staging.snap", version: "v2")
        let expected = try expectedProfiles(path)
        let reloader = SnapshotReloader(path: path, pollInterval: .seconds(3600)) { _ in }
        let old = try reloader.loadInitial()
        #expect(old.isFileMapped)
        let readers = Readers(count: 2, snapshot: old, expected: expected)
        readers.waitForRounds(20)

        let truncator = try ShellProcess(#": > "$1""#, [path])
        #expect(truncator.wait(seconds: 20) == 0, "the truncation did not finish")
        #expect(FileStatus.of(path, followSymlinks: true)?.size == 0)
        readers.waitForRounds(20)
        #expect(!old.isFileMapped)

        // The empty file is refused; the old snapshot keeps serving, still readable in full.
        #expect(!reloader.reload())
        #expect(reloader.current === old)
        let (_, wrong) = readers.stop()
        #expect(wrong == 0)
        #expect(old.allProfiles().map { $0.toInMemoryProfile() } == expected.uniqueProfiles)

        let writer = try ShellProcess(#"cat "$1" > "$2""#, [staging, path])
        #expect(writer.wait(seconds: 20) == 0)
        #expect(reloader.reload())
        #expect(reloader.current?.version == "v2")
    }

    @Test func fileOpenForWritingByAnotherProcessIsCopiedNotMapped() throws {
        let directory = try TemporaryDirectory()
        let path = try build(directory, "live.snap", version: "v1")
        let expected = try expectedProfiles(path)
        // Holds the file open for writing (appending nothing) until its standard input closes.
        let holder = try ShellProcess(#"exec 3>>"$1"; echo ready; read line"#, [path])
        defer { holder.finish() }
        #expect(holder.readLine() == "ready")

        let snapshot = try ProfileSnapshot.load(path: path)
        #expect(snapshot.loadMethod == .copied(reason: "no read lease: the file is open for writing"))
        #expect(!snapshot.isFileMapped)
        #expect(snapshot.version == "v1")
        for (identity, profile) in expected {
            #expect(snapshot.profile(for: identity)?.toInMemoryProfile() == profile)
        }
        #expect(snapshot.loadMethod.description.contains("copied into memory"))

        holder.finish()
        let mapped = try ProfileSnapshot.load(path: path)
        #expect(mapped.loadMethod == .mapped)
        #expect(mapped.loadMethod.description == "mapped under a read lease")
    }

    @Test func theLeaseLivesExactlyAsLongAsTheMapping() throws {
        let directory = try TemporaryDirectory()
        let path = try build(directory, "live.snap", version: "v1")
        /// Whether a non-blocking open for writing gets in at once (EAGAIN while a lease is held; that
        /// attempt also breaks the lease, which makes a mapped snapshot move to its private copy).
        func writableWithoutWaiting() -> Bool {
            let descriptor = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC)
            if descriptor >= 0 { close(descriptor) }
            return descriptor >= 0
        }
        var snapshot: ProfileSnapshot? = try ProfileSnapshot.load(path: path)
        #expect(snapshot?.isFileMapped == true)
        #expect(!writableWithoutWaiting(), "no lease was held while mapped")
        snapshot = nil
        #expect(writableWithoutWaiting(), "the lease outlived the snapshot")

        snapshot = try ProfileSnapshot.load(path: path)
        #expect(snapshot?.loadMethod == .mapped)
        #expect(!writableWithoutWaiting())
        // The attempt broke the lease: the monitor moves the mapping to a copy and lets writers in.
        let deadline = Date().addingTimeInterval(10)
        while snapshot?.isFileMapped == true && Date() < deadline { usleep(1_000) }
        #expect(snapshot?.isFileMapped == false)
        #expect(writableWithoutWaiting())
        #expect(snapshot?.profile(for: Identity(namespace: "ECID", id: "4711")) != nil)
    }
}

extension [(Identity, InMemoryProfile)] {
    /// The profiles in file order, once each (a profile appears once per identity here).
    fileprivate var uniqueProfiles: [InMemoryProfile] {
        var seen: [InMemoryProfile] = []
        for (_, profile) in self where seen.last != profile { seen.append(profile) }
        return seen
    }
}
