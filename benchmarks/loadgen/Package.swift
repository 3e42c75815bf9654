// swift-tools-version: 6.1
// offerd-loadgen: an open-loop gRPC load generator for the load benchmarks (benchmarks/load/open_loop.sh).
//
// Calls are sent at exact, scheduled times on several HTTP/2 connections, whatever the server does, and each
// latency is measured from the call's scheduled send time, so a server (or a generator) that falls behind shows
// in the latency instead of silently lowering the rate (coordinated omission). Every latency goes into an
// HdrHistogram. A separate package: the server's build never depends on it, and it does not depend on the server
// (it sends bytes that benchmarks/load/make_requests.py wrote).
//
// - LoadgenCore: the schedule, the tally of outcomes and latencies, the report and its CSV; pure Swift, tested.
// - offerd-loadgen: the command; SwiftNIO for sockets and timers, nghttp2 (the C library, as offerd's transport)
//   as the HTTP/2 client.
import PackageDescription

let package = Package(
    name: "offerd-loadgen",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "offerd-loadgen", targets: ["OfferdLoadgen"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // libnghttp2 (Debian's libnghttp2-dev), the client side of the library offerd serves with.
        .systemLibrary(
            name: "CLoadgenNGHTTP2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        // CPU pinning and timer slack: C macros and variadic calls Swift cannot make itself.
        .systemLibrary(name: "CLoadgenSystem"),
        .target(
            name: "LoadgenCore",
            dependencies: [.product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        .executableTarget(
            name: "OfferdLoadgen",
            dependencies: [
                "LoadgenCore", "CLoadgenNGHTTP2", "CLoadgenSystem",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "LoadgenCoreTests", dependencies: ["LoadgenCore"]),
    ]
)
