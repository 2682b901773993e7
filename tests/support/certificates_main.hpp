// main() for a doctest program whose cases need a throwaway CA and server certificate:
//
//     program --make-certs examples/tls_echo/make-certs.sh --certs DIR [doctest options...]
//
// runs make-certs.sh into DIR first (without --make-certs, DIR must hold them already), sets `certs` to
// DIR and runs doctest with the other arguments.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace test {

inline int run_with_certificates(int argc, char** argv, std::string& certs) {
    std::string make_certs;
    std::vector<char*> doctest_args{argv[0]};
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--make-certs" && i + 1 < argc) make_certs = argv[++i];
        else if (arg == "--certs" && i + 1 < argc) certs = argv[++i];
        else doctest_args.push_back(argv[i]);
    }
    if (certs.empty()) {
        std::cerr << "usage: " << argv[0] << " [--make-certs make-certs.sh] --certs DIR [doctest options...]\n";
        return 2;
    }
    if (!make_certs.empty()) {
        const std::string command = "bash '" + make_certs + "' '" + certs + "' >/dev/null";
        if (std::system(command.c_str()) != 0) {
            std::cerr << "could not make the test certificates with " << make_certs << "\n";
            return 1;
        }
    }
    doctest::Context context(static_cast<int>(doctest_args.size()), doctest_args.data());
    return context.run();
}

}  // namespace test
