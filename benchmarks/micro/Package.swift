// swift-tools-version: 6.1
// Micro benchmarks of offerd's hot paths (engine decide, wire decode/encode).
//
// A separate package so that the server's own build never depends on the
// benchmark tooling. Run from this directory: `swift package benchmark`.
// Allocation counts are the stable metric; their thresholds live in Thresholds/.
import PackageDescription

let package = Package(
    name: "offerd-benchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        // Named explicitly so the benchmarks build wherever the repository is cloned.
        .package(name: "offerd", path: "../.."),
        // The malloc interposer gives malloc counts without jemalloc (Swift 6.3+).
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The catalog, profile and messages every benchmark measures against.
        .target(
            name: "BenchmarkFixtures",
            dependencies: [
                .product(name: "_OfferdCore", package: "offerd"),
                .product(name: "_OfferdWire", package: "offerd"),
            ]
        ),
        .executableTarget(
            name: "OfferdBenchmarks",
            dependencies: [
                "BenchmarkFixtures",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "_OfferdCore", package: "offerd"),
                .product(name: "_OfferdWire", package: "offerd"),
            ],
            path: "Benchmarks/OfferdBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        ),
        // A plain loop over one hot path, for `perf record` and `valgrind --tool=callgrind`, which cannot attach
        // to the benchmark runner's host/child protocol.
        .executableTarget(
            name: "offerd-profile-loop",
            dependencies: [
                "BenchmarkFixtures",
                .product(name: "_OfferdCore", package: "offerd"),
                .product(name: "_OfferdWire", package: "offerd"),
            ],
            // OfferdCore's rounding calls libm's `trunc`; nothing else here pulls libm in.
            linkerSettings: [.linkedLibrary("m")]
        ),
        // Snapshot load, publish, memory and lookup figures (benchmarks/snapshot/run.sh).
        .executableTarget(
            name: "offerd-snapshot-bench",
            dependencies: [
                .product(name: "_OfferdCore", package: "offerd"),
                .product(name: "_OfferdSnapshot", package: "offerd"),
                .product(name: "_OfferdSnapshotBuilder", package: "offerd"),
            ],
            linkerSettings: [.linkedLibrary("m")]
        ),
    ]
)
