// A response body that is (a byte range of) an open file: the connection sends it a chunk at a time as
// the client takes it, so a download holds one chunk of memory, never the file. Open once; the size,
// modification time and the bytes all come from that one descriptor, so a file replaced meanwhile is
// served consistently or not at all. POSIX (open, fstat, pread).
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace duplex::http {

class file_body {
public:
    // Opens a regular file for reading; nullopt when it cannot be opened or is not a regular file. Never
    // blocks on a FIFO swapped in for the file, and asks the kernel to read ahead (the file is read
    // front to back).
    static std::optional<file_body> open(const std::filesystem::path& path) noexcept {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0) return std::nullopt;
        file_body body(fd);
        struct stat status{};
        if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) return std::nullopt;
        body.file_size_ = static_cast<std::uint64_t>(status.st_size);
        body.modified_seconds_ = status.st_mtim.tv_sec;
        body.modified_nanoseconds_ = static_cast<std::uint32_t>(status.st_mtim.tv_nsec);
        body.length_ = body.file_size_;
#if defined(POSIX_FADV_SEQUENTIAL)
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
        return body;
    }

    file_body(file_body&& other) noexcept { *this = std::move(other); }
    file_body& operator=(file_body&& other) noexcept {
        if (this != &other) {
            close();
            fd_ = std::exchange(other.fd_, -1);
            file_size_ = other.file_size_;
            modified_seconds_ = other.modified_seconds_;
            modified_nanoseconds_ = other.modified_nanoseconds_;
            offset_ = other.offset_;
            length_ = other.length_;
        }
        return *this;
    }
    ~file_body() { close(); }

    std::uint64_t file_size() const noexcept { return file_size_; }
    std::int64_t modified_seconds() const noexcept { return modified_seconds_; }
    std::uint32_t modified_nanoseconds() const noexcept { return modified_nanoseconds_; }

    // The bytes that are sent: [offset, offset + length) of the file; the whole file unless selected.
    void select(std::uint64_t offset, std::uint64_t length) noexcept {
        offset_ = offset;
        length_ = length;
    }
    std::uint64_t offset() const noexcept { return offset_; }
    std::uint64_t size() const noexcept { return length_; }

    // Reads up to out.size() bytes from `position` of the file; 0 at its end, -1 on error (errno).
    std::ptrdiff_t read_at(std::uint64_t position, std::span<std::byte> out) const noexcept {
        for (;;) {
            const auto n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(position));
            if (n >= 0 || errno != EINTR) return n;
        }
    }

private:
    explicit file_body(int fd) noexcept : fd_(fd) {}

    void close() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    int fd_ = -1;
    std::uint64_t file_size_ = 0;
    std::int64_t modified_seconds_ = 0;
    std::uint32_t modified_nanoseconds_ = 0;
    std::uint64_t offset_ = 0, length_ = 0;
};

}  // namespace duplex::http
