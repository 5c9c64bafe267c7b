#!/usr/bin/env bash
# Installs, with Debian's apt-get, whatever of the named needs is missing:
#   build (gcc, make), python (python3), torch (python3-torch, python3-numpy), plot (python3-matplotlib),
#   fuzz (clang with libFuzzer and the sanitizer runtimes: make fuzz, test/fuzz_trainer.c),
#   mpi (Open MPI's mpicc and mpirun: the CUDA trainers' --nccl-init mpi, test/test_launch.sh)
set -euo pipefail
pkgs=()
for need in "$@"; do
    case $need in
        build) command -v gcc >/dev/null && command -v make >/dev/null || pkgs+=(gcc make libc6-dev) ;;
        python) [ -x /usr/bin/python3 ] || pkgs+=(python3) ;;
        torch) /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || pkgs+=(python3 python3-torch python3-numpy) ;;
        plot) /usr/bin/python3 -c 'import matplotlib' 2>/dev/null || pkgs+=(python3 python3-matplotlib) ;;
        fuzz) echo 'int LLVMFuzzerTestOneInput(const char* d, unsigned long n) { return 0; }' |
                  clang -fsanitize=fuzzer,address,undefined -x c - -o /dev/null 2>/dev/null || pkgs+=(clang libclang-rt-dev) ;;
        mpi) command -v mpicc >/dev/null && command -v mpirun >/dev/null || pkgs+=(libopenmpi-dev openmpi-bin) ;;
        *) echo "error: install_deps.sh: unknown need '$need' (build, python, torch, plot, fuzz, mpi)" >&2; exit 1 ;;
    esac
done
[ ${#pkgs[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "error: missing ${pkgs[*]} and no apt-get to install them (install them by hand)" >&2; exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: missing ${pkgs[*]}: run this as root or install sudo" >&2; exit 1; }
    sudo=sudo
fi
echo "installing: ${pkgs[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" > /dev/null
