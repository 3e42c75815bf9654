// swift-tools-version: 6.1
// Benchmark peers for offerd, kept out of the main build (STYLE: benchmarks in a separate package).
//
// - offerd-grpc-swift-peer: grpc-swift-2 serving offerd.v1.Decisioning/Decide with offerd's own
//   DecisioningService behind a raw-bytes codec, so that a load run against it and against offerd
//   compares the transports and nothing else.
// - offerd-decide-loop: N in-process Decide calls, for callgrind instruction counts
//   (benchmarks/callgrind/run.sh).
// - offerd-transport-loop: N calls through the HTTP/2 transport on an EmbeddedChannel (production pipeline,
//   h2load's request bytes), for callgrind instruction counts (benchmarks/callgrind/transport.sh).
import PackageDescription

let package = Package(
    name: "offerd-peers",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "offerd-grpc-swift-peer", targets: ["OfferdGRPCSwiftPeer"]),
        .executable(name: "offerd-decide-loop", targets: ["OfferdDecideLoop"]),
        .executable(name: "offerd-transport-loop", targets: ["OfferdTransportLoop"]),
    ],
    dependencies: [
        .package(name: "offerd", path: "../.."),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "OfferdGRPCSwiftPeer",
            dependencies: [
                .product(name: "_OfferdServer", package: "offerd"),
                .product(name: "_OfferdCore", package: "offerd"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "OfferdDecideLoop",
            dependencies: [
                .product(name: "_OfferdServer", package: "offerd"),
                .product(name: "_OfferdCore", package: "offerd"),
                .product(name: "_OfferdWire", package: "offerd"),
                .product(name: "OfferdEventLog", package: "offerd"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "OfferdTransportLoop",
            dependencies: [
                .product(name: "_OfferdServer", package: "offerd"),
                .product(name: "_OfferdCore", package: "offerd"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ]
)
