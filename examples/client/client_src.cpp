// duplex-client is built with DUPLEX_SEPARATE_COMPILATION: this file compiles duplex's connect() and
// stream types once, main.cpp only declares them.
#include <duplex/src.hpp>
