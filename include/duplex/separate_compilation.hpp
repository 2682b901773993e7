// DUPLEX_SEPARATE_COMPILATION: compile duplex's heavy parts once per program instead of in every
// translation unit, as ASIO_SEPARATE_COMPILATION and BOOST_BEAST_SEPARATE_COMPILATION do.
//
// duplex is header-only, and its streams are templates, so by default every translation unit that opens
// or serves a connection compiles the WebSocket stream over TCP and over TLS again: most of a small
// program's compile time (benchmarks/compile_time). Define DUPLEX_SEPARATE_COMPILATION for every
// translation unit of the program and add one source file that includes <duplex/src.hpp>:
//
//   // duplex_src.cpp, compiled once (with the same flags as the rest)
//   #include <duplex/src.hpp>
//
// Then connect() (client/connect.hpp) is only declared in the program's translation units, and the
// common instantiations — ws::stream over TCP and over TLS, tls::stream over TCP, the app host's
// connections (<duplex/instantiations.hpp>) — are declared `extern template` there and compiled in
// duplex_src.cpp. Other instantiations (a WebSocket over a Unix socket or a test stream) stay
// header-only either way.
#pragma once

// How functions compiled once under DUPLEX_SEPARATE_COMPILATION are declared: inline in the headers
// otherwise.
#if defined(DUPLEX_SEPARATE_COMPILATION)
#define DUPLEX_DECL
#else
#define DUPLEX_DECL inline
#endif
