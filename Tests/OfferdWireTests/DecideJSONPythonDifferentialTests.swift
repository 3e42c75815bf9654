import Foundation
import OfferdCore
import Testing

@testable import OfferdWire

/// The proto3 JSON codec against the reference implementation, Python protobuf's `json_format`, on random
/// messages, both ways:
/// - Python writes random DecideRequests as JSON (lowerCamelCase or proto names, numbers sometimes quoted, enums
///   and defaults as its printer chooses) and as protobuf; this codec's request from the JSON must equal the
///   protobuf path's request from the binary.
/// - This codec writes random responses as JSON, protobuf-c the same results as binary; Python's `Parse` of the
///   JSON must equal its `FromString` of the binary, proposition ids aside (each encoder draws its own).
///
/// Runs with the `python3` on `PATH` (`scripts/install-deps.sh --with-python` installs grpcio-tools), or the
/// interpreter named by `OFFERD_PYTHON`.
@Suite("proto3 JSON against Python json_format")
struct DecideJSONPythonDifferentialTests {
    static let protoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("proto").path

    private static let script = #"""
        import binascii, json, math, random, subprocess, sys, tempfile
        proto_root, mode, path = sys.argv[1], sys.argv[2], sys.argv[3]
        out = tempfile.mkdtemp()
        subprocess.check_call([sys.executable, "-m", "grpc_tools.protoc", "-I" + proto_root, "--python_out=" + out,
                               "offerd/v1/decisioning.proto"])
        sys.path.insert(0, out)
        from offerd.v1 import decisioning_pb2 as pb
        from google.protobuf import json_format

