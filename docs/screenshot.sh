#!/usr/bin/env bash
# Regenerates docs/screenshot.png: the desktop app with a realistic German conversation,
# under Xvfb, with colleagues' nodes on loopback (no mDNS, nothing leaves the machine).
#
#   docs/screenshot.sh
#
# Needs (Debian): xvfb xdotool x11-apps imagemagick libgl1-mesa-dri libegl1
# libxkbcommon-x11-0 mesa-vulkan-drivers python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
B="${CARGO_TARGET_DIR:-target}/debug/flurfunk"
T=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

ff() { local who=$1; shift; "$B" --data-dir "$T/$who" "$@"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ff anna init --name "Anna Schmidt" >/dev/null
ff anna network new --out "$T/rathaus.key" >/dev/null
declare -A PORT
PORT[anna]=$(port)
for who in juergen sabine thomas petra; do PORT[$who]=$(port); done
ff juergen init --name "Jürgen Becker" >/dev/null
ff sabine init --name "Sabine Wagner" >/dev/null
ff thomas init --name "Thomas Müller" >/dev/null
ff petra init --name "Petra Hoffmann" >/dev/null
for who in juergen sabine thomas petra; do ff "$who" network join "$T/rathaus.key" >/dev/null; done

start() {
    local who=$1
    "$B" --data-dir "$T/$who" node --no-mdns --listen "/ip4/127.0.0.1/tcp/${PORT[$who]}" \
        --peer "/ip4/127.0.0.1/tcp/${PORT[anna]}" >/dev/null 2>&1 &
    pids+=($!)
}
# Anna's node first, headless, to set up the chats.
"$B" --data-dir "$T/anna" node --no-mdns --listen "/ip4/127.0.0.1/tcp/${PORT[anna]}" >/dev/null 2>&1 &
anna_pid=$!
for who in juergen sabine thomas petra; do start "$who"; done
until ff anna peers 2>/dev/null | grep -q "Petra Hoffmann.*online" \
   && ff anna peers | grep -q "Thomas Müller.*online" \
   && ff anna peers | grep -q "Jürgen Becker.*online" \
   && ff anna peers | grep -q "Sabine Wagner.*online"; do sleep 0.3; done

say() { ff "$1" send --to "$2" "$3" >/dev/null; sleep 0.4; }
# The id (first 12 characters) of the newest message in the group starting with $2, as
# node $1 holds it.
idof() {
    ff "$1" history "Bauhof Winterdienst" --json --limit 100 | python3 -c '
import json, sys
hits = [m["event_id"] for m in map(json.loads, sys.stdin) if m.get("text", "").startswith(sys.argv[1])]
print(hits[-1][:12])' "$2"
}
ff anna group create "Bauhof Winterdienst" --member "Jürgen" --member "Thomas" --member "Sabine" >/dev/null
sleep 1
say petra "Anna" "Hallo Anna, kannst du mir die Liste der Sperrmülltermine schicken?"
say anna "Petra" "Klar, kommt gleich per Mail."
say sabine "Anna" "Das Update für die Fachverfahren läuft heute ab 18 Uhr."
say juergen "Bauhof Winterdienst" "Guten Morgen! ❄️ Heute Nacht sind −6 °C angesagt."
say thomas "Bauhof Winterdienst" "Der Streuwagen ist vollgetankt, Salz reicht noch für zwei Einsätze."
say anna "Bauhof Winterdienst" "Danke! Ich bestelle heute noch 20 Tonnen nach."
say juergen "Bauhof Winterdienst" "Wer übernimmt die Bereitschaft am Wochenende?"
ff thomas reply "Bauhof Winterdienst" "$(idof thomas 'Wer übernimmt')" \
    "Ich mache Samstag, Sonntag kann Klaus." >/dev/null
sleep 0.4
say juergen "Bauhof Winterdienst" "👍"
say anna "Bauhof Winterdienst" "Super, ich trage es in den Plan ein.
Bitte denkt an die Rufbereitschaftsliste am Empfang."
say sabine "Bauhof Winterdienst" "Die Tablets für die Streckenkontrolle sind eingerichtet."
for who in juergen thomas; do
    ff "$who" react "Bauhof Winterdienst" "$(idof "$who" 'Die Tablets')" 👍 >/dev/null
done
ff anna react "Bauhof Winterdienst" "$(idof anna 'Die Tablets')" 🙏 >/dev/null
ff sabine edit "Bauhof Winterdienst" "$(idof sabine 'Die Tablets')" \
    "Die Tablets für die Streckenkontrolle sind eingerichtet, die Karten aktuell." >/dev/null
sleep 0.4
# A photo from the depot (drawn here: a sign by a road under a winter sky) and a PDF.
convert -size 1200x900 gradient:'#8fb8de'-'#e8eef3' \
    -fill '#d9dde2' -draw 'polygon 0,640 1200,560 1200,900 0,900' \
    -fill '#5d6166' -draw 'polygon 0,760 1200,690 1200,760 0,840' \
    -fill '#7a7d80' -draw 'rectangle 585,330 615,760' \
    -fill white -stroke '#c8102e' -strokewidth 38 -draw 'polygon 600,110 830,500 370,500' \
    -stroke none -fill '#222' -draw 'polygon 600,260 650,430 550,430' \
    -quality 88 "$T/Schild_Bahnhofstrasse.jpg"
printf '%%PDF-1.4\n%% Streuplan\n' > "$T/Streuplan_KW49.pdf"
head -c 180000 /dev/urandom >> "$T/Streuplan_KW49.pdf"
ff thomas send --to "Bauhof Winterdienst" --file "$T/Schild_Bahnhofstrasse.jpg" \
    "Schild an der Bahnhofstraße ist umgefahren, ich sichere die Stelle ab." >/dev/null
sleep 0.4
ff sabine send --to "Bauhof Winterdienst" --file "$T/Streuplan_KW49.pdf" >/dev/null
sleep 0.4
ff juergen reply "Bauhof Winterdienst" "$(idof juergen 'Schild an der')" \
    "Danke Thomas! Ich melde es der Straßenverkehrsbehörde." >/dev/null
sleep 0.4
for who in anna sabine; do
    ff "$who" react "Bauhof Winterdienst" "$(idof "$who" 'Schild an der')" 👍 >/dev/null
done
sleep 4
kill "$anna_pid"; wait "$anna_pid" 2>/dev/null || true

# The app, under Xvfb, with the same window size as on a desktop.
export DISPLAY=:97
export XDG_RUNTIME_DIR="$T/run"; mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
Xvfb "$DISPLAY" -screen 0 1040x700x24 >/dev/null 2>&1 &
pids+=($!)
sleep 1
"$B" --data-dir "$T/anna" app --no-mdns --lang de --listen "/ip4/127.0.0.1/tcp/${PORT[anna]}" >/dev/null 2>&1 &
pids+=($!)
sleep 6
# The chat list is sorted by activity: the group is on top.
xdotool mousemove 150 95 click 1
sleep 2
xdotool mousemove 1030 690
sleep 1
xwd -root -silent | convert xwd:- docs/screenshot.png
echo "wrote docs/screenshot.png"
