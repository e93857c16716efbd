import NIOCore

/// Splits the byte stream into frames: a 4-byte big-endian length, then that many bytes. Pure (no
/// channel), so partial and hostile input is unit-tested; a length below zero or above the limit
/// is an error before anything is allocated.
struct ZooKeeperFrameDecoder: Sendable {
    /// ZooKeeper's own limit is `jute.maxbuffer` (about 1 MiB of data per node); replies such as a
    /// large child list can be bigger, hence a generous default.
    static let defaultMaximumFrameLength = 16 * 1024 * 1024

    let maximumFrameLength: Int
    private var buffered = ByteBuffer()

    init(maximumFrameLength: Int = Self.defaultMaximumFrameLength) {
        self.maximumFrameLength = maximumFrameLength
    }

    mutating func append(_ bytes: ByteBuffer) {
        var bytes = bytes
        buffered.writeBuffer(&bytes)
    }

    /// The next whole frame's payload, or nil until enough bytes have arrived.
    mutating func nextFrame() throws(JuteDecodingError) -> ByteBuffer? {
        guard let length = buffered.getInteger(at: buffered.readerIndex, endianness: .big, as: Int32.self) else {
            return nil
        }
        guard length >= 0 else { throw .negativeLength(length) }
        guard Int(length) <= maximumFrameLength else { throw .tooLong(Int(length), limit: maximumFrameLength) }
        guard buffered.readableBytes >= 4 + Int(length) else { return nil }
        buffered.moveReaderIndex(forwardBy: 4)
        let frame = buffered.readSlice(length: Int(length))!  // length checked above
        buffered.discardReadBytes()
        return frame
    }
}

enum ZooKeeperFrameEncoder {
    /// Writes one length-prefixed frame whose payload `body` writes.
    static func frame(into buffer: inout ByteBuffer, _ body: (inout ByteBuffer) -> Void) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(Int32(0), endianness: .big)
        body(&buffer)
        let length = buffer.writerIndex - lengthIndex - 4
        buffer.setInteger(Int32(length), at: lengthIndex, endianness: .big)
    }
}
