#!/usr/bin/env bash
# tools/install-deps.sh (copied from the project's CI kit): installs the Debian 12 packages btrm needs to build and test,
# then prints the versions it finds. Idempotent and non-interactive: when every
# package is already installed it only prints versions (no apt-get update).
# Runs as root, or through sudo when run as another user.
#
# Usage: install-deps.sh [--with-python] [--with-slurm] [--all] [--check]
#   --with-python  also python3-numpy python3-h5py python3-matplotlib python3-regex (test
#                  oracles, plots;
#                  they belong to Debian's /usr/bin/python3, not to a python3 earlier in PATH)
#   --with-slurm   also slurm-wlm munge (single-node Slurm for the Slurm script tests,
#                  see slurm-localhost.sh)
#   --all          both of the above
#   --check        install nothing: list missing packages, exit 1 if any
#
# Facts about this stack on Debian 12 (verified with the packages below):
#   Open MPI 4.1.4: mpicc is gcc plus MPI flags; pkg-config names ompi-c / mpi.
#   Parallel HDF5 1.10.8 from libhdf5-openmpi-dev:
#     pkg-config --cflags --libs hdf5-openmpi
#       -> -I/usr/include/hdf5/openmpi -L/usr/lib/x86_64-linux-gnu/hdf5/openmpi -lhdf5 (+ MPI flags)
#     headers  /usr/include/hdf5/openmpi   (H5pubconf.h: #define H5_HAVE_PARALLEL 1)
#     libs     /usr/lib/x86_64-linux-gnu/hdf5/openmpi/libhdf5.so, libhdf5_hl.so
#              (-lhdf5_hl is not in the .pc file: add it by hand if needed)
#     "hdf5" and "hdf5-mpi" are alternatives that point to the same .pc only while
#     the serial libhdf5-dev is absent: always ask for hdf5-openmpi.
#     h5pcc -showconfig reports "Parallel HDF5: yes".
#   ScaLAPACK 2.2.1 (BLACS included) from libscalapack-openmpi-dev:
#     library libscalapack-openmpi.so (-lscalapack-openmpi, not -lscalapack);
#     pkg-config --libs scalapack-openmpi -> -lscalapack-openmpi -lmpi -llapack -lblas
#     (BLAS/LAPACK are OpenBLAS through Debian alternatives). C prototypes for
#     Cblacs_gridinit, descinit_, numroc_, pdgemm_ are not shipped: declare them.
#   libyaml 0.2.5: yaml-0.1; jansson 2.14: jansson; zlib 1.2.13: zlib; libdeflate 1.14: libdeflate; xxHash 0.8.1: libxxhash; utf8proc: libutf8proc; PCRE2: libpcre2-8.
#   One line for everything:
#     mpicc ... $(pkg-config --cflags --libs hdf5-openmpi scalapack-openmpi yaml-0.1 jansson zlib libdeflate libxxhash libutf8proc libpcre2-8)
#   Running MPI as root (containers, CI) needs
#     export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
#   and more ranks than cores (3 ranks on 2 cores) needs mpirun --oversubscribe.
#   smoke/run.sh builds and runs a program that checks all of this.
set -euo pipefail

base_pkgs=(
    build-essential autoconf automake libtool pkg-config
    libopenmpi-dev openmpi-bin
    libhdf5-openmpi-dev hdf5-tools
    libscalapack-openmpi-dev libopenblas-dev liblapack-dev
    libyaml-dev libjansson-dev zlib1g-dev libdeflate-dev libxxhash-dev libutf8proc-dev libpcre2-dev
    libdnnl-dev libmicrohttpd-dev help2man clang libclang-rt-14-dev curl
)
python_pkgs=(python3-numpy python3-h5py python3-matplotlib python3-torch python3-regex)
slurm_pkgs=(slurm-wlm munge)

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

with_python=0 with_slurm=0 check_only=0
for arg in "$@"; do
    case $arg in
        --with-python) with_python=1 ;;
        --with-slurm) with_slurm=1 ;;
        --all) with_python=1 with_slurm=1 ;;
        --check) check_only=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install-deps.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

pkgs=("${base_pkgs[@]}")
(( with_python )) && pkgs+=("${python_pkgs[@]}")
(( with_slurm )) && pkgs+=("${slurm_pkgs[@]}")

if [[ ! -r /etc/debian_version ]] || ! command -v apt-get >/dev/null; then
    echo "install-deps.sh: this script is for Debian 12 (apt-get not found)" >&2
    exit 1
fi

missing=()
for p in "${pkgs[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$p")
done

if (( check_only )); then
    if (( ${#missing[@]} )); then
        echo "missing: ${missing[*]}"
        exit 1
    fi
    echo "all ${#pkgs[@]} packages installed"
    exit 0
fi

if (( ${#missing[@]} )); then
    if [[ $(id -u) -eq 0 ]]; then
        as_root=(env)
    elif command -v sudo >/dev/null; then
        as_root=(sudo env)
    else
        echo "install-deps.sh: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    apt_opts=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef
              -o Dpkg::Options::=--force-confold)
    echo "installing: ${missing[*]}"
    "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update
    if ! "${as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
            install "${missing[@]}"; then
        echo "install-deps.sh: apt-get install failed: ${missing[*]}" >&2
        exit 1
    fi
else
    echo "all ${#pkgs[@]} packages already installed"
fi

fail=0
show() { # label, command...: print the first line of the command's output
    local out
    if out=$("${@:2}" 2>/dev/null) && [[ -n $out ]]; then
        printf '  %-14s %s\n' "$1" "$(head -n1 <<<"$out")"
    else
        printf '  %-14s NOT FOUND (%s)\n' "$1" "${*:2}"
        fail=1
    fi
}
echo "versions:"
show "Open MPI" mpicc --showme:version
show "mpirun" sh -c 'mpirun --version | head -n1'
show "HDF5" pkg-config --modversion hdf5-openmpi
show "parallel HDF5" sh -c 'h5pcc -showconfig | grep -m1 "Parallel HDF5:" | sed "s/^ *//"'
show "ScaLAPACK" pkg-config --modversion scalapack-openmpi
show "libyaml" pkg-config --modversion yaml-0.1
show "jansson" pkg-config --modversion jansson
show "zlib" pkg-config --modversion zlib
show "libdeflate" pkg-config --modversion libdeflate
show "xxHash" pkg-config --modversion libxxhash
show "utf8proc" pkg-config --modversion libutf8proc
show "PCRE2" pkg-config --modversion libpcre2-8
show "autoconf" sh -c 'autoconf --version | head -n1'
show "automake" sh -c 'automake --version | head -n1'
if (( with_python )); then
    show "numpy/h5py/mpl" /usr/bin/python3 -c \
        'import numpy, h5py, matplotlib; print(numpy.__version__, h5py.__version__, matplotlib.__version__)'
    show "regex" /usr/bin/python3 -c 'import regex; print(regex.__version__)'
fi
if (( with_slurm )); then
    show "Slurm" slurmctld -V
    show "munge" sh -c 'munged --version 2>&1'
fi
exit "$fail"
