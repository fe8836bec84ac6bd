#!/usr/bin/env bash
# Crash check of the review notes, run by hand (not in CI): the real viewer under Xvfb, a note
# typed with a synthetic keyboard, `kill -9` at chosen moments, then what is on disk:
# `PRAGMA integrity_check` and whether the typed text and the settings survived.
#
# Rounds (each on a fresh HOME, so the user's own notes and settings are never touched):
#   visible     type, wait DELAY s, kill (window stays visible)
#   covered     type, cover the window with another one at once, wait DELAY s, kill
#   unmapped    type, unmap (hide) the window at once, wait DELAY s, kill
#   settings    open a film (a recent file), press `]` (opacity), wait DELAY s, kill; are the
#               settings on disk? (the reviewer name takes the same path; tests/ui_crash_safety.rs
#               types one)
#   db-option   `--db FILE`: type, wait, kill; is the note in FILE and nowhere else?
#
# Usage: scripts/crash_notes.sh [BINARY] [DELAY]   (default: target/release/cxr-viewer, 2)
# Needs: Xvfb xdotool sqlite3 x11-apps (xlogo), e.g. apt-get install xvfb xdotool sqlite3 x11-apps
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/release/cxr-viewer}")
delay="${2:-2}"
sample="$PWD/assets/samples/person45_bacteria_221.jpeg"
for tool in Xvfb xdotool sqlite3 xlogo; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "error: no viewer binary at $bin (cargo build --release)" >&2; exit 2; }

display=":$((90 + RANDOM % 9))"
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null' EXIT
export DISPLAY="$display"
sleep 1

pass=0
fail=0
report() { # round verdict detail
  printf '%-10s %-4s %s\n' "$1" "$2" "$3"
  if [ "$2" = ok ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
}

# Starts the viewer in a fresh HOME; sets $home, $pid, $win.
start() {
  home=$(mktemp -d)
  HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" \
    "$bin" "$sample" "$@" >"$home/log" 2>&1 &
  pid=$!
  win=""
  for _ in $(seq 1 120); do
    win=$(xdotool search --pid "$pid" --onlyvisible 2>/dev/null | head -n1)
    [ -n "$win" ] && break
    sleep 0.5
  done
  [ -n "$win" ] || { echo "error: the viewer window never appeared ($home/log)" >&2; return 1; }
  sleep 8 # model load and first analysis of the sample
}

# Clicks into the window and presses T (focus the comment box), then types $1.
type_comment() {
  xdotool windowactivate --sync "$win" 2>/dev/null || xdotool windowfocus --sync "$win"
  xdotool mousemove --window "$win" 700 450 click 1
  sleep 0.3
  xdotool key --window "$win" t
  sleep 0.5
  xdotool type --window "$win" --delay 40 "$1"
}

kill_and_check() { # round expected-text db
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  local db="${3:-$home/.local/share/cxr-viewer/notes.sqlite3}"
  local integrity text
  integrity=$(sqlite3 "$db" 'PRAGMA integrity_check' 2>&1)
  text=$(sqlite3 "$db" "SELECT body FROM notes WHERE body <> ''" 2>&1)
  if [ "$integrity" = ok ] && [ "$text" = "$2" ]; then
    report "$1" ok "integrity ok, note '$text'"
  else
    report "$1" FAIL "integrity '$integrity', note '$text' (wanted '$2')"
  fi
}

round_visible() {
  start || { report visible FAIL "no window"; return; }
  type_comment "visible window note"
  sleep "$delay"
  kill_and_check visible "visible window note"
}

round_covered() {
  start || { report covered FAIL "no window"; return; }
  type_comment "covered window note"
  xlogo -geometry 1600x1000+0+0 &
  local cover=$!
  sleep "$delay"
  kill_and_check covered "covered window note"
  kill "$cover" 2>/dev/null
}

round_unmapped() {
  start || { report unmapped FAIL "no window"; return; }
  type_comment "hidden window note"
  xdotool windowunmap "$win"
  sleep "$delay"
  kill_and_check unmapped "hidden window note"
}

round_settings() {
  start || { report settings FAIL "no window"; return; }
  # Opening the sample put it in the recent files, a setting eframe kept only at exit; `]`
  # raises the overlay opacity (0.45) too, when the keys reach the window.
  xdotool windowactivate --sync "$win" 2>/dev/null || xdotool windowfocus --sync "$win"
  xdotool mousemove --window "$win" 700 450 click 1
  xdotool key --window "$win" --delay 200 bracketright bracketright bracketright
  sleep "$delay"
  kill -9 "$pid"
  wait "$pid" 2>/dev/null
  local file="$home/.config/cxr-viewer/settings.json" alpha
  alpha=$(sed -n 's/.*"alpha": *\([0-9.]*\).*/\1/p' "$file" 2>/dev/null)
  if grep -qF "$sample" "$file" 2>/dev/null; then
    report settings ok "recent file and opacity $alpha in $file"
  else
    report settings FAIL "no settings written to $file"
  fi
}

round_db_option() {
  local dir
  dir=$(mktemp -d)
  start --db "$dir/chosen.sqlite3" || { report db-option FAIL "no window"; return; }
  type_comment "note in the chosen database"
  sleep "$delay"
  kill_and_check db-option "note in the chosen database" "$dir/chosen.sqlite3"
  if [ -e "$home/.local/share/cxr-viewer/notes.sqlite3" ]; then
    report db-option FAIL "the default database was created too"
  fi
}

echo "binary: $bin, wait before kill: ${delay} s"
round_visible
round_covered
round_unmapped
round_settings
round_db_option
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
