/// Serialises a ``JSONValue`` to compact RFC 8259 JSON, keeping member order.
///
/// The output parses back with ``JSONParser`` to an equal value: integral
/// numbers within ±2^53 are written without a fraction, other numbers with
/// Swift's shortest round-tripping form, and strings escape `"`, `\` and
/// control characters. Non-finite numbers (which ``JSONParser`` never yields)
/// are written as `null` so the output is always valid JSON.
public enum JSONWriter {
    /// The compact JSON text of `value`.
    public static func string(_ value: JSONValue) -> String {
        var bytes: [UInt8] = []
        append(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Appends the compact JSON text of `value` to `bytes` as UTF-8.
    public static func append(_ value: JSONValue, to bytes: inout [UInt8]) {
        switch value {
        case .null:
            bytes.append(contentsOf: "null".utf8)
        case .bool(let flag):
            bytes.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let number):
            appendNumber(number, to: &bytes)
        case .string(let text):
            appendString(text, to: &bytes)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (position, item) in items.enumerated() {
                if position > 0 { bytes.append(UInt8(ascii: ",")) }
                append(item, to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let members):
            bytes.append(UInt8(ascii: "{"))
            for (position, member) in members.enumerated() {
                if position > 0 { bytes.append(UInt8(ascii: ",")) }
                appendString(member.key, to: &bytes)
                bytes.append(UInt8(ascii: ":"))
                append(member.value, to: &bytes)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    /// Appends `number` in the shortest form that reads back as the same Double.
    public static func appendNumber(_ number: Double, to bytes: inout [UInt8]) {
        guard number.isFinite else {
            bytes.append(contentsOf: "null".utf8)
            return
        }
        // 2^53: every integer up to it is exact, so printing it as an Int is lossless.
        if number == number.rounded(.towardZero), abs(number) <= 9_007_199_254_740_992 {
            if number == 0 {
                // Keep the sign of negative zero: `-0` parses back to -0.0.
                bytes.append(contentsOf: (number.sign == .minus ? "-0" : "0").utf8)
            } else {
                bytes.append(contentsOf: String(Int64(number)).utf8)
            }
            return
        }
        // Swift prints the shortest round-tripping digits ("1.5", "1e-05",
        // "1.2e+20"), all of which are valid JSON numbers.
        bytes.append(contentsOf: number.description.utf8)
    }

    /// Appends `text` as a quoted JSON string.
    public static func appendString(_ text: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x00..<0x20:
                let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(hexDigits[Int(byte >> 4)])
                bytes.append(hexDigits[Int(byte & 0x0F)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
