/// Random (version 4) UUIDs for proposition ids and generated request ids.
public enum UUIDv4 {
    /// A fresh UUID v4 in lower-case canonical form (`xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`), from this
    /// thread's xoshiro256** generator, seeded once from `SystemRandomNumberGenerator` (see
    /// `Xoshiro256StarStar` for why not the system generator on every call).
    public static func random() -> String {
        let state = WireThreadState.current
        return random(using: &state.random)
    }

    /// A UUID v4 drawn from `generator`; a seeded generator makes it reproducible in tests.
    public static func random<Generator: RandomNumberGenerator>(using generator: inout Generator) -> String {
        String(unsafeUninitializedCapacity: 36) { buffer in write(into: buffer, using: &generator) }
    }

    /// A NUL-terminated UUID v4 in `arena`, drawn from `generator`: the protobuf-c encoder's form, which spares
    /// the 36-byte (so heap-allocated) Swift string per proposition.
    static func randomCString<Generator: RandomNumberGenerator>(
        in arena: ProtoArena, using generator: inout Generator
    ) -> UnsafeMutablePointer<CChar> {
        let raw = arena.allocate(byteCount: 37)
        let bytes = UnsafeMutableBufferPointer(start: raw.bindMemory(to: UInt8.self, capacity: 37), count: 37)
        let written = write(into: bytes, using: &generator)
        bytes[written] = 0
        return raw.bindMemory(to: CChar.self, capacity: 37)
    }

    /// Writes the 36 canonical characters at the start of `buffer` (which holds at least 36) and returns 36.
    /// Internal: the JSON encoder writes proposition ids in place with it too.
    static func write<Generator: RandomNumberGenerator>(
        into buffer: UnsafeMutableBufferPointer<UInt8>, using generator: inout Generator
    ) -> Int {
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        // RFC 9562 section 5.4: version 4 in the top nibble of byte 6, variant 0b10 in the top bits of byte 8.
        let versioned = (high & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000
        let varianted = (low & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        let hexDigits: StaticString = "0123456789abcdef"
        var position = 0
        func emit(_ value: UInt64, nibbles: Int) {
            var shift = (nibbles - 1) * 4
            while shift >= 0 {
                let nibble = Int(truncatingIfNeeded: (value &>> UInt64(shift)) & 0xF)
                buffer[position] = hexDigits.utf8Start[nibble]
                position += 1
                shift -= 4
            }
        }
        func dash() {
            buffer[position] = UInt8(ascii: "-")
            position += 1
        }
        emit(versioned >> 32, nibbles: 8)
        dash()
        emit((versioned >> 16) & 0xFFFF, nibbles: 4)
        dash()
        emit(versioned & 0xFFFF, nibbles: 4)
        dash()
        emit(varianted >> 48, nibbles: 4)
        dash()
        emit(varianted & 0xFFFF_FFFF_FFFF, nibbles: 12)
        return position
    }
}
