#!/usr/bin/env bash
# TLS peers for server/tests/tls.rs: the openssl command line (`openssl s_client` reads a
# raw admin `status` over TLS). Python gear (the other TLS peer) comes from
# install-10-tools.sh. Skipped when already there.
set -euo pipefail
if ! command -v openssl >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi
