// The app host's default worker count: the CPUs the process may use (affinity mask, cgroup quota).
#include <duplex/app/detail/processor_count.hpp>

#include <doctest/doctest.h>

#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

using duplex::detail::cpus_of_quota;

TEST_CASE("processor count: a cgroup v2 cpu.max line gives its CPUs, rounded up") {
    CHECK(cpus_of_quota("max 100000\n") == std::nullopt);
    CHECK(cpus_of_quota("100000 100000\n") == 1u);
    CHECK(cpus_of_quota("150000 100000") == 2u);
    CHECK(cpus_of_quota("50000 100000") == 1u);
    CHECK(cpus_of_quota("400000 100000\n") == 4u);
    CHECK(cpus_of_quota("") == std::nullopt);
    CHECK(cpus_of_quota("100000") == std::nullopt);
    CHECK(cpus_of_quota("x 100000") == std::nullopt);
    CHECK(cpus_of_quota("100000 0") == std::nullopt);
}

#if defined(__linux__)
TEST_CASE("processor count: follows the affinity mask, not the machine's CPU count") {
    cpu_set_t saved;
    REQUIRE(sched_getaffinity(0, sizeof saved, &saved) == 0);
    const unsigned all = duplex::detail::processor_count();
    CHECK(all >= 1);
    CHECK(all <= std::max(1u, std::thread::hardware_concurrency()));
    int first = -1;
    for (int i = 0; i < CPU_SETSIZE && first < 0; ++i)
        if (CPU_ISSET(i, &saved)) first = i;
    REQUIRE(first >= 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);  // this thread only, as taskset -c does
    CHECK(duplex::detail::processor_count() == 1u);
    REQUIRE(sched_setaffinity(0, sizeof saved, &saved) == 0);
    CHECK(duplex::detail::processor_count() == all);
}
#endif
