#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS_PER_TARGET (default 600), one after the other, each
# over a copy of its committed corpus in fuzz/corpus/, so a run never dirties the repo.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Environment:
#   FUZZ_TARGETS    targets to run, space-separated (default: frame startup detect message effects session)
#   FUZZ_SANITIZER  address or none (default: address; see below)
#   FUZZ_BUILD      release or dev (default: release; dev compiles in about half the CPU time
#                   and runs slower, which suits CI's short run)
#   FUZZ_OUT        where runs, crash inputs and summary.md go (default: fuzz/artifacts/run)
#   FUZZ_TARGET_DIR cargo's target dir for the fuzz build (default: fuzz/target); CI points it
#                   outside its fresh clone so that a machine it runs on again builds warm
#
# Prints, per target, executions, exec/s, corpus size and crashes, writes the same table to
# $FUZZ_OUT/summary.md, and exits non-zero if any target crashed. A crashing input is kept in
# $FUZZ_OUT/<target>/; reproduce it with `cargo fuzz run <target> <file>`.
#
# cargo-fuzz passes `-Z` flags to rustc, so it wants nightly; RUSTC_BOOTSTRAP=1 lets the stable
# compiler accept them, AddressSanitizer included. The targets are safe Rust, but what they
# reach (bytes, regex) has unsafe code, so long runs keep ASan; CI's short run uses `none`,
# which builds faster. Either way libFuzzer catches panics, overflow (debug assertions are on),
# timeouts and memory blow-ups.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-600}
read -r -a targets <<<"${FUZZ_TARGETS:-frame startup detect message effects session}"
sanitizer=${FUZZ_SANITIZER:-address}
# cargo-fuzz's default build is optimised with debug assertions on; its --release turns them off.
case ${FUZZ_BUILD:-release} in
    release) profile=--debug-assertions ;;
    dev) profile=--dev ;;
    *) echo "fuzz: FUZZ_BUILD must be release or dev" >&2 && exit 64 ;;
esac
out=${FUZZ_OUT:-fuzz/artifacts/run}
export RUSTC_BOOTSTRAP=1
# The fuzz crate has its own target dir: its flags differ from every other build's.
target_dir=${FUZZ_TARGET_DIR:-fuzz/target}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

rm -rf "$out"
mkdir -p "$out"
build_start=$SECONDS
if ! cargo fuzz build "$profile" --sanitizer "$sanitizer" --target-dir "$target_dir" >"$out/build.log" 2>&1; then
    tail -n 40 "$out/build.log" >&2
    exit 1
fi
echo "fuzz: built in $((SECONDS - build_start)) s ($profile, sanitizer $sanitizer)"

# Bigger inputs than libFuzzer's default guess where a bound sits past 4 KiB: the detector
# reads at most 8 KiB, and a startup packet may be 10,000 bytes.
max_len() {
    case $1 in
        detect | startup) echo 12288 ;;
        *) echo 8192 ;;
    esac
}
dict() {
    case $1 in
        detect) echo fuzz/dict/sql.dict ;;
        *) echo fuzz/dict/wire.dict ;;
    esac
}
# A final libFuzzer statistic from a log (-print_final_stats=1), or nothing.
stat() {
    sed -n "s/^stat::$2: *//p" "$1" | tail -n 1
}

summary=$out/summary.md
{
    echo "| target | seconds | executions | exec/s | corpus (files) | new units | crashes |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} >"$summary"
failed=()
for target in "${targets[@]}"; do
    corpus=$out/$target/corpus
    mkdir -p "$corpus"
    cp fuzz/corpus/"$target"/* "$corpus"/
    log=$out/$target/fuzz.log
    echo "fuzz: $target for $seconds s"
    # One process (libFuzzer's default, the same as -jobs=1 -workers=1, but logging here).
    status=0
    cargo fuzz run "$profile" --sanitizer "$sanitizer" --target-dir "$target_dir" "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$target")" \
        -dict="$(dict "$target")" -artifact_prefix="$out/$target/" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    execs=$(stat "$log" number_of_executed_units)
    rate=$(stat "$log" average_exec_per_sec)
    new=$(stat "$log" new_units_added)
    files=$(find "$corpus" -type f | wc -l)
    crashes=$(find "$out/$target" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
    if [[ $status -ne 0 && $crashes -eq 0 ]]; then
        crashes=1 # libFuzzer failed without leaving an input; the log says why
    fi
    line="| $target | $seconds | ${execs:-?} | ${rate:-?} | $files | ${new:-?} | $crashes |"
    echo "$line" >>"$summary"
    echo "fuzz: $target: executions ${execs:-?}, exec/s ${rate:-?}, corpus $files files, crashes $crashes"
    if [[ $crashes -ne 0 ]]; then
        failed+=("$target")
        grep -E -A 12 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -n 40 || true
    fi
done

cat "$summary"
if [[ ${#failed[@]} -ne 0 ]]; then
    echo "fuzz: crashes in ${failed[*]}; inputs and logs in $out/" >&2
    exit 1
fi
