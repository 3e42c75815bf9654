import OfferdCore
import OfferdSnapshot
import OfferdSnapshotBuilder

// Usage: offerd-snapshot-bench SNAPSHOT SOURCE [SAMPLES] [copy]   (SAMPLES 0: load figures only; "copy": read the
// file into memory instead of mapping it under a lease)
//        offerd-snapshot-bench --build SOURCE OUTPUT             (only build, reading the source: for callgrind)
//
// Loads and verifies SNAPSHOT, publishes it into an AtomicReferenceStore, reports the resident memory after the
// load, then times identity lookups: SAMPLES (default 200,000) identities taken at random from SOURCE (hits) and as
// many made-up ones (misses). Lookups are timed in batches of 1,000 with the monotonic clock; the figure quoted is
// the median over batches of the per-lookup time. Each pass takes its own random order: the first is the cold
// figure, then the same profiles again, hot sets of 256 and 4,096 profiles repeated, misses, and a dependent chain
// (each lookup's identity chosen from the previous lookup's result: the latency without overlap between lookups).
// Last, the latency of one dependent random read by buffer size, where memory stops answering fast.
//
// Only the public API of OfferdSnapshot, OfferdSnapshotBuilder (for `--build`) and OfferdCore is used, so this
// measures what the server sees.
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

let arguments = CommandLine.arguments
// `--build SOURCE OUTPUT`: only builds (read, not mapped), for instruction counts under callgrind, which cannot run
// the offerd executable; on one core the build parses on the calling thread.
if arguments.count == 4, arguments[1] == "--build" {
    do {
        let summary = try SnapshotBuilder.build(
            input: arguments[2], output: arguments[3], version: "build", progress: nil, mapInput: false)
        print("built \(summary.profileCount) profiles, \(summary.fileSize) bytes")
        exit(0)
    } catch {
        print("build failed: \(error)")
        exit(1)
    }
}
guard arguments.count >= 3 else {
    print("usage: offerd-snapshot-bench SNAPSHOT SOURCE [SAMPLES]")
    exit(2)
}
let snapshotPath = arguments[1]
let sourcePath = arguments[2]
let sampleCount = arguments.count > 3 ? Int(arguments[3]) ?? 200_000 : 200_000
let loading: SnapshotLoading = arguments.count > 4 && arguments[4] == "copy" ? .copy : .mapWhenLeased
let batchLength = 1_000

func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

/// VmRSS of this process in bytes, from /proc/self/status (0 where there is no procfs).
func residentBytes() -> Int {
    procfsKilobytes(file: "/proc/self/status", field: "VmRSS:")
}

/// A "Name: N kB" field of a procfs file, in bytes.
func procfsKilobytes(file path: String, field: String) -> Int {
    guard let file = fopen(path, "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(cString: line)
        if text.hasPrefix(field) {
            let digits = text.filter { $0.isNumber }
            return (Int(digits) ?? 0) * 1024
        }
    }
    return 0
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
}

func format(_ value: Double, _ digits: Int = 3) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return String((value * scale).rounded() / scale)
}

/// Deterministic random numbers (SplitMix64), so every run looks up the same identities.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// The first identity of `sampleCount` lines of the source, chosen at random (by line number) and shuffled.
func sampleIdentities(from path: String, lineCount: Int, random: inout SplitMix64) -> [Identity] {
    var wanted = [Bool](repeating: false, count: lineCount)
    var chosen = 0
    let target = min(sampleCount, lineCount)
    while chosen < target {
        let line = random.next(below: lineCount)
        if !wanted[line] {
            wanted[line] = true
            chosen += 1
        }
    }
    guard let file = fopen(path, "r") else {
        print("cannot open \(path)")
        exit(1)
    }
    defer { fclose(file) }
    var identities: [Identity] = []
    identities.reserveCapacity(target)
    var lineNumber = 0
    var linePointer: UnsafeMutablePointer<CChar>? = nil
    var capacity = 0
    while true {
        let length = getline(&linePointer, &capacity, file)
        if length < 0 { break }
        defer { lineNumber += 1 }
        guard lineNumber < lineCount, wanted[lineNumber], let linePointer else { continue }
        let bytes = [UInt8](UnsafeRawBufferPointer(start: linePointer, count: length))
        guard let document = try? JSONParser.parse(Array(bytes.prefix { $0 != 0x0A })),
            case .array(let items)? = document["identities"], let first = items.first,
            case .string(let namespace)? = first["namespace"], case .string(let id)? = first["id"]
        else { continue }
        identities.append(Identity(namespace: namespace, id: id))
    }
    free(linePointer)
    for index in stride(from: identities.count - 1, to: 0, by: -1) {
        identities.swapAt(index, random.next(below: index + 1))
    }
    return identities
}

