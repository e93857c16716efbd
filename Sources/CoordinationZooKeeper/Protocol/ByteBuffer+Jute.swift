import NIOCore

// Jute, ZooKeeper's record serialization (org.apache.jute.BinaryOutputArchive): big-endian
// integers, a bool as one byte, buffers and strings as a 4-byte length then the bytes (length -1
// is null), vectors as a 4-byte count then the elements (count -1 is null).

extension ByteBuffer {
    mutating func writeJuteInt(_ value: Int32) { writeInteger(value, endianness: .big) }
    mutating func writeJuteLong(_ value: Int64) { writeInteger(value, endianness: .big) }
    mutating func writeJuteBool(_ value: Bool) { writeInteger(UInt8(value ? 1 : 0)) }

    /// Writes a byte buffer; `nil` is jute's null (length -1).
    mutating func writeJuteBuffer(_ bytes: [UInt8]?) {
        guard let bytes else { return writeJuteInt(-1) }
        writeJuteInt(Int32(bytes.count))
        writeBytes(bytes)
    }

    /// Writes a UTF-8 string; `nil` is jute's null (length -1).
    mutating func writeJuteString(_ string: String?) {
        guard let string else { return writeJuteInt(-1) }
        writeJuteInt(Int32(string.utf8.count))
        writeString(string)
    }

    mutating func writeJuteStrings(_ strings: [String]) {
        writeJuteInt(Int32(strings.count))
        for string in strings { writeJuteString(string) }
    }

    mutating func readJuteInt() throws(JuteDecodingError) -> Int32 {
        guard let value = readInteger(endianness: .big, as: Int32.self) else {
            throw .truncated(needed: 4, available: readableBytes)
        }
        return value
    }

    mutating func readJuteLong() throws(JuteDecodingError) -> Int64 {
        guard let value = readInteger(endianness: .big, as: Int64.self) else {
            throw .truncated(needed: 8, available: readableBytes)
        }
        return value
    }

    mutating func readJuteBool() throws(JuteDecodingError) -> Bool {
        guard let value = readInteger(as: UInt8.self) else { throw .truncated(needed: 1, available: readableBytes) }
        return value != 0
    }

    /// Reads a length prefix: `nil` for jute's null, an error for any other negative value or a
    /// length the remaining bytes cannot hold (checked before anything is allocated).
    private mutating func readJuteLength(elementSize: Int) throws(JuteDecodingError) -> Int? {
        let length = try readJuteInt()
        if length == -1 { return nil }
        guard length >= 0 else { throw .negativeLength(length) }
        let needed = Int(length) * elementSize
        guard needed <= readableBytes else { throw .truncated(needed: needed, available: readableBytes) }
        return Int(length)
    }

    mutating func readJuteBuffer() throws(JuteDecodingError) -> [UInt8]? {
        guard let length = try readJuteLength(elementSize: 1) else { return nil }
        return readBytes(length: length)!  // length was checked against readableBytes
    }

    mutating func readJuteString() throws(JuteDecodingError) -> String? {
        guard let length = try readJuteLength(elementSize: 1) else { return nil }
        let bytes = readBytes(length: length)!  // length was checked against readableBytes
        guard let string = String(validating: bytes, as: UTF8.self) else { throw .invalidUTF8 }
        return string
    }

    /// Reads a vector of strings (each at least its 4-byte length, which bounds the count).
    mutating func readJuteStrings() throws(JuteDecodingError) -> [String]? {
        guard let count = try readJuteLength(elementSize: 4) else { return nil }
        var strings: [String] = []
        strings.reserveCapacity(count)
        for _ in 0..<count { strings.append(try readJuteString() ?? "") }
        return strings
    }
}
