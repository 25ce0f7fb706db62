/// Picks a partition for a record the way Java's default partitioner and librdkafka's `murmur2_random` do:
/// murmur2 of the key, positive, modulo the partition count; a random partition for a record without a key.
/// So a key lands on the same partition number on the file queue as on Kafka.
enum FQPartitioner {
    static func partition(forKey key: (some KafkaContiguousBytes)?, partitionCount: Int) -> Int {
        guard let key else { return Int.random(in: 0..<partitionCount) }
        return Int(key.withUnsafeBytes(murmur2) & 0x7FFF_FFFF) % partitionCount
    }

    /// Kafka's 32-bit murmur2 (seed 0x9747b28c).
    static func murmur2(_ data: UnsafeRawBufferPointer) -> UInt32 {
        let m: UInt32 = 0x5BD1_E995
        let length = data.count
        var h: UInt32 = 0x9747_B28C ^ UInt32(truncatingIfNeeded: length)
        var index = 0
        while index + 4 <= length {
            var k = UInt32(data[index]) | UInt32(data[index + 1]) << 8 | UInt32(data[index + 2]) << 16
                | UInt32(data[index + 3]) << 24
            k &*= m
            k ^= k >> 24
            k &*= m
            h &*= m
            h ^= k
            index += 4
        }
        let rest = length - index
        if rest >= 3 { h ^= UInt32(data[index + 2]) << 16 }
        if rest >= 2 { h ^= UInt32(data[index + 1]) << 8 }
        if rest >= 1 {
            h ^= UInt32(data[index])
            h &*= m
        }
        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return h
    }
}
