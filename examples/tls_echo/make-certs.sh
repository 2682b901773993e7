#!/usr/bin/env bash
# Makes a throwaway certificate authority and a server certificate it signed, for 127.0.0.1, ::1 and
# localhost, with the openssl command (Debian package openssl). For local use and tests only: the keys are
# unencrypted and the certificates expire in 30 days.
#
#   examples/tls_echo/make-certs.sh DIR
#
# writes DIR/ca.pem (trust this one in the client), DIR/ca.key, DIR/server.pem and DIR/server.key, then:
#   duplex-tls-echo --urls https://127.0.0.1:8443 --cert DIR/server.pem --key DIR/server.key
#   SSL_CERT_FILE=DIR/ca.pem /usr/bin/python3 -m websockets wss://127.0.0.1:8443/ws
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
mkdir -p "$dir"
command -v openssl >/dev/null || { echo "make-certs.sh: the openssl command is missing (apt-get install openssl)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/ca.ext" <<'CONF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
CONF
cat >"$work/server.ext" <<'CONF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
CONF

# P-256 keys: quick to make, and every TLS 1.2/1.3 peer speaks ECDSA.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key" 2>/dev/null
openssl req -new -key "$work/ca.key" -subj "/CN=duplex throwaway test CA" -out "$work/ca.csr"
openssl x509 -req -in "$work/ca.csr" -signkey "$work/ca.key" -days 30 -sha256 \
  -extfile "$work/ca.ext" -out "$work/ca.pem" 2>/dev/null

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/server.key" 2>/dev/null
openssl req -new -key "$work/server.key" -subj "/CN=localhost" -out "$work/server.csr"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
  -days 30 -sha256 -extfile "$work/server.ext" -out "$work/server.pem" 2>/dev/null

openssl verify -CAfile "$work/ca.pem" "$work/server.pem" >/dev/null
chmod 600 "$work/ca.key" "$work/server.key"
mv "$work/ca.pem" "$work/ca.key" "$work/server.pem" "$work/server.key" "$dir/"
echo "make-certs.sh: wrote $dir/ca.pem, $dir/server.pem and $dir/server.key"
