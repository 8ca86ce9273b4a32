#!/bin/sh
# Renders the demo conference's voices with espeak-ng into raw 48 kHz mono S16LE files
# (what pipelines/*-test.pipeline loop with multifilesrc). Generated at build time so that
# no audio is committed to the repository.
set -eu
out=${1:-build/media}
mkdir -p "$out"
say() { # lang voice text
  [ -s "$out/$1.raw" ] && return 0
  espeak-ng -v "$2" -s 150 -w "$out/$1.wav" "$3"
  gst-launch-1.0 -q filesrc location="$out/$1.wav" ! wavparse ! audioconvert ! audioresample \
    ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! filesink location="$out/$1.raw.tmp"
  mv "$out/$1.raw.tmp" "$out/$1.raw"
}
say floor en "Good morning everyone, and welcome to the conference. Let me begin with a few words about our programme today."
say en en "This is the English channel. The speaker welcomes the guests and presents the programme."
say hy hy "Սա հայերեն թարգմանության ալիքն է։ Բանախոսը ողջունում է հյուրերին։"
say az az "Bu Azərbaycan dilinə tərcümə kanalıdır. Natiq qonaqları salamlayır."
say ru ru "Это канал русского перевода. Докладчик приветствует гостей."
say tr tr "Bu Türkçe tercüme kanalıdır. Konuşmacı konukları selamlıyor."
