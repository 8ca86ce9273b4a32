#!/bin/sh
# make certs: a self-signed certificate for a LAN event.
#
# Browsers give a page the microphone only in a secure context (https://, or
# http://localhost), so interpreters in booths on the venue's network need
# dragoman on https://. A self-signed certificate is what a LAN event without a
# domain name can have: each booth laptop accepts it once (or imports
# certs/dragoman.crt as trusted). With a domain name, use a real certificate
# (e.g. from Let's Encrypt) instead: see docs/deploy.md.
#
# Usage: tools/make-certs.sh [DIR]   (default certs/)
#   CERT_HOSTS="booths.lan 10.0.0.5" adds names/addresses to the certificate;
#   localhost, 127.0.0.1, this machine's hostname and its IPv4 addresses are
#   always in it. An existing certificate is kept (delete it to make a new one).
set -eu
dir=${1:-certs}
crt=$dir/dragoman.crt
key=$dir/dragoman.key
if [ -s "$crt" ] && [ -s "$key" ]; then
  echo "make certs: $crt and $key exist (delete them to make new ones)"
  exit 0
fi
mkdir -p "$dir"
san="DNS:localhost,IP:127.0.0.1"
host=$(hostname 2>/dev/null || true)
[ -n "$host" ] && san="$san,DNS:$host"
for a in $(hostname -I 2>/dev/null || true) ${CERT_HOSTS:-}; do
  case $a in
    *:*) ;;                                   # IPv6: skip (add it via CERT_HOSTS as needed)
    *[!0-9.]*) san="$san,DNS:$a" ;;
    *) san="$san,IP:$a" ;;
  esac
done
# P-256: every browser takes it, and the handshake is cheaper than RSA's.
# 397 days: the longest validity browsers accept for a server certificate.
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 397 \
  -subj "/CN=dragoman" -addext "subjectAltName=$san" -addext "extendedKeyUsage=serverAuth" \
  -keyout "$key" -out "$crt" 2>/dev/null
chmod 644 "$crt"
echo "make certs: wrote $crt and $key for $san"
echo "  in the config's [server]: tls-cert = $crt   tls-key = $key"
