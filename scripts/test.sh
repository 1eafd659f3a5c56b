#!/usr/bin/env bash
# Runs the whole test suite. On a fresh Debian machine it first installs what
# is missing: MariaDB (the tests start their own throwaway mariadbd servers;
# they never use a server that is already running), a C and a C++ compiler
# (the fuzz targets' libFuzzer), cargo-fuzz, a single-node Slurm
# (slurm-wlm and munge: the tests start their own slurmctld, slurmd and
# munged, and run a job array of `process` runners on it), and Galera
# (galera-4 and rsync: the Galera tests start a 3-node cluster, joined by rsync SST).
#
# The tests need root for one thing: mounting a small tmpfs to fill a disk.
set -euo pipefail
cd "$(dirname "$0")/.."

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ]; }

packages=()
have mariadbd || packages+=(mariadb-server)
have mariadb-install-db || packages+=(mariadb-server)
have mariadb || packages+=(mariadb-client)
have cc || packages+=(gcc libc6-dev)
have c++ || packages+=(g++)
have mount || packages+=(mount)
have python3 || packages+=(python3)
have openssl || packages+=(openssl)
have slurmctld || packages+=(slurm-wlm)
have munged || packages+=(munge)
[ -f /usr/lib/galera/libgalera_smm.so ] || packages+=(galera-4)
have rsync || packages+=(rsync)
have man || packages+=(man-db)   # the man page test renders with man -l
# The data tools that read dumps (tests/it/tools.rs) live in a virtual
# environment, which Debian's python3 makes only with python3-venv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "scripts/test.sh: missing ${packages[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "scripts/test.sh: installing ${packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || {
  echo "scripts/test.sh: cargo not found; install Rust (rustup) first" >&2
  exit 1
}

# Polars, DuckDB, pandas and pyarrow at the versions the README's snippets
# were tested with (scripts/read/requirements.txt), from the Python package
# index into a virtual environment of their own (Debian's python3 refuses
# `pip install` outside one); about 600 MB and a minute the first time.
venv="${XDG_CACHE_HOME:-$HOME/.cache}/myspool/python"
if ! cmp -s scripts/read/requirements.txt "$venv/requirements.txt"; then
  echo "scripts/test.sh: installing scripts/read/requirements.txt into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check -r scripts/read/requirements.txt
  cp scripts/read/requirements.txt "$venv/requirements.txt"
fi
export MYSPOOL_PYTHON="$venv/bin/python3"

cargo test --locked "$@"

# The fuzz targets of the readers (fuzz/, README "Tests"), a few seconds each:
# libFuzzer through cargo-fuzz on stable Rust, without a sanitizer. A crash
# or a hang fails the script. MYSPOOL_FUZZ_SECONDS=0 skips them.
fuzz_seconds="${MYSPOOL_FUZZ_SECONDS:-5}"
if [ "$fuzz_seconds" -gt 0 ]; then
  fuzz_start=$SECONDS
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "scripts/test.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --version 0.13.2 --locked
  fi
  have c++ || {
    echo "scripts/test.sh: the fuzz targets need a C++ compiler (g++) for libFuzzer" >&2
    exit 1
  }
  # 16 codegen units build faster than cargo-fuzz's 1 (the runs are short),
  # and the build is kept outside the checkout: a fresh clone on the same
  # machine (CI's) rebuilds only myspool.
  fuzz_target="${MYSPOOL_FUZZ_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/myspool/fuzz-target}"
  fuzz_flags=(--sanitizer none --codegen-units 16 --target-dir "$fuzz_target")
  (
    cd fuzz
    cargo fuzz build "${fuzz_flags[@]}"
    for target in $(cargo fuzz list); do
      mkdir -p "corpus/$target"
      echo "scripts/test.sh: fuzzing $target for ${fuzz_seconds}s" >&2
      log="$fuzz_target/fuzz-$target.log"
      if ! cargo fuzz run "$target" "${fuzz_flags[@]}" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "scripts/test.sh: fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit 1
      fi
      grep -E '^stat::number_of_executed_units|^Done' "$log" >&2 || true
    done
  )
  echo "scripts/test.sh: the fuzz targets took $((SECONDS - fuzz_start))s (cargo-fuzz install and build included)" >&2
fi
