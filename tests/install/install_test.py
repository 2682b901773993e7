#!/usr/bin/python3
"""meson install and the packages it installs, used as another project would use them.

Installs the build into a temporary folder (meson install --destdir, the prefix below it), checks what
is there, starts the installed duplex-echo (its page must be the installed copy), then builds and runs a
small client against it (consumer.cpp) three ways:
  pkg-config   g++ $(pkg-config --cflags --libs duplex), header-only
  CMake        find_package(duplex 0.1 CONFIG REQUIRED) and duplex::duplex, DUPLEX_SEPARATE_COMPILATION;
               find_package(duplex 1.0) must be refused by duplexConfigVersion.cmake
  Meson        dependency('duplex') through the installed duplex.pc, and as a subproject (subprojects/duplex)

    /usr/bin/python3 tests/install/install_test.py --build BUILD_DIR --source SOURCE_DIR --work DIR

pkg-config, cmake and ninja must be installed (scripts/setup.sh does it): a missing one is a failure.
Prints PASS/FAIL per check and "N passed, M failed" last.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, summary  # noqa: E402

TIMEOUT = 300


def run(command, env=None, cwd=None):
    """(exit status, combined output) of a command, bounded by TIMEOUT."""
    try:
        done = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=TIMEOUT)
        return done.returncode, done.stdout.decode(errors="replace")
    except FileNotFoundError as e:
        return 127, f"{command[0]} is missing ({e}): scripts/setup.sh installs it"
    except subprocess.TimeoutExpired:
        return None, f"{command[0]} did not finish in {TIMEOUT} s"


def install(build, stage):
    shutil.rmtree(stage, ignore_errors=True)
    status, output = run(["meson", "install", "-C", build, "--no-rebuild", "--destdir", stage])
    check("meson install --destdir", status == 0, output)
    options = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", build], check=True,
                                        stdout=subprocess.PIPE).stdout)
    value = {o["name"]: o["value"] for o in options}
    check("duplex.pc is relocatable (pkgconfig.relocatable, so that a staged or moved tree works)",
          value.get("pkgconfig.relocatable") is True, "reconfigure with -Dpkgconfig.relocatable=true")
    prefix = stage + value["prefix"]
    return prefix, {name: os.path.join(prefix, value[name]) for name in ("bindir", "includedir", "datadir")}


def installed_files(dirs, source):
    expected = [os.path.join(dirs["includedir"], "duplex", "duplex.hpp"),
                os.path.join(dirs["includedir"], "duplex", "src.hpp"),
                os.path.join(dirs["includedir"], "duplex", "client", "impl", "connect.ipp"),
                os.path.join(dirs["datadir"], "pkgconfig", "duplex.pc"),
                os.path.join(dirs["datadir"], "cmake", "duplex", "duplexConfig.cmake"),
                os.path.join(dirs["datadir"], "cmake", "duplex", "duplexConfigVersion.cmake"),
                os.path.join(dirs["datadir"], "duplex", "echo", "wwwroot", "index.html"),
                *(os.path.join(dirs["bindir"], p) for p in ("duplex-echo", "duplex-client"))]
    missing = [p for p in expected if not os.path.exists(p)]
    check("headers, duplex.pc, the CMake package, the programs and the echo page are installed", not missing,
          f"missing {missing}")
    headers = sorted(os.path.relpath(os.path.join(d, f), os.path.join(source, "include"))
                     for d, _, files in os.walk(os.path.join(source, "include")) for f in files)
    absent = [h for h in headers if not os.path.exists(os.path.join(dirs["includedir"], h))]
    check(f"every header under include/duplex ({len(headers)}) is installed", not absent, f"absent {absent}")


def start_echo(dirs):
    # The installed page, marked, so that serving it proves the installed program found its own copy.
    page = os.path.join(dirs["datadir"], "duplex", "echo", "wwwroot", "index.html")
    with open(page, "a") as f:
        f.write("<!-- installed copy -->\n")
    process = subprocess.Popen([os.path.join(dirs["bindir"], "duplex-echo"), "--urls", "http://127.0.0.1:0"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd="/")
    line = process.stdout.readline().decode()
    match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"the installed duplex-echo did not start: {line!r}")
    port = int(match.group(1))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        body = response.read().decode()
    check("the installed duplex-echo serves its installed page", "<!-- installed copy -->" in body, body[:200])
    return process, port


def run_consumer(binary, url, kind):
    status, output = run([binary, url, f"hello from {kind}"])
    check(f"the {kind} consumer talks to the installed duplex-echo",
          status == 0 and f"reply: hello from {kind}" in output, f"status {status}: {output}")


def pkg_config_consumer(dirs, source, work, url):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(dirs["datadir"], "pkgconfig"))
    status, version = run(["pkg-config", "--modversion", "duplex"], env)
    check("pkg-config --modversion duplex", status == 0 and re.fullmatch(r"\d+\.\d+\.\d+\s*", version), version)
    status, flags = run(["pkg-config", "--cflags", "--libs", "duplex"], env)
    include_dirs = [os.path.realpath(f[2:]) for f in flags.split() if f.startswith("-I")]
    check("pkg-config --cflags --libs duplex: the staged include folder, OpenSSL, zlib, libnghttp2, threads",
          status == 0 and os.path.realpath(dirs["includedir"]) in include_dirs and "-lssl" in flags and "-lz" in flags
          and "-lnghttp2" in flags and "-pthread" in flags, flags)
    binary = os.path.join(work, "pkg-config-consumer")
    status, output = run(["g++", "-std=c++20", os.path.join(source, "tests", "install", "consumer.cpp"), "-o", binary,
                          *flags.split()], env)
    check("a consumer builds with g++ and pkg-config's flags", status == 0, output)
    if status == 0:
        run_consumer(binary, url, "pkg-config")


def cmake_consumer(prefix, source, work, url):
    project = os.path.join(work, "cmake-consumer")
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(os.path.join(source, "tests", "install", "cmake"), project)
    for name in ("consumer.cpp", "duplex_src.cpp"):
        shutil.copy(os.path.join(source, "tests", "install", name), project)
    build = os.path.join(project, "build")
    status, output = run(["cmake", "-S", project, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
                          "-DDUPLEX_VERSION_WANTED=0.1"])
    check("CMake: find_package(duplex 0.1 CONFIG REQUIRED) finds the installed package", status == 0, output)
    status, output = run(["cmake", "--build", build])
    check("CMake: the consumer builds against duplex::duplex (DUPLEX_SEPARATE_COMPILATION)", status == 0, output)
    if status == 0:
        run_consumer(os.path.join(build, "consumer"), url, "CMake")
    refused = os.path.join(project, "build-1.0")
    status, output = run(["cmake", "-S", project, "-B", refused, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
                          "-DDUPLEX_VERSION_WANTED=1.0"])
    check("CMake: find_package(duplex 1.0) is refused by duplexConfigVersion.cmake",
          status != 0 and 'with requested version "1.0"' in output and "version: 0.1.0" in output,
          output[-600:])


def meson_consumer(dirs, source, work, url, kind):
    project = os.path.join(work, f"meson-consumer-{kind}")
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(os.path.join(source, "tests", "install", "meson"), project)
    shutil.copy(os.path.join(source, "tests", "install", "consumer.cpp"), project)
    env = dict(os.environ)
    env.pop("PKG_CONFIG_PATH", None)
    if kind == "pkg-config":
        env["PKG_CONFIG_PATH"] = os.path.join(dirs["datadir"], "pkgconfig")
    else:
        os.makedirs(os.path.join(project, "subprojects"))
        os.symlink(source, os.path.join(project, "subprojects", "duplex"))
    build = os.path.join(project, "build")
    status, output = run(["meson", "setup", build, project], env)
    found = ("Run-time dependency duplex found: YES" in output if kind == "pkg-config"
             else "Executing subproject duplex" in output)
    check(f"Meson: dependency('duplex') through {kind}", status == 0 and found, output[-1500:])
    status, output = run(["meson", "compile", "-C", build], env)
    check(f"Meson ({kind}): the consumer builds", status == 0, output[-1500:])
    if status == 0:
        run_consumer(os.path.join(build, "consumer"), url, f"Meson ({kind})")


def main(args):
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    prefix, dirs = install(os.path.abspath(args.build), os.path.join(work, "stage"))
    installed_files(dirs, args.source)
    echo, port = start_echo(dirs)
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        pkg_config_consumer(dirs, args.source, work, url)
        cmake_consumer(prefix, args.source, work, url)
        meson_consumer(dirs, args.source, work, url, "pkg-config")
        meson_consumer(dirs, args.source, work, url, "subproject")
        status, output = run([os.path.join(dirs["bindir"], "duplex-client"), url, "--no-proxy"])
        check("the installed duplex-client runs", status == 0, output)
    finally:
        echo.terminate()
        echo.wait(timeout=10)
    return summary()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="the Meson build folder to install from")
    parser.add_argument("--source", required=True, help="duplex's source folder")
    parser.add_argument("--work", required=True, help="a scratch folder (the staged install, the consumers)")
    sys.exit(main(parser.parse_args()))
