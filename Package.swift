// swift-tools-version: 6.2
// offerd: an offer-decisioning gRPC server for the edge.
//
// Dependencies point one way: Snapshot -> Core; Wire -> Core + COfferdProto;
// Transport -> CNGHTTP2 + NIO; Server -> everything. The decision engine
// (OfferdCore) has no I/O and no C, and is built with strict memory safety
// checking: its only unsafe code is Sources/OfferdCore/Support/ContiguousSpans.swift
// (String UTF-8 and Array storage lent as Span).
import PackageDescription

/// The engine's entry point is generic over the profile type, and the server
/// calls it with the snapshot's profile view from another module: without
/// cross-module optimization every rule evaluation instantiates generic
/// metadata at run time (measured: most of a Decide call's CPU).
let crossModuleOptimization: [SwiftSetting] = [.unsafeFlags(["-cross-module-optimization"])]

/// Run-time exclusivity checks (swift_beginAccess on every class property and
/// global access) cost about 3% of a Decide call's CPU under load. Debug builds,
/// which the test suites run, keep them, so an overlapping access is still
/// caught by the tests; release builds of the transport and the server drop
/// them (the server inlines NIO's ByteBuffer code, whose class properties no
/// attribute of ours reaches: 76 instructions per Decide). The other
/// request-path modules mark their few hot class properties
/// `@exclusivity(unchecked)` instead (OfferdWire's ProtoArena and
/// WireThreadState), or have none (OfferdCore, OfferdSnapshot's read path).
let requestPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
    name: "offerd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "offerd", targets: ["offerd"]),
        .library(name: "OfferdCore", targets: ["OfferdCore"]),
        .library(name: "OfferdSnapshot", targets: ["OfferdSnapshot"]),
        .library(name: "OfferdWire", targets: ["OfferdWire"]),
        .library(name: "OfferdServer", targets: ["OfferdServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
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
        .target(
            name: "COfferdProto",
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),

        // Pure Swift decision engine: catalog, rules, consent, decisions.
        .target(name: "OfferdCore", swiftSettings: crossModuleOptimization + [.strictMemorySafety()]),

        // Snapshot format, builder, loader, lock-free store and reloader.
        .target(
            name: "OfferdSnapshot",
            dependencies: [
                "OfferdCore", "CXXHash",
                .product(name: "Atomics", package: "swift-atomics"),
            ]
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
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: requestPathSettings
        ),

        // Configuration, admin HTTP endpoints, lifecycle and wiring.
        .target(
            name: "OfferdServer",
            dependencies: [
                "OfferdCore", "OfferdSnapshot", "OfferdWire", "OfferdTransport",
                .product(name: "NIOCore", package: "swift-nio"),
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

        // The command line.
        .executableTarget(
            name: "offerd",
            dependencies: [
                "OfferdCore", "OfferdSnapshot", "OfferdServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        .testTarget(
            name: "OfferdCoreTests",
            dependencies: ["OfferdCore", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(name: "OfferdSnapshotTests", dependencies: ["OfferdSnapshot", "OfferdCore"]),
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
        .testTarget(name: "OfferdServerTests", dependencies: ["OfferdServer"]),
    ]
)
