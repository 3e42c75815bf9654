// swift-tools-version: 6.2
// offerd: an offer-decisioning gRPC server for the edge.
//
// Dependencies point one way: Snapshot -> Core; SnapshotBuilder -> Snapshot;
// Wire -> Core + COfferdProto; Transport -> CNGHTTP2 + NIO; Server -> everything
// but the snapshot builder (the command line adds it). The decision engine
// (OfferdCore) has no I/O and no C, and is built with strict memory safety
// checking: its unsafe code is Sources/OfferdCore/Support/ContiguousSpans.swift
// (String UTF-8 and Array storage read in place) and the screened fast paths
// in Sources/OfferdCore/Engine/DecisionEngine.swift (withScreens, the
// considerByGroups / considerByFormula / considerInScoreOrder loops and their
// shared offer and passesScreen).
import PackageDescription

/// The engine's entry point is generic over the profile type, and the server
/// calls it with the snapshot's profile view from another module: without
/// cross-module optimization every rule evaluation instantiates generic
/// metadata at run time (measured: most of a Decide call's CPU). Measured
/// again with benchmarks/callgrind/run.sh: 42,017 instructions per Decide
/// without it, 38,811 with it (+8%).
let crossModuleOptimization: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"])]

/// Run-time exclusivity checks (swift_beginAccess on every class property and
/// global access) cost about 3% of a Decide call's CPU under load. Debug builds,
/// which the test suites run, keep them, so an overlapping access is still
/// caught by the tests; release builds of the transport, the server and
/// OfferdCore drop them. No attribute of ours reaches the accesses they save
/// there: the server inlines NIO's ByteBuffer code, and OfferdCore's code is
/// inlined into the server by cross-module optimization with the checks it was
/// compiled with (about 75 instructions per Decide each). OfferdWire marks its
/// two hot per-thread classes (ProtoArena, WireThreadState)
/// `@exclusivity(unchecked)` instead of the flag; OfferdSnapshot's read path
/// has no hot class property.
let requestPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
    name: "offerd",
    platforms: [.macOS(.v14)],
    // The library products serve the side packages (benchmarks/peers, benchmarks/micro, fuzz), which depend on
    // this package by path, where SwiftPM allows unsafe flags. A versioned dependency on any of them is refused
    // for now: OfferdCore, which all of them build on, keeps -cross-module-optimization (doing without it means
    // @inlinable and @usableFromInline across the whole generic decide path and what it touches, most of the
    // module), and OfferdServer and OfferdTransport keep the release exclusivity flag (see above). COfferdProto,
    // OfferdSnapshot and OfferdWire carry no unsafe flag of their own.
    // Products a user can depend on by URL and version carry no unsafe flag in their targets: the executable and
    // the event log. The underscored libraries exist for this repository's side packages (benchmarks/, fuzz/), which
    // depend on this one by path, where SwiftPM allows unsafe flags; they are no API. OfferdCore still needs
    // -cross-module-optimization (without it a Decide costs 8% more instructions: the generic decide path would
    // have to be @inlinable through most of the engine), and the request-path targets drop exclusivity checks.
    products: [
        .executable(name: "offerd", targets: ["offerd"]),
        .library(name: "OfferdEventLog", targets: ["OfferdEventLog"]),
        .library(name: "_OfferdCore", targets: ["OfferdCore"]),
        .library(name: "_OfferdSnapshot", targets: ["OfferdSnapshot"]),
        .library(name: "_OfferdSnapshotBuilder", targets: ["OfferdSnapshotBuilder"]),
        .library(name: "_OfferdWire", targets: ["OfferdWire"]),
        .library(name: "_OfferdServer", targets: ["OfferdServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // C interop: system libraries and generated protobuf-c code.
        .systemLibrary(
            name: "CNGHTTP2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        .systemLibrary(
            name: "CXXHash",
            providers: [.apt(["libxxhash-dev"])]
        ),
        .systemLibrary(
            name: "CHiredis",
            pkgConfig: "hiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .target(
            name: "COfferdProto",
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),

        // Pure Swift decision engine: catalog, rules, consent, decisions.
        .target(
            name: "OfferdCore",
            swiftSettings: crossModuleOptimization + requestPathSettings + [.strictMemorySafety()]
        ),

        // The snapshot's read path: format, loader (mapped under a lease or copied), lookups, lock-free store,
        // file watcher and reloader; what the server needs. Unsafe code is in SnapshotBuffer.swift,
        // LeasedFileMapping.swift, UnsafeIO.swift, SnapshotFormat.swift, ProfileSnapshot.swift and
        // SnapshotProfile.swift only (why: ProfileSnapshot.swift). What the builder needs from it is `package`.
        .target(
            name: "OfferdSnapshot",
            dependencies: [
                "OfferdCore", "CXXHash",
                .product(name: "Atomics", package: "swift-atomics"),
            ]
        ),

        // The snapshot's build path: source parser and writer, both record encoders, the parallel builder,
        // synthetic profiles; for the command line and tools, never the server. Unsafe code is in every file but
        // ProfileSourceParser.swift, ProfileSourceWriter.swift and SyntheticProfiles.swift (the list and why:
        // SnapshotBuilder.swift). The same settings as the read path, which it was part of: its hot loops were
        // tuned under them.
        .target(
            name: "OfferdSnapshotBuilder",
            dependencies: [
                "OfferdSnapshot", "OfferdCore", "CXXHash",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: requestPathSettings
        ),

        // protobuf-c <-> core values, gRPC message framing, status mapping.
        .target(name: "OfferdWire", dependencies: ["OfferdCore", "COfferdProto"]),

        // SwiftNIO + nghttp2: the only importer of CNGHTTP2.
        .target(
            name: "OfferdTransport",
            dependencies: [
                "CNGHTTP2",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: requestPathSettings
        ),

        // Configuration, admin HTTP endpoints, lifecycle and wiring.
        .target(
            name: "OfferdServer",
            dependencies: [
                "OfferdCore", "OfferdSnapshot", "OfferdWire", "OfferdTransport", "OfferdEventLog", "OfferdLiveState",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: requestPathSettings
        ),

        // The event log of live state: a file or a Redis/Valkey stream; the only importer of CHiredis.
        .target(name: "OfferdEventLog", dependencies: ["CHiredis"]),
        .testTarget(name: "OfferdEventLogTests", dependencies: ["OfferdEventLog"]),

        // The overlay of live state: the event log applied on top of the snapshot (counters, consent updates,
        // event ids); pure Swift, no I/O.
        // It reads a snapshot's folded state and watermark (SPEC 9.6), so it depends on OfferdSnapshot too.
        .target(name: "OfferdLiveState", dependencies: ["OfferdCore", "OfferdEventLog", "OfferdSnapshot"]),
        .testTarget(
            name: "OfferdLiveStateTests",
            dependencies: [
                "OfferdLiveState", "OfferdCore", "OfferdEventLog", "OfferdSnapshot",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),

        // The command line.
        .executableTarget(
            name: "offerd",
            dependencies: [
                "OfferdCore", "OfferdSnapshot", "OfferdSnapshotBuilder", "OfferdServer", "OfferdEventLog",
                "OfferdLiveState",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        .testTarget(
            name: "OfferdCoreTests",
            dependencies: ["OfferdCore", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        // Helpers shared by the snapshot test targets (temporary directories, fixtures, a resealed checksum).
        .target(
            name: "OfferdSnapshotTestSupport",
            dependencies: ["OfferdSnapshot", "OfferdCore"],
            path: "Tests/OfferdSnapshotTestSupport"
        ),
        // The read path's tests build their snapshot files with the builder.
        .testTarget(
            name: "OfferdSnapshotTests",
            dependencies: ["OfferdSnapshot", "OfferdSnapshotBuilder", "OfferdCore", "OfferdSnapshotTestSupport"]
        ),
        .testTarget(
            name: "OfferdSnapshotBuilderTests",
            dependencies: ["OfferdSnapshotBuilder", "OfferdSnapshot", "OfferdCore", "OfferdSnapshotTestSupport"]
        ),
        .testTarget(name: "OfferdWireTests", dependencies: ["OfferdWire", "OfferdCore"]),
        .testTarget(
            name: "OfferdTransportTests",
            dependencies: [
                "OfferdTransport", "CNGHTTP2",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "OfferdServerTests", dependencies: ["OfferdServer", "OfferdSnapshotBuilder"]),
    ]
)
