#include <duplex/http/static_files.hpp>

#include <doctest/doctest.h>

#include <fstream>

#include <unistd.h>

namespace fs = std::filesystem;
using duplex::http::resolve_static_file;

namespace {

// A content root with a file, a subfolder with an index, and links leading out of it.
struct fixture {
    fs::path base = fs::temp_directory_path() / ("duplex-static-" + std::to_string(::getpid()));
    fs::path root;
    fixture() {
        fs::remove_all(base);
        fs::create_directories(base / "wwwroot" / "sub");
        fs::create_directories(base / "outside");
        std::ofstream(base / "wwwroot" / "index.html") << "index";
        std::ofstream(base / "wwwroot" / "sub" / "index.html") << "sub index";
        std::ofstream(base / "wwwroot" / "a b.txt") << "space";
        std::ofstream(base / "secret.txt") << "secret";
        std::ofstream(base / "outside" / "secret.txt") << "secret";
        std::ofstream(base / "wwwroot-evil.txt") << "sibling";
        fs::create_directory_symlink(base / "outside", base / "wwwroot" / "link-out");
        fs::create_symlink(base / "secret.txt", base / "wwwroot" / "link-file");
        fs::create_symlink(base / "wwwroot" / "index.html", base / "wwwroot" / "link-in");
        root = fs::canonical(base / "wwwroot");
    }
    ~fixture() { fs::remove_all(base); }
};

}  // namespace

TEST_CASE("files under the root are served, directories serve their index") {
    fixture f;
    CHECK(resolve_static_file(f.root, "/") == f.root / "index.html");
    CHECK(resolve_static_file(f.root, "/index.html") == f.root / "index.html");
    CHECK(resolve_static_file(f.root, "/sub") == f.root / "sub" / "index.html");
    CHECK(resolve_static_file(f.root, "/sub/") == f.root / "sub" / "index.html");
    CHECK(resolve_static_file(f.root, "/a%20b.txt") == f.root / "a b.txt");
    CHECK(resolve_static_file(f.root, "/link-in") == f.root / "index.html");  // a link that stays inside
    CHECK_FALSE(resolve_static_file(f.root, "/missing.html"));
}

TEST_CASE("every way out of the root is refused") {
    fixture f;
    for (const auto* path : {"/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/.%2e/secret.txt",
                             "/..%2fsecret.txt", "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt",
                             "/..\\secret.txt", "/%5c..%5csecret.txt", "/link-out/secret.txt", "/link-file",
                             "/%00index.html", "/index.html%00", "/./index.html", "/../wwwroot-evil.txt",
                             "/C:/secret.txt", "relative.txt", "", "/%", "/%zz", "/%2"}) {
        CHECK_MESSAGE(!resolve_static_file(f.root, path), path);
    }
}

TEST_CASE("content types") {
    using duplex::http::content_type_for;
    CHECK(content_type_for("a/index.html") == "text/html; charset=utf-8");
    CHECK(content_type_for("app.js") == "text/javascript; charset=utf-8");
    CHECK(content_type_for("x.css") == "text/css; charset=utf-8");
    CHECK(content_type_for("x.png") == "image/png");
    CHECK(content_type_for("x.unknown") == "application/octet-stream");
    CHECK(content_type_for("README") == "application/octet-stream");
}
