#!/usr/bin/env bash
# Regenerates Switchboard's prompt and music files: 8 kHz, mono, 16-bit PCM WAV.
# Speech comes from espeak-ng, music is synthesised with sox. The WAVs are committed, so
# this only needs to run when a prompt's wording changes.
#
#   sounds/generate.sh            # writes into the directory of this script
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng sox
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# say NAME "text": speech at 8 kHz, normalised to -3 dBFS, 50 ms of silence at both ends.
say() {
  espeak-ng -v en-us -s 150 -w "$tmp/$1.raw.wav" "$2"
  sox "$tmp/$1.raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$1.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse norm -3 pad 0.05 0.05
}

say welcome "Thank you for calling. Please hold, your call is important to us."
say all_agents_busy "All our agents are busy at the moment."
say you_are_number "You are number"
say in_the_queue "in the queue."
say expected_wait "The expected waiting time is"
say minutes "minutes."
say ivr_menu "For orders, press 1. For information, press 2. For other matters, press 3. For complaints, press 4."
say goodbye "Thank you for calling. Goodbye."
say transfer "Please hold while we transfer your call."
say callback_offer "To be called back, keeping your place in the queue, press"
say callback_confirm "Thank you. We will call you back when it is your turn. Goodbye."

words=(zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
       fifteen sixteen seventeen eighteen nineteen twenty)
for n in $(seq 0 20); do say "$n" "${words[$n]}"; done
tens=([30]=thirty [40]=forty [50]=fifty [60]=sixty [70]=seventy [80]=eighty [90]=ninety)
for n in 30 40 50 60 70 80 90; do say "$n" "${tens[$n]}"; done

# Music: a gentle arpeggiated I-vi-IV-V progression (C, Am, F, G), two rounds, over a soft
# pad; 8 bars of 2.5 s = 20 s, faded at the joins so the loop is seamless.
note() { sox -n -r 8000 -c 1 -b 16 "$tmp/n$1.wav" synth 0.3125 pluck "$2" fade q 0.005 0.3125 0.12 vol 0.5; }
chords=("C4 E4 G4 C5 G4 E4 C4 E4" "A3 C4 E4 A4 E4 C4 A3 C4" "F3 A3 C4 F4 C4 A3 F3 A3" "G3 B3 D4 G4 D4 B3 G3 B3")
pads=("C3 E3 G3" "A2 C3 E3" "F2 A2 C3" "G2 B2 D3")
i=0
for round in 1 2; do
  for c in 0 1 2 3; do
    for pitch in ${chords[$c]}; do
      note "$(printf %03d $i)" "$pitch"; i=$((i + 1))
    done
    read -r p1 p2 p3 <<<"${pads[$c]}"
    sox -n -r 8000 -c 1 -b 16 "$tmp/pad$round$c.wav" synth 2.5 sine "$p1" sine "$p2" sine "$p3" \
      channels 1 fade t 0.3 2.5 0.3 vol 0.12
  done
done
sox "$tmp"/n*.wav "$tmp/arp.wav"
sox "$tmp"/pad1*.wav "$tmp"/pad2*.wav "$tmp/pad.wav"
sox -m "$tmp/arp.wav" "$tmp/pad.wav" -r 8000 -c 1 -b 16 -e signed-integer music.wav \
  norm -6 fade t 0.05 20 0.05

ls -l ./*.wav | awk '{s += $5} END {printf "%d files, %d bytes\n", NR, s}'
