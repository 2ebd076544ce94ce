// A stock file's bytes for `serve --seed`: a regular file is mapped, not read, so that its bytes never
// sit in the process's own memory beside the cells they fill; each part is let go once it is read
// (`StockBytes.discard`), and the kernel reads it again from its cache if it is read again. At
// 10,000,000 rows the file is 220 MB: read whole, it stayed in memory until the last row was loaded,
// and the process's peak was 1.27 times its resident size after the load. Anything else (a pipe,
// `--seed <(zcat stock.csv.gz)`) is read to its end.

import Foundation
import Glibc
import Stockpile

enum StockFile {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// The bytes of the file at `path`.
    static func bytes(at path: String) throws(Failure) -> StockBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "cannot read \(path): \(message)")
        }
        let size = Int(status.st_size)
        guard status.st_mode & S_IFMT == S_IFREG, size > 0,
            let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED
        else { return try readWhole(fd, path: path) }
        close(fd)
        let buffer = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: size)
        // Pages wholly inside a discarded range go; a page shared with bytes still to be read stays.
        let address = UInt(bitPattern: base)
        let pageSize = UInt(sysconf(Int32(_SC_PAGESIZE)))
        return StockBytes(
            keeping: buffer,
            discard: { range in
                let from = (address + UInt(range.lowerBound) + pageSize - 1) / pageSize * pageSize
                let to = range.upperBound == size ? address + UInt(size) : (address + UInt(range.upperBound)) / pageSize * pageSize
                guard to > from else { return }
                _ = madvise(UnsafeMutableRawPointer(bitPattern: from), Int(to - from), MADV_DONTNEED)
            },
            release: { _ = munmap(UnsafeMutableRawPointer(bitPattern: address), size) })
    }

    /// Reads `fd` to its end (a pipe, or a file that cannot be mapped) and closes it.
    private static func readWhole(_ fd: Int32, path: String) throws(Failure) -> StockBytes {
        let file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            return StockBytes(try file.readToEnd() ?? Data())
        } catch {
            throw Failure(description: "cannot read \(path): \(error.localizedDescription)")
        }
    }
}
