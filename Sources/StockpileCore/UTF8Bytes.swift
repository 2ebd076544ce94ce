// Reading a string's UTF-8 where it lies, for the engine's tables, the log's encoders and anything else
// that copies names into bytes of its own.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Calls `body` with `s`'s UTF-8 bytes, read in place where the string keeps them contiguous (a
/// native or small one), from a copy otherwise. A `var` copy of the string to call `withUTF8` on
/// retained its storage and released it again.
@inlinable @inline(__always)
public func withUTF8Bytes<R, E: Error>(of s: String, _ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
    var outcome: Result<R, E>?
    _ = s.utf8.withContiguousStorageIfAvailable { utf8 in outcome = Result { () throws(E) -> R in try body(UnsafeRawBufferPointer(utf8)) } }
    if outcome == nil { outcome = Array(s.utf8).withUnsafeBytes { bytes in Result { () throws(E) -> R in try body(bytes) } } }
    return try outcome!.get()
}

/// Whether `s`'s UTF-8 is `bytes`, read in place (`withUTF8Bytes`): for a caller that keeps the last
/// name it made from bytes and meets the same bytes again (the log's reader with an actor's name, the
/// command table with a long variant).
@inlinable @inline(__always)
public func utf8(of s: String, equals bytes: UnsafeRawBufferPointer) -> Bool {
    withUTF8Bytes(of: s) { own in
        own.count == bytes.count && (own.isEmpty || memcmp(own.baseAddress!, bytes.baseAddress!, own.count) == 0)
    }
}