/// Median per-lookup nanoseconds over batches of `batchLength` independent lookups; `found` counts the hits.
func timeLookups(_ snapshot: ProfileSnapshot, _ identities: [Identity]) -> (median: Double, found: Int) {
    var perLookup: [Double] = []
    var found = 0
    var start = 0
    while start + batchLength <= identities.count {
        let began = monotonicNanoseconds()
        for index in start..<(start + batchLength) {
            if let profile = snapshot.profile(for: identities[index]) {
                found &+= 1 &+ Int(profile.consents.personalizeContent.rawValue & 0)
            }
        }
        perLookup.append(Double(monotonicNanoseconds() - began) / Double(batchLength))
        start += batchLength
    }
    return (median(perLookup), found)
}

/// Median per-lookup nanoseconds when each lookup's identity depends on the previous result (no overlap).
func timeDependentChain(_ snapshot: ProfileSnapshot, _ identities: [Identity]) -> Double {
    var perLookup: [Double] = []
    var index = 0
    for _ in 0..<(identities.count / batchLength) {
        let began = monotonicNanoseconds()
        for _ in 0..<batchLength {
            let profile = snapshot.profile(for: identities[index])
            // The consent code is data the CPU must load before it knows the next identity.
            let code = Int(profile?.consents.personalizeContent.rawValue ?? 0)
            index = (index &+ 7919 &+ (code & 1)) % identities.count
        }
        perLookup.append(Double(monotonicNanoseconds() - began) / Double(batchLength))
    }
    return median(perLookup)
}

