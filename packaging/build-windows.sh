#!/usr/bin/env bash
# Cross-build Flurfunk for Windows (x86_64-pc-windows-gnu) on Debian 12, without rustup:
# Debian's Rust (rustc-web, with the standard library's sources) builds std for the target
# itself (-Zbuild-std) and MinGW links. Installs what it needs from Debian when missing.
#
#   packaging/build-windows.sh [--debug] [--headless] [--wine-prefix DIR]
#
# Leaves in target/windows/dist/:
#   flurfunk.exe          the program (app + CLI), stripped, icon and version inside
#   flurfunk-app.exe      starts the app without a console window (the shortcut's target)
#   wine/bcryptprimitives.dll   for tests under Wine 8 only (ProcessPrng); never shipped
# --wine-prefix DIR: also create a Wine prefix there with that DLL in system32.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
features=()
prefix=""
while [ $# -gt 0 ]; do
    case "$1" in
        --debug) profile=debug ;;
        --headless) features=(--no-default-features) ;;
        --wine-prefix) prefix="$2"; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

packages=(rustc-web cargo-web rust-web-src libstd-rust-web-dev gcc-mingw-w64-x86-64
          binutils-mingw-w64-x86-64 wine64 wine)
missing=()
for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

target=x86_64-pc-windows-gnu
export CARGO_TARGET_DIR="${FLURFUNK_WINDOWS_TARGET_DIR:-target/windows}"
dist="$CARGO_TARGET_DIR/dist"
mkdir -p "$dist/wine"

# Debian's cargo and rustc, not rustup's (which has no Windows standard library here and
# comes first in PATH); RUSTC_BOOTSTRAP lets the stable compiler take -Zbuild-std.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export WINDRES=x86_64-w64-mingw32-windres
# The program is stripped below, so line tables would only cost build time.
export CARGO_PROFILE_RELEASE_DEBUG=false
profile_flag=()
[ "$profile" = release ] && profile_flag=(--release)
echo "== building flurfunk.exe ($profile${features:+, headless})"
start=$(date +%s)
/usr/bin/cargo build "${profile_flag[@]}" "${features[@]}" --locked \
    -Zbuild-std=std,panic_unwind --target "$target" --bin flurfunk
echo "== built in $(( $(date +%s) - start )) s"
x86_64-w64-mingw32-strip -o "$dist/flurfunk.exe" "$CARGO_TARGET_DIR/$target/$profile/flurfunk.exe"

version=$(sed -n '0,/^version = "\(.*\)"/s//\1/p' Cargo.toml)
commas="$(echo "$version" | cut -d- -f1 | tr . ,),0"
sed -e "s/@VERSION@/$version/g; s/@VERSION_COMMAS@/$commas/g" \
    -e "s#@ICON@#$PWD/packaging/icons/flurfunk.ico#; s/@FILENAME@/flurfunk-app.exe/" \
    -e "s/@DESCRIPTION@/Flurfunk (starts the app)/" \
    packaging/windows/resources.rc.in > "$dist/launcher.rc"
"$WINDRES" "$dist/launcher.rc" -O coff -o "$dist/launcher-res.o"
x86_64-w64-mingw32-gcc -municode -mwindows -Os -s -Wall -Werror \
    -o "$dist/flurfunk-app.exe" packaging/windows/launcher.c "$dist/launcher-res.o"
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$dist/wine/bcryptprimitives.dll" \
    packaging/windows/wine-processprng.c packaging/windows/wine-processprng.def -lbcrypt
rm -f "$dist/launcher.rc" "$dist/launcher-res.o"
ls -l "$dist"/*.exe

if [ -n "$prefix" ]; then
    echo "== Wine prefix $prefix"
    export WINEPREFIX="$prefix" WINEDEBUG=-all
    if [ ! -d "$prefix/drive_c/windows/system32" ]; then
        # No Mono or Gecko (their installers would ask on a display); nothing needs them.
        WINEDLLOVERRIDES="mscoree=d;mshtml=d" wineboot -i >/dev/null 2>&1 || true
        wineserver -w || true
    fi
    cp "$dist/wine/bcryptprimitives.dll" "$prefix/drive_c/windows/system32/"
    # No display in tests: Wine's null graphics driver still lets programs create windows
    # (the node's hidden log-off window). To look at the app under Wine, use a prefix
    # without this key, DISPLAY set and WGPU_BACKEND=gl.
    wine reg add 'HKCU\Software\Wine\Drivers' /v Graphics /d null /f >/dev/null
    wine "$dist/flurfunk.exe" --version
fi
