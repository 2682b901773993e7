// The consumer's one file compiling duplex under DUPLEX_SEPARATE_COMPILATION (the CMake build).
#include <duplex/src.hpp>