/// The machine's floor for a lookup: nanoseconds per dependent random 8-byte read over `bytes` of anonymous
/// memory with transparent huge pages requested (a pointer chase through a random cycle), median of batches.
func randomReadLatency(bytes: Int) -> (nanoseconds: Double, end: Int) {
    let hugePage = 2 << 20
    let count = bytes / 8
    guard let raw = mmap(nil, bytes + hugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
        raw != MAP_FAILED
    else { return (.nan, 0) }
    defer { munmap(raw, bytes + hugePage) }
    let aligned = raw + (hugePage - Int(bitPattern: raw) % hugePage) % hugePage
    _ = madvise(aligned, bytes, MADV_HUGEPAGE)
    let next = aligned.bindMemory(to: Int.self, capacity: count)
    // Sattolo's algorithm: one cycle through every slot, in random order.
    for index in 0..<count { next[index] = index }
    var random = SplitMix64(state: 7)
    for index in stride(from: count - 1, to: 0, by: -1) {
        let other = random.next(below: index)
        let swapped = next[index]
        next[index] = next[other]
        next[other] = swapped
    }
    var position = 0
    var perRead: [Double] = []
    for _ in 0..<200 {
        let began = monotonicNanoseconds()
        for _ in 0..<batchLength { position = next[position] }
        perRead.append(Double(monotonicNanoseconds() - began) / Double(batchLength))
    }
    return (median(perRead), position)
}

print("date: \(String(cString: ctime([time(nil)])!).filter { $0 != "\n" })")
/// CPU seconds (user + system) of the whole process, all threads.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    #else
        getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

let residentBefore = residentBytes()
let cpuBefore = processCPUSeconds()
let loadBegan = monotonicNanoseconds()
let snapshot: ProfileSnapshot
do {
    snapshot = try ProfileSnapshot.load(path: snapshotPath, loading: loading)
} catch {
    print("load failed: \(error)")
    exit(1)
}
let loadSeconds = Double(monotonicNanoseconds() - loadBegan) / 1e9
let loadCPUSeconds = processCPUSeconds() - cpuBefore
let store = AtomicReferenceStore<ProfileSnapshot>(nil)
let publishBegan = monotonicNanoseconds()
store.publish(snapshot)
let publishSeconds = Double(monotonicNanoseconds() - publishBegan) / 1e9
let residentAfter = residentBytes()
let fileSize = snapshot.fileSize
print("profiles: \(snapshot.profileCount), identities: \(snapshot.identityCount), file: \(fileSize) bytes")
print("load method: \(snapshot.loadMethod)")
print(
    "load+verify: \(format(loadSeconds)) s (\(format(Double(fileSize) / loadSeconds / 1e9, 2)) GB/s); "
        + "publish: \(format(publishSeconds * 1e6, 1)) us; load+publish: \(format(loadSeconds + publishSeconds)) s; "
        + "load CPU time (all threads): \(format(loadCPUSeconds)) s")
print(
    "RSS after load: \(residentAfter) bytes = \(format(Double(residentAfter) / Double(fileSize)))x file size "
        + "(growth over the load: \(format(Double(residentAfter - residentBefore) / Double(fileSize)))x)")
let hugeBytes = procfsKilobytes(file: "/proc/self/smaps_rollup", field: "AnonHugePages:")
print(
    "transparent huge pages: \(hugeBytes / 1_048_576) MiB (\(format(Double(hugeBytes) / Double(fileSize), 2))x file size)"
)
// A mapped snapshot's pages are file pages: resident as RssFile, and 2 MiB-mapped where the page cache holds large
// folios (FilePmdMapped).
let fileResident = procfsKilobytes(file: "/proc/self/status", field: "RssFile:")
let filePmd = procfsKilobytes(file: "/proc/self/smaps_rollup", field: "FilePmdMapped:")
print(
    "file pages resident: \(fileResident / 1_048_576) MiB, of which mapped by 2 MiB entries: \(filePmd / 1_048_576) MiB"
)

guard let current = store.load() else { exit(1) }
// SAMPLES 0: load figures only (for repeated load measurements).
if sampleCount == 0 { exit(0) }
var random = SplitMix64(state: 42)
let sampleBegan = monotonicNanoseconds()
let hits = sampleIdentities(from: sourcePath, lineCount: current.profileCount, random: &random)
var misses: [Identity] = []
misses.reserveCapacity(hits.count)
for _ in 0..<hits.count {
    misses.append(Identity(namespace: "ECID", id: "missing-\(random.next())"))
}
print("sampled \(hits.count) identities in \(format(Double(monotonicNanoseconds() - sampleBegan) / 1e9)) s")

// Each pass takes the identities in a new order: a second pass in the same order over a working set a little larger
// than the last-level cache finds cached exactly the entries it is about to evict, so nearly every read misses, while
// another order hits whatever survived. The first pass runs right after the load, whose verification streamed the
// whole file through the cache, so its profiles come from memory: the cold figure.
var orderRandom = SplitMix64(state: 99)
func shuffled(_ identities: [Identity], _ random: inout SplitMix64) -> [Identity] {
    var result = identities
    for index in stride(from: result.count - 1, to: 0, by: -1) {
        result.swapAt(index, random.next(below: index + 1))
    }
    return result
}
let cold = timeLookups(current, hits)
let warm = timeLookups(current, shuffled(hits, &orderRandom))
let miss = timeLookups(current, misses)
let chain = timeDependentChain(current, shuffled(hits, &orderRandom))
// Sets small enough to stay cached, looked up over and over: what a lookup costs the CPU when memory does not have to
// answer (as for profiles that call often). About four cache lines per profile: 256 profiles fit in L1 and L2,
// 4,096 in L2 and L3.
func timeHotSet(_ size: Int, _ random: inout SplitMix64) -> (median: Double, found: Int, count: Int) {
    let hotSet = Array(hits.prefix(size))
    var passes: [Identity] = []
    while passes.count < 200_000 { passes.append(contentsOf: shuffled(hotSet, &random)) }
    _ = timeLookups(current, passes)
    let timed = timeLookups(current, passes)
    return (timed.median, timed.found, passes.count / batchLength * batchLength)
}
var hotSets: [(Int, (median: Double, found: Int, count: Int))] = []
for size in [256, 4_096] { hotSets.append((size, timeHotSet(size, &orderRandom))) }
let sampled = hits.count / batchLength * batchLength
print(
    "lookup hit, cold (first lookup of each profile after the load): \(format(cold.median, 1)) ns median (found \(cold.found) of \(sampled))"
)
print("lookup hit, again in another order: \(format(warm.median, 1)) ns median")
for (size, hot) in hotSets {
    print(
        "lookup hit, hot set of \(size) profiles: \(format(hot.median, 1)) ns median (found \(hot.found) of \(hot.count))"
    )
}
print("lookup miss: \(format(miss.median, 1)) ns median (found \(miss.found))")
print("lookup hit, dependent chain: \(format(chain, 1)) ns median")
let floor = randomReadLatency(bytes: max(1 << 26, min(fileSize, 1 << 30)) / 8 * 8)
print(
    "machine floor: \(format(floor.nanoseconds, 1)) ns per dependent random read over a huge-page buffer"
        + " of min(file size, 1 GiB) (chase ended at \(floor.end))")
// Where memory stops answering fast: a set of profiles is hot only while its cache lines fit the faster levels.
let ladder = [1 << 18, 1 << 20, 1 << 22, 1 << 24].map { ($0, randomReadLatency(bytes: $0)) }
print(
    "random read latency by buffer size: "
        + ladder.map { "\($0.0 >> 10) KiB \(format($0.1.nanoseconds, 1)) ns" }.joined(separator: ", "))
if cold.found != sampled || warm.found != sampled || hotSets.contains(where: { $0.1.found != $0.1.count })
    || miss.found != 0
{
    print("ERROR: lookups returned wrong results")
    exit(1)
}
