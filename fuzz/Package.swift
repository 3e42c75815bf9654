// swift-tools-version: 6.0
// libFuzzer targets for offerd (issue 6). Built by scripts/fuzz.sh with
// `-sanitize=fuzzer,address -parse-as-library`; each target defines LLVMFuzzerTestOneInput and libFuzzer
// supplies `main`. A separate package so the main Package.swift stays free of sanitizer flags.
import PackageDescription

let package = Package(
    name: "offerd-fuzz",
    dependencies: [
        // Named explicitly so the package resolves wherever the repository is cloned.
        .package(name: "offerd", path: "../"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // libFuzzer's entry, called from each target's `<Target>_main` (see FuzzDriver.h).
        .target(name: "FuzzDriver"),
        .executableTarget(
            name: "FuzzDecodeRequest",
            dependencies: [
                "FuzzDriver",
                .product(name: "_OfferdWire", package: "offerd"), .product(name: "_OfferdCore", package: "offerd"),
            ]
        ),
        .executableTarget(
            name: "FuzzRuleExpression",
            dependencies: ["FuzzDriver", .product(name: "_OfferdCore", package: "offerd")]
        ),
        .executableTarget(
            name: "FuzzCatalog",
            dependencies: ["FuzzDriver", .product(name: "_OfferdCore", package: "offerd")]
        ),
        // The snapshot target re-seals fuzzed bytes with a valid checksum so the fuzzer reaches past it.
        .systemLibrary(name: "FuzzXXHash"),
        .executableTarget(
            name: "FuzzSnapshot",
            dependencies: [
                "FuzzDriver",
                "FuzzXXHash", .product(name: "_OfferdSnapshot", package: "offerd"),
                .product(name: "_OfferdCore", package: "offerd"),
            ]
        ),
        // The HTTP/2 input path: the transport's connection handler on an EmbeddedChannel. OfferdTransport is
        // not a product; it is reached through OfferdServer and imported with @testable (debug builds).
        .executableTarget(
            name: "FuzzHTTP2",
            dependencies: [
                "FuzzDriver",
                .product(name: "_OfferdServer", package: "offerd"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
