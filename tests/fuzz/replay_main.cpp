// The fuzz targets without libFuzzer: replays every checked-in corpus file through its target, so the
// corpora run in the normal test suite with the project's compiler. Each target is compiled with
// LLVMFuzzerTestOneInput renamed to fuzz_<target> (see meson.build).
//
// Usage: fuzz-replay CORPUS_DIR [TARGET...]   (CORPUS_DIR holds one folder per target)
#include <algorithm>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#define DUPLEX_FUZZ_TARGETS(X) X(frame_header) X(utf8) X(close_payload) X(http_request) X(http_response) X(handshake) X(stream) \
    X(deflate_negotiation) X(inflate) X(proxy_handshake) X(resp_reply) X(http2_connection) \
    X(http2_client)

#define DUPLEX_DECLARE(name) extern "C" int fuzz_##name(const std::uint8_t* data, std::size_t size);
DUPLEX_FUZZ_TARGETS(DUPLEX_DECLARE)
#undef DUPLEX_DECLARE

namespace {

struct target {
    std::string_view name;
    int (*run)(const std::uint8_t*, std::size_t);
};

#define DUPLEX_ENTRY(name) target{#name, fuzz_##name},
constexpr target targets[] = {DUPLEX_FUZZ_TARGETS(DUPLEX_ENTRY)};
#undef DUPLEX_ENTRY

// A broken property aborts: say which input did it.
std::string current_input;

extern "C" void report_input(int) {
    std::fprintf(stderr, "fuzz-replay: failed on %s\n", current_input.c_str());
    std::signal(SIGABRT, SIG_DFL);
    std::abort();
}

}  // namespace

int main(int argc, char** argv) {
    std::signal(SIGABRT, report_input);
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR [TARGET...]\n", argv[0]);
        return 2;
    }
    const std::filesystem::path root = argv[1];
    const std::vector<std::string_view> wanted(argv + 2, argv + argc);
    int passed = 0, failed = 0;
    for (const auto& t : targets) {
        if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), t.name) == wanted.end()) continue;
        const auto folder = root / t.name;
        std::vector<std::filesystem::path> files;
        if (std::filesystem::is_directory(folder))
            for (const auto& entry : std::filesystem::directory_iterator(folder))
                if (entry.is_regular_file()) files.push_back(entry.path());
        std::sort(files.begin(), files.end());
        if (files.empty()) {
            std::printf("FAIL %s: no corpus in %s\n", std::string(t.name).c_str(), folder.c_str());
            ++failed;
            continue;
        }
        for (const auto& file : files) {
            current_input = file.string();
            std::ifstream stream(file, std::ios::binary);
            const std::vector<char> bytes{std::istreambuf_iterator<char>(stream), {}};
            t.run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        }
        std::printf("PASS %s: %zu inputs\n", std::string(t.name).c_str(), files.size());
        ++passed;
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
