#!/usr/bin/env bash
# Flurfunk's MSI from the Windows build in target/windows/dist (packaging/build-windows.sh),
# with wixl and msibuild from Debian's msitools. Installs them when missing.
#
#   packaging/build-msi.sh      ->  target/windows/dist/flurfunk-VERSION-x64.msi
#                                   and target/windows/dist/admx/ (group-policy template)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wixl >/dev/null || missing+=(wixl)
command -v msibuild >/dev/null || missing+=(msitools)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

dist="${FLURFUNK_WINDOWS_TARGET_DIR:-target/windows}/dist"
for f in flurfunk.exe flurfunk-app.exe; do
    [ -f "$dist/$f" ] || { echo "missing $dist/$f: run packaging/build-windows.sh first" >&2; exit 1; }
done
version=$(sed -n '0,/^version = "\(.*\)"/s//\1/p' Cargo.toml)
msi="flurfunk-$version-x64.msi"

# wixl resolves sources relative to the working directory, and refuses absolute paths.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$dist/flurfunk.exe" "$dist/flurfunk-app.exe" packaging/icons/flurfunk.ico "$stage/"
cp packaging/windows/flurfunk.wxs "$stage/"
(
    cd "$stage"
    wixl -a x64 -D Version="$version" -D Icon=flurfunk.ico -D Exe=flurfunk.exe \
        -D AppExe=flurfunk-app.exe -o "$msi" flurfunk.wxs
    # What wixl cannot express: the shortcut's AppUserModelID (taskbar, notifications).
    printf 'MsiShortcutProperty\tShortcut_\tPropertyKey\tPropVariantValue\r\ns72\ts72\ts0\ts0\r\nMsiShortcutProperty\tMsiShortcutProperty\r\nAppUserModelID\tFlurfunkShortcut\tSystem.AppUserModel.ID\tFlurfunk.Messenger\r\n' \
        > MsiShortcutProperty.idt
    msibuild "$msi" -i MsiShortcutProperty.idt
    # wixl has no component conditions: the log-on entry only where AUTOSTART is 1.
    msibuild "$msi" -q "UPDATE \`Component\` SET \`Condition\` = 'AUTOSTART=\"1\"' WHERE \`Component\` = 'Autostart'"
    # AUTOSTART=0 must also hold when the install elevates from a user's prompt: a secure
    # (public, passed to the server side) property.
    secure=$(msiinfo export "$msi" Property | sed -n 's/^SecureCustomProperties\t//p' | tr -d '\r')
    msibuild "$msi" -q "UPDATE \`Property\` SET \`Value\` = '${secure:+$secure;}AUTOSTART' WHERE \`Property\` = 'SecureCustomProperties'"
    # wixl ignores Execute="rollback": give the rollback actions their type by hand, the
    # deferred one's (exe from an installed file, in script, no impersonation, return
    # ignored: 3154) plus msidbCustomActionTypeRollback (256).
    msibuild "$msi" -q "UPDATE \`CustomAction\` SET \`Type\` = 3410 WHERE \`Action\` = 'FirewallAddRollback' OR \`Action\` = 'FirewallRemoveRollback'"
    # Checks on captured text, not on a pipe: `grep -q` leaves at its first match, and the
    # writer's SIGPIPE fails the pipe under pipefail (CI once stopped here with exit 141).
    actions=$(msiinfo export "$msi" CustomAction)
    shortcuts=$(msiinfo export "$msi" MsiShortcutProperty)
    test "$(grep -c $'\t3410\t' <<<"$actions")" = 2
    grep -q Flurfunk.Messenger <<<"$shortcuts"
    grep -q 'install-network-key' <<<"$actions"
    registry=$(msiinfo export "$msi" Registry)
    grep -q -- '--autostart' <<<"$registry"
    components=$(msiinfo export "$msi" Component)
    grep -q 'AUTOSTART="1"' <<<"$components"
    properties=$(msiinfo export "$msi" Property)
    grep -q $'^SecureCustomProperties\t.*AUTOSTART' <<<"$properties"
)
mv "$stage/$msi" "$dist/$msi"
ls -l "$dist/$msi"
# The group-policy template goes beside the MSI (docs/ADMIN.md, "Machine settings").
rm -rf "$dist/admx"
cp -r packaging/windows/admx "$dist/admx"
ls -R "$dist/admx"
