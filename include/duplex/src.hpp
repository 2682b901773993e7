// The one source file of DUPLEX_SEPARATE_COMPILATION (see <duplex/separate_compilation.hpp>): include it
// in exactly one .cpp file of the program, compiled with the same flags as the rest (the macro
// included), and that file compiles connect() and the common instantiations once for the whole program.
//
//   // duplex_src.cpp
//   #include <duplex/src.hpp>
#pragma once

#if !defined(DUPLEX_SEPARATE_COMPILATION)
#error "<duplex/src.hpp> belongs to DUPLEX_SEPARATE_COMPILATION: define it for every file of the program, this one too"
#endif

#include <duplex/client/impl/connect.ipp>
#include <duplex/instantiations.hpp>

DUPLEX_STREAM_INSTANTIATIONS(template)
DUPLEX_APP_INSTANTIATIONS(template)