        def text(rng, empty=True):
            alphabet = ["a", "Z", "0", "-", ".", ":", " ", "é", "🙂", '"', "\\", "\n", "\x01", "日", "/"]
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0 if empty else 1, 8)))

        def number(rng):
            kind = rng.randint(0, 3)
            if kind == 0: return float(rng.randint(-1000, 1000))
            if kind == 1: return rng.randint(-100000, 100000) / 100
            if kind == 2: return rng.uniform(-1e300, 1e300)
            return -0.0

        def quote_numbers(value, rng):
            # protobuf parsers take integers and doubles as strings too.
            if isinstance(value, dict):
                return {k: quote_numbers(v, rng) for k, v in value.items()}
            if isinstance(value, list):
                return [quote_numbers(v, rng) for v in value]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and rng.random() < 0.5:
                return repr(value) if isinstance(value, float) else str(value)
            return value

        if mode == "requests":
            rng = random.Random(7)
            with open(path, "w") as f:
                for n in range(600):
                    r = pb.DecideRequest(request_id=text(rng), allow_duplicates=rng.random() < 0.5,
                                         include_content=rng.random() < 0.5, include_metadata=rng.random() < 0.5,
                                         dry_run=rng.random() < 0.5, explain=rng.random() < 0.5)
                    if rng.random() < 0.9:
                        r.identity.namespace = text(rng)
                        r.identity.id = text(rng)
                    for _ in range(rng.randint(0, 4)):
                        r.scopes.add(decision_id=text(rng), placement_id=text(rng),
                                     item_count=rng.choice([0, 1, 3, 30, 31, 4294967295]))
                    for _ in range(rng.randint(0, 4)):
                        value = r.context[text(rng, empty=False)]
                        kind = rng.randint(0, 3)
                        if kind == 0: value.SetInParent()
                        elif kind == 1: value.string_value = text(rng)
                        elif kind == 2: value.number_value = number(rng)
                        else: value.bool_value = rng.random() < 0.5
                    style = n % 3
                    js = json_format.MessageToDict(r, preserving_proto_field_name=(style == 1))
                    if style == 2:
                        js = quote_numbers(js, rng)
                    line = json.dumps(js, ensure_ascii=rng.random() < 0.5)
                    f.write(binascii.hexlify(r.SerializeToString()).decode() + "\t" + line + "\n")
        else:
            failures = 0
            count = 0
            for line in open(path, encoding="utf-8"):
                hex_bytes, js = line.rstrip("\n").split("\t", 1)
                binary = pb.DecideResponse.FromString(binascii.unhexlify(hex_bytes))
                parsed = json_format.Parse(js, pb.DecideResponse())
                for p in list(binary.propositions) + list(parsed.propositions):
                    assert len(p.proposition_id) == 36, p.proposition_id
                    p.proposition_id = ""
                # Compare bytes, so that -0.0 and 0.0 scores differ and NaN equals NaN.
                if binary.SerializeToString(deterministic=True) != parsed.SerializeToString(deterministic=True):
                    failures += 1
                    if failures < 5:
                        print("MISMATCH", js, binary, parsed)
                count += 1
            print("checked", count, "failures", failures)
        """#

    private static func python(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        let environment = ProcessInfo.processInfo.environment
        if let python = environment["OFFERD_PYTHON"] {
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-c", script] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", script] + arguments
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private static func temporaryFile(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("offerd-json-\(UUIDv4.random())-\(name)").path
    }

    @Test("Python's JSON requests decode to what its protobuf decodes to")
    func pythonRequests() throws {
        let path = Self.temporaryFile("requests.tsv")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try Self.python([Self.protoRoot, "requests", path])
        try #require(run.status == 0, "\(run.output)")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 600)
        for line in lines {
            let parts = line.split(separator: "\t", maxSplits: 1)
            try #require(parts.count == 2)
            let binary = try #require(hexBytes(String(parts[0])))
            let expected = try DecideCodec.decodeRequest(binary)
            let decoded = try DecideJSONCodec.decodeRequest(Array(parts[1].utf8))
            #expect(decoded == expected, "\(parts[1])")
        }
    }

    @Test("this codec's JSON responses parse in Python to what protobuf-c's binary does")
    func ourResponses() throws {
        var random = SplitMix64(seed: 42)
        var text = ""
        for index in 0..<600 {
            let result = randomResponseResult(&random)
            let content = index % 2 == 0
            let metadata = index % 3 != 0
            let json = DecideJSONCodec.encodeResponse(
                result, requestID: "req-\(index)-é", snapshotVersion: "snap-\(index % 3)", includeContent: content,
                includeMetadata: metadata)
            let binary = DecideCodec.encodeResponse(
                result, requestID: "req-\(index)-é", snapshotVersion: "snap-\(index % 3)", includeContent: content,
                includeMetadata: metadata)
            text += binary.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
            text += "\t" + String(decoding: json, as: UTF8.self) + "\n"
        }
        let path = Self.temporaryFile("responses.tsv")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try Self.python([Self.protoRoot, "responses", path])
        #expect(run.status == 0)
        #expect(run.output.hasSuffix("checked 600 failures 0\n"), "\(run.output)")
    }
}

/// Random engine results whose strings hold no NUL (protobuf-c would cut them, so the two encodings would differ
/// by design) and whose scores are finite or not, signed zeros included.
private func randomResponseResult(_ random: inout SplitMix64) -> DecisionResult {
    func text(_ random: inout SplitMix64) -> String {
        let alphabet: [String] = ["a", "Z", "0", "-", ":", " ", "é", "🙂", "\"", "\\", "\n", "\u{7}", "日"]
        return (0..<(random.next() % 7)).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }.joined()
    }
    func score(_ random: inout SplitMix64) -> Double? {
        switch random.next() % 6 {
        case 0: return nil
        case 1: return -0.0
        case 2: return Double(Int64(bitPattern: random.next()) % 1000)
        case 3: return [Double.nan, .infinity, -.infinity, 0][Int(random.next() % 4)]
        default:
            let value = Double(bitPattern: random.next())
            return value.isNaN ? 1.25 : value
        }
    }
    let propositions = (0..<(random.next() % 4)).map { _ in
        let items = (0..<(random.next() % 3)).map { index in
            DecidedItem(
                id: "offer-\(index)-" + text(&random), name: random.next() % 2 == 0 ? nil : text(&random),
                priority: Int(Int64(bitPattern: random.next()) % 5_000_000_000),
                characteristics: random.next() % 2 == 0
                    ? [] : [Characteristic(key: "k" + text(&random), value: text(&random))],
                representation: Representation(
                    placementID: "p", format: text(&random),
                    language: random.next() % 2 == 0 ? [] : ["en", text(&random)],
                    content: text(&random), deliveryURL: nil, linkURL: text(&random)),
                score: score(&random), isFallback: false)
        }
        return Proposition(
            decisionID: text(&random), placementID: text(&random),
            outcome: Outcome.allCases[Int(random.next() % 5)], reason: Reason.allCases[Int(random.next() % 8)],
            items: items,
            trace: random.next() % 3 == 0
                ? [TraceEntry(offerID: text(&random), criterion: "1", verdict: .rankedOut)] : [])
    }
    return DecisionResult(
        propositions: propositions, profileFound: random.next() % 2 == 0, catalogVersion: text(&random))
}

private func hexBytes(_ hex: String) -> [UInt8]? {
    let digits = Array(hex.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
            return nil
        }
        bytes.append(byte)
    }
    return bytes
}
