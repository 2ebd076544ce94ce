// A stock file's bytes for `serve --seed`: read once into memory of their own, checked, then loaded a
// chunk at a time, and each chunk's pages given back as soon as the chunk is read
// (`StockBytes.discard`), so the file does not stay in memory beside the cells it fills. At 10,000,000
// rows the file is 220 MB: held until the last row was loaded, it made the process's peak 1.27 times
// its resident size after the load. The bytes are a private copy (anonymous memory the file is read
// into), not a mapping of the file: what is loaded is exactly what was checked even if the file is
// rewritten meanwhile, and a file cut short cannot fault the process. A file whose size is not
// known (a pipe, `--seed <(zcat stock.csv.gz)`) is read to its end into an array, kept whole.

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
            let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED
        else { return try readWhole(fd, path: path) }
        defer { close(fd) }
        // Read whole, up to the size it had when it was opened.
        var done = 0
        while done < size {
            let n = read(fd, base + done, size - done)
            if n > 0 {
                done += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            let message = n == 0 ? "it ended after \(done) of its \(size) bytes (it changed while it was read)" : String(cString: strerror(errno))
            munmap(base, size)
            throw Failure(description: "cannot read \(path): \(message)")
        }
        let buffer = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: size)
        // Pages wholly inside a discarded range go back to the system; a page shared with bytes still
        // to be read stays. A page given back reads as zeros, but a discarded range is never read again.
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

    /// Reads `fd` to its end (a pipe, an empty file, or one whose memory could not be had) and closes it.
    private static func readWhole(_ fd: Int32, path: String) throws(Failure) -> StockBytes {
        let file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        do {
            return StockBytes(try file.readToEnd() ?? Data())
        } catch {
            throw Failure(description: "cannot read \(path): \(error.localizedDescription)")
        }
    }
}
