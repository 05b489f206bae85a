#include "metrics/process_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>
#include <string_view>

namespace lb::metrics {

namespace {

// procfs files report size 0, so read until EOF instead of stat-then-read.
std::optional<std::string> read_file(const char* path) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string content;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
            content.append(buffer, static_cast<size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            ::close(fd);
            return std::nullopt;
        }
    }
    ::close(fd);
    return content;
}

std::optional<uint64_t> parse_u64(std::string_view text) {
    uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end == text.data()) return std::nullopt;
    return value;
}

// The whitespace-separated field `index` of `text` (0-based).
std::string_view field(std::string_view text, size_t index) {
    size_t pos = 0;
    for (size_t i = 0;; ++i) {
        pos = text.find_first_not_of(' ', pos);
        if (pos == std::string_view::npos) return {};
        const size_t end = std::min(text.find(' ', pos), text.size());
        if (i == index) return text.substr(pos, end - pos);
        pos = end;
    }
}

// "btime N" in /proc/stat: boot time in seconds since the epoch, the origin of /proc/self/stat's starttime.
std::optional<uint64_t> boot_time_seconds() {
    const auto stat = read_file("/proc/stat");
    if (!stat) return std::nullopt;
    const size_t pos = stat->find("\nbtime ");
    if (pos == std::string::npos) return std::nullopt;
    std::string_view rest = std::string_view{*stat}.substr(pos + 7);
    return parse_u64(rest.substr(0, rest.find('\n')));
}

void read_stat(ProcessStats& stats) {
    const auto stat = read_file("/proc/self/stat");
    if (!stat) return;
    // Field 2, the command name, is in parentheses and may itself contain spaces and ')': fields resume after the
    // last ')'. Counting from there, field 3 (state) has index 0, so field N has index N - 3.
    const size_t close_paren = stat->rfind(')');
    if (close_paren == std::string::npos) return;
    std::string_view rest = std::string_view{*stat}.substr(close_paren + 1);
    if (const size_t nl = rest.find('\n'); nl != std::string_view::npos) rest = rest.substr(0, nl);

    const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
    const long page_size = ::sysconf(_SC_PAGESIZE);
    const auto utime = parse_u64(field(rest, 14 - 3));
    const auto stime = parse_u64(field(rest, 15 - 3));
    const auto starttime = parse_u64(field(rest, 22 - 3));
    const auto vsize = parse_u64(field(rest, 23 - 3));
    const auto rss_pages = parse_u64(field(rest, 24 - 3));
    if (ticks_per_second > 0 && utime && stime) {
        stats.cpu_seconds = static_cast<double>(*utime + *stime) / static_cast<double>(ticks_per_second);
    }
    if (vsize) stats.virtual_memory_bytes = *vsize;
    if (page_size > 0 && rss_pages) stats.resident_memory_bytes = *rss_pages * static_cast<uint64_t>(page_size);
    if (ticks_per_second > 0 && starttime) {
        if (const auto btime = boot_time_seconds()) {
            stats.start_time_seconds =
                static_cast<double>(*btime) + static_cast<double>(*starttime) / static_cast<double>(ticks_per_second);
        }
    }
}

std::optional<uint64_t> count_open_fds() {
    // open() then fdopendir(), not opendir(): opendir opens its descriptor inside libc, where ThreadSanitizer does
    // not see it, so a number a worker had just closed looked still the worker's, and closedir() on it a data race
    // with the worker's epoll_ctl (a false report that stopped lb under TSan, which halts on the first).
    int fd = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
        ::close(fd);
        return std::nullopt;
    }
    uint64_t count = 0;
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    // The directory stream's own descriptor was listed too; it is not one of the process's.
    return count > 0 ? count - 1 : 0;
}

}  // namespace

ProcessStats read_process_stats() {
    ProcessStats stats;
    read_stat(stats);
    stats.open_fds = count_open_fds();
    if (rlimit limit{}; ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
        stats.max_fds = static_cast<uint64_t>(limit.rlim_cur);
    }
    return stats;
}

}  // namespace lb::metrics
