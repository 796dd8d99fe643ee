"""`mtasts reports summary --lang es` and the explanations of TLS-RPT result types in
Spanish (issue 13); the result types themselves never change."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from mtasts import i18n
from mtasts.reports.explain import EXPLANATIONS, explain
from mtasts.reports.render import print_summary


def test_every_result_type_is_explained_in_spanish() -> None:
    with i18n.use("es"):
        for result_type, english in EXPLANATIONS.items():
            spanish = explain(result_type)
            assert spanish.title != english.title, result_type
            assert spanish.meaning != english.meaning, result_type
            assert spanish.fix != english.fix, result_type
            assert spanish.rfc == english.rfc
        assert explain("certificate-expired").title == "Certificado caducado"
        unknown = explain("new-type")
        assert unknown.title == "new-type"
        assert unknown.meaning == (
            "El remitente informó del tipo de resultado 'new-type', que no está definido en "
            "RFC 8460."
        )
    assert explain("certificate-expired").title == "Certificate expired"  # English again


def summary_data() -> dict[str, Any]:
    with i18n.use("es"):
        why = explain("certificate-expired")
    return {
        "domain": "example.com",
        "days": 7,
        "reports": 1,
        "last_report_received": "2026-11-29T06:00:00+00:00",
        "totals": {"successful": 90, "failed": 10, "failure_rate": 0.1},
        "by_day": [{"day": "2026-11-28", "successful": 90, "failed": 10, "failure_rate": 0.1}],
        "by_organization": [
            {
                "organization": "Google Inc.",
                "reports": 1,
                "successful": 90,
                "failed": 10,
                "failure_rate": 0.1,
            }
        ],
        "by_policy_type": [{"policy_type": "sts", "successful": 90, "failed": 10}],
        "by_result_type": [
            {
                "result_type": "certificate-expired",
                "sessions": 10,
                "title": why.title,
                "meaning": why.meaning,
                "fix": why.fix,
                "rfc": why.rfc,
            }
        ],
        "by_mx_host": [
            {
                "mx_host": "mx1.example.com",
                "failed": 10,
                "result_types": {"certificate-expired": 10},
            }
        ],
    }


def test_summary_text_in_spanish() -> None:
    out = io.StringIO()
    with i18n.use("es"):
        print_summary(Console(file=out, width=200, highlight=False), summary_data())
    text = out.getvalue()
    assert "Informes TLS de example.com, últimos 7 días" in text
    assert "1 informe, 100 sesiones: 90 correctas, 10 fallidas. Fallaron 10 de 100 sesiones" in text
    assert "Qué falló y cómo corregirlo" in text
    assert "Certificado caducado (certificate-expired, 10 sesiones, RFC 8460 §4.3.1)" in text
    assert "Solución: Renueve el certificado del MX" in text
    assert "Por servidor MX" in text and "certificate-expired (10)" in text
    for english in ("sessions", "Fix:", "What failed", "By sender"):
        assert english not in text
