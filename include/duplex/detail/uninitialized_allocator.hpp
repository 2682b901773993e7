// An allocator whose value-less construct() leaves the element uninitialised, so that vector::resize()
// of bytes about to be overwritten does not first zero them. The send queue grows by each frame's
// header and payload and is written at once: the zeroing (memset and resize's loop) cost about 90
// instructions per small message (callgrind, 64 B echo).
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace duplex::detail {

template <class T>
class uninitialized_allocator : public std::allocator<T> {
public:
    using value_type = T;
    template <class U>
    struct rebind {
        using other = uninitialized_allocator<U>;
    };

    uninitialized_allocator() noexcept = default;
    template <class U>
    uninitialized_allocator(const uninitialized_allocator<U>&) noexcept {}

    template <class U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible_v<U>) {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
};

template <class T, class U>
bool operator==(const uninitialized_allocator<T>&, const uninitialized_allocator<U>&) noexcept {
    return true;
}

}  // namespace duplex::detail
