#!/bin/sh
# make_certs.sh DIR: the TLS material of the sync protocol test, made with
# openssl(1) (Debian package openssl): a CA; a cloud certificate for
# 127.0.0.1; device certificates dev-a and dev-b; and a rogue CA with a
# cloud certificate it signed. EC P-256 keys, valid for two days.
set -e
dir=$1
openssl=${ES_OPENSSL:-openssl}
cd "$dir"

ca() { # name
	"$openssl" ecparam -name prime256v1 -genkey -noout -out "$1.key"
	"$openssl" req -x509 -new -key "$1.key" -days 2 -subj "/CN=$1" \
		-out "$1.crt"
}

cert() { # name cn ca
	"$openssl" ecparam -name prime256v1 -genkey -noout -out "$1.key"
	"$openssl" req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
	"$openssl" x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" \
		-CAcreateserial -days 2 -out "$1.crt" 2>/dev/null
	rm -f "$1.csr"
}

ca ca
ca rogue-ca
cert cloud 127.0.0.1 ca
cert dev-a dev-a ca
cert dev-b dev-b ca
cert rogue-cloud 127.0.0.1 rogue-ca
