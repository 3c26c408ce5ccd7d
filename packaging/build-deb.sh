#!/usr/bin/env bash
# Flurfunk's .deb for Linux desktops and depot servers, with dpkg-deb:
#   /usr/bin/flurfunk                           the program (app, node, CLI)
#   /usr/share/applications/flurfunk.desktop    the app in the desktop's menu
#   /etc/xdg/autostart/flurfunk.desktop         `flurfunk app --autostart` at log-on (opens
#                                               the app where the settings want it)
#   /usr/share/icons/hicolor/*/apps/flurfunk.png
#   /usr/lib/systemd/system/flurfunk-relay.service  a relay for depots (installed, not enabled)
#
#   packaging/build-deb.sh [--binary PATH]  ->  target/dist/flurfunk_VERSION_amd64.deb
# Without --binary it runs `cargo build --release --locked` first.
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
if [ "${1:-}" = "--binary" ]; then binary="$2"; fi
if [ -z "$binary" ]; then
    cargo build --release --locked --bin flurfunk
    binary="${CARGO_TARGET_DIR:-target}/release/flurfunk"
fi
# ImageMagick's own convert (a machine may have another `convert` first in PATH).
[ -x /usr/bin/convert ] || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq imagemagick >/dev/null
}

version=$(sed -n '0,/^version = "\(.*\)"/s//\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
out="${CARGO_TARGET_DIR:-target}/dist"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$out" "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/applications" \
    "$root/usr/lib/systemd/system" "$root/usr/share/doc/flurfunk" "$root/etc/flurfunk" \
    "$root/etc/xdg/autostart"

install -m 0755 "$binary" "$root/usr/bin/flurfunk"
strip "$root/usr/bin/flurfunk"
install -m 0644 packaging/linux/flurfunk.desktop "$root/usr/share/applications/"
install -m 0644 packaging/linux/flurfunk-autostart.desktop "$root/etc/xdg/autostart/flurfunk.desktop"
install -m 0644 packaging/linux/flurfunk-relay.service "$root/usr/lib/systemd/system/"
for size in 48 128 256; do
    dir="$root/usr/share/icons/hicolor/${size}x${size}/apps"
    mkdir -p "$dir"
    /usr/bin/convert packaging/icons/flurfunk-256.png -resize "${size}x${size}" "$dir/flurfunk.png"
done
cat > "$root/usr/share/doc/flurfunk/copyright" <<COPY
Flurfunk $version, by the Flurfunk project.
Serverless, end-to-end encrypted messenger for a town hall's local network.

Emoji graphics: Twemoji, Copyright 2019 Twitter, Inc and other contributors,
licensed under CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/),
embedded through the twemoji-assets crate.
COPY

installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
# The C library version the program needs: the newest GLIBC_x.y symbol version it uses.
glibc=$(objdump -T "$root/usr/bin/flurfunk" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' \
    | sort -V | tail -n 1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: flurfunk
Version: $version
Architecture: $arch
Maintainer: Flurfunk project <flurfunk@localhost>
Installed-Size: $installed_kb
Depends: libc6 (>= $glibc), libgcc-s1, adduser
Recommends: libgl1, libegl1, libxkbcommon-x11-0, libgl1-mesa-dri
Section: net
Priority: optional
Description: serverless, end-to-end encrypted messenger for a town hall network
 Every desktop runs a node; nodes find each other on the LAN (mDNS), talk over
 Noise-encrypted connections, and hold messages for colleagues who are offline.
 This package has the desktop app (flurfunk app), the headless node and CLI, and a
 systemd unit for a depot relay (flurfunk-relay, not enabled).
CONTROL
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if ! getent passwd flurfunk >/dev/null; then
        adduser --system --group --no-create-home --home /var/lib/flurfunk-relay \
            --quiet flurfunk
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload || true
        # An upgrade restarts a relay that runs; a new install does not start one.
        systemctl try-restart flurfunk-relay.service || true
    fi
fi
POSTINST
cat > "$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl disable --now flurfunk-relay.service >/dev/null 2>&1 || true
fi
PRERM
cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
# Users' data (~/.local/share/flurfunk), the relay's (/var/lib/flurfunk-relay) and the
# machine's network key (/etc/flurfunk) stay; `apt purge` removes the relay's and the key.
if [ "$1" = purge ]; then
    rm -rf /var/lib/flurfunk-relay /etc/flurfunk
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
POSTRM
# An admin's edit (or removal) of the log-on entry survives upgrades.
echo /etc/xdg/autostart/flurfunk.desktop > "$root/DEBIAN/conffiles"
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
deb="$out/flurfunk_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
dpkg-deb --info "$deb" | sed -n '1,4p'
ls -l "$deb"
