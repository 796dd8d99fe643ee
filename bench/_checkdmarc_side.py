"""The anchor side of bench/check_bulk.py: checkdmarc's MTA-STS and TLS-RPT checks on each
domain of a file, one after another as its command line does. Prints one JSON line each."""

from __future__ import annotations

import json
import sys

from checkdmarc.mta_sts import check_mta_sts
from checkdmarc.smtp_tls_reporting import check_smtp_tls_reporting


def main() -> None:
    path, nameserver = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        domains = [line.strip() for line in f if line.strip()]
    for domain in domains:
        sts = check_mta_sts(domain, nameservers=[nameserver], timeout=5.0)
        rpt = check_smtp_tls_reporting(domain, nameservers=[nameserver], timeout=5.0)
        line = {"domain": domain, "mta_sts_valid": sts["valid"], "tlsrpt_valid": rpt["valid"]}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
