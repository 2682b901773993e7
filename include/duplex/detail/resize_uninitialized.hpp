// Growing receive_message's output without zeroing what is about to be overwritten.
//
// std::string::resize() fills every new character, and receive_message writes the message over them
// right after: for a 64 B message into a string sized for 4 KiB, the fill was 74 % of receive_message's
// user-space instructions. C++23's resize_and_overwrite says "do not fill"; libstdc++ 12 has it only
// under -std=c++23, so under C++20 the string's length is set through libstdc++'s own _M_set_length,
// reached the way folly's resizeWithoutInitialization does (an explicit instantiation may name a
// private member). Elsewhere, resize() and its fill.
//
// std::vector<std::byte> with the standard allocator has no such way: it is resized (and zeroed).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace duplex::detail {

#if !defined(__cpp_lib_string_resize_and_overwrite) && defined(__GLIBCXX__) && _GLIBCXX_USE_CXX11_ABI
#define DUPLEX_STRING_SET_LENGTH 1
void set_string_length(std::string& s, std::size_t n) noexcept;
template <void (std::string::*SetLength)(std::string::size_type)>
struct string_length_access {
    friend void set_string_length(std::string& s, std::size_t n) noexcept { (s.*SetLength)(n); }
};
template struct string_length_access<&std::string::_M_set_length>;
#endif

// Sets out's size to `n`, keeping its first min(n, size()) characters; the others are unspecified.
// Capacity grows geometrically (as resize's does), so repeated growth stays linear.
inline char* resize_uninitialized(std::string& out, std::size_t n) {
#if defined(__cpp_lib_string_resize_and_overwrite)
    out.resize_and_overwrite(n, [](char*, std::size_t size) noexcept { return size; });
#elif defined(DUPLEX_STRING_SET_LENGTH)
    if (n > out.capacity()) out.reserve(n);  // copies the characters kept
    set_string_length(out, n);
#else
    out.resize(n);
#endif
    return out.data();
}

inline std::byte* resize_uninitialized(std::vector<std::byte>& out, std::size_t n) {
    out.resize(n);
    return out.data();
}

}  // namespace duplex::detail
