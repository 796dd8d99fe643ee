#!/usr/bin/env bash
# Installs the OS packages the test suite and benchmarks need (Debian). Only as root;
# idempotent and quick when everything is present, so `make test` can call it every time.
#   iproute2, util-linux, openssl   network namespaces and certificates for lab tests
#   caddy                            TLS front with on-demand certificates (deploy/Caddyfile)
#   knot, knot-dnsutils              a real primary for RFC 2136 UPDATE tests (knotd, knsupdate)
#                                    and a real secondary of the built-in DNS server (AXFR)
#   unbound                          a real recursive resolver for the DNS system test (a fake
#                                    root with referrals down to the built-in server)
#   postfix-mta-sts-resolver        the reference MTA-STS client (mta-sts-query)
#   nginx-light, wrk                 the benchmark anchor and load generator
#   dovecot-core, dovecot-imapd      a real IMAP server for `mtasts reports fetch-imap`
#   chromium                         headless browser for the dashboard tests (Playwright)
#   postfix                          a real MTA for the `mtasts policyd` system test (its own
#                                    instance in a network namespace; "No configuration")
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have ip || need+=(iproute2)
have unshare || need+=(util-linux)
have openssl || need+=(openssl)
have caddy || need+=(caddy)
have knotd || need+=(knot)
have knsupdate || need+=(knot-dnsutils)
have unbound || need+=(unbound)
have mta-sts-query || need+=(postfix-mta-sts-resolver)
have nginx || need+=(nginx-light)
have wrk || need+=(wrk)
have dovecot || need+=(dovecot-core dovecot-imapd)
have chromium || need+=(chromium)
have postfix || need+=(postfix)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "system-deps: missing ${need[*]} (run as root or install them); tests needing them will skip (fail with CI=true)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Packages must not start their daemons (nginx on :80, caddy on :80/:443, knot and unbound
# on :53):
# the tests start their own instances on loopback ports.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ $created_policy = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
# Postfix asks which set-up to write: none, so no system instance exists (the tests run
# their own, with `postfix -c DIR`).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
