"""Bad input to the CLI: one line on stderr, exit status 2, no traceback and no sender
verdict (issue 9). Run as a real process: what a user sees is what is tested."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mtasts.protocol.policy import MAX_AGE_LIMIT


def mtasts(
    *args: str, cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mtasts", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        input=stdin,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd or Path.cwd()), "COLUMNS": "200"},
    )


def assert_one_line_usage_error(r: subprocess.CompletedProcess[str], words: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stdout == "", "no verdict for input that is not a domain"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("mtasts: error: ") and words in lines[0], lines[0]


@pytest.mark.parametrize(
    ("domain", "words"),
    [
        ("", "not a domain name"),
        ("bad..domain", "not a valid domain name"),
        ("https://example.com/x", "not a domain name"),
        ("a" * 64 + ".com", "longer than 63 octets"),
        (".".join(["a" * 60] * 5), "longer than 253 octets"),
        ("user@example.com", "not a domain name"),
    ],
)
def test_check_refuses_what_is_not_a_domain(tmp_path: Path, domain: str, words: str) -> None:
    r = mtasts("check", "--no-smtp", "-n", "127.0.0.1:9", domain, cwd=tmp_path)
    assert_one_line_usage_error(r, words)


def test_check_input_files_and_options(tmp_path: Path) -> None:
    r = mtasts("check", "--file", str(tmp_path / "missing.txt"), cwd=tmp_path)
    assert_one_line_usage_error(r, "No such file")
    r = mtasts("check", "--file", str(tmp_path), cwd=tmp_path)  # a directory
    assert_one_line_usage_error(r, "Is a directory")
    binary = tmp_path / "latin1.txt"
    binary.write_bytes(b"caf\xe9.example\n")
    assert_one_line_usage_error(mtasts("check", "--file", str(binary)), "not UTF-8")
    r = mtasts("check", "example.com", "--ca-file", str(tmp_path / "none.pem"))
    assert_one_line_usage_error(r, "--ca-file")
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello\n")
    assert_one_line_usage_error(mtasts("check", "example.com", "--ca-file", str(not_pem)), "PEM")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert_one_line_usage_error(mtasts("check", "example.com", "--ca-file", str(broken)), "PEM")
    r = mtasts("check", "example.com", "--nameserver", "not-an-address")
    assert_one_line_usage_error(r, "--nameserver")


def test_a_malformed_line_becomes_an_input_invalid_result_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    listing = tmp_path / "domains.txt"
    listing.write_text("# bulk\nbad..domain\nexample.invalid\n,x\nhttps://a.example/\n")
    r = mtasts(
        "check", "--file", str(listing), "--format", "jsonl", "--no-smtp",
        "-n", "127.0.0.1:9", "--timeout", "0.5",
    )  # fmt: skip
    assert r.returncode == 1 and "Traceback" not in r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["domain"] for row in rows] == [
        "bad..domain", "example.invalid", "", "https://a.example/"
    ]  # fmt: skip
    bad = [row for row in rows if row["sts_fetch_result"] is None]
    assert [row["line"] for row in bad] == [2, 4, 5]
    for row in bad:
        [finding] = row["findings"]
        assert finding["code"] == "input-invalid"
        assert finding["message"].startswith(f"line {row['line']}: ")
    assert rows[1]["sts_fetch_result"] in ("NONE", "FETCH_ERROR")  # checked all the same
    csv = mtasts("check", "--file", str(listing), "--format", "csv", "--no-smtp",
                 "-n", "127.0.0.1:9", "--timeout", "0.5")  # fmt: skip
    assert "bad..domain,," in csv.stdout and "input-invalid" in csv.stdout
    text = mtasts("check", "--file", str(listing), "--no-smtp",
                  "-n", "127.0.0.1:9", "--timeout", "0.5")  # fmt: skip
    assert "line 2: " in text.stdout and "STSFetchResult" in text.stdout  # only for line 3


def test_generate_bad_input(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = mtasts("generate", "example.com", "--write", str(blocker / "sub"), "-n", "127.0.0.1:9")
    assert_one_line_usage_error(r, "--write")
    assert_one_line_usage_error(mtasts("generate", "bad..domain"), "not a valid domain name")
    r = mtasts("generate", "example.com", "--nameserver", "not-an-address")
    assert_one_line_usage_error(r, "--nameserver")
    # the same range as the API's max_age (86400 to 31557600)
    for value in ("60", str(MAX_AGE_LIMIT + 1), "-1"):
        r = mtasts("generate", "example.com", "--max-age", value, "-n", "127.0.0.1:9")
        assert_one_line_usage_error(r, "--max-age")


def test_reports_bad_input_touches_no_store(tmp_path: Path) -> None:
    r = mtasts("reports", "import", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert_one_line_usage_error(r, "nope.json")
    r = mtasts("reports", "summary", "bad..domain", cwd=tmp_path)
    assert_one_line_usage_error(r, "not a valid domain name")
    assert not (tmp_path / "mtasts-data").exists()


def test_reports_summary_offers_only_formats_it_does(tmp_path: Path) -> None:
    help_text = mtasts("reports", "summary", "--help").stdout
    assert "text" in help_text and "json" in help_text
    assert "jsonl" not in help_text and "csv" not in help_text
    assert mtasts("reports", "summary", "example.com", "--format", "csv").returncode == 2
    r = mtasts("reports", "summary", "example.com", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["domain"] == "example.com"


def test_version() -> None:
    from importlib.metadata import version

    r = mtasts("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"mtasts {version('mtasts')}"


def test_reports_import_tokens_and_users_speak_spanish(tmp_path: Path) -> None:
    """Issue 13: `--lang es` (or MTASTS_LANG) for the operator's commands: the lines about
    what was imported or refused, the store notice and a refused e-mail."""
    store = ["--data-dir", str(tmp_path / "store")]
    mail = tmp_path / "not-a-report.eml"
    mail.write_text("From: a@example.com\nSubject: hola\n\nno report here\n")
    r = mtasts("reports", "import", str(mail), *store, "--lang", "es", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    lines = [line for line in r.stderr.splitlines() if line]  # (the progress bar's line)
    assert lines[0].startswith("mtasts: aviso: no hay almacén en "), lines
    assert lines[1].startswith(f"omitido {mail}: report-not-found: el mensaje no lleva ningún")
    assert (
        lines[-1] == "0 informe(s) guardado(s), 0 ya conocido(s), 1 omitido(s) (de 1 elemento(s))"
    )
    r = mtasts("tokens", "create", "--email", "nobody", *store, "--lang", "es", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == "mtasts: error: 'nobody' no es una dirección de correo."
    password = tmp_path / "password"
    password.write_text("correct horse battery staple\n")
    args = ["users", "set-password", "--email", "Ana@Example.com", "--password-file", str(password)]
    r = mtasts("--lang", "es", *args, *store, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[-1] == "Usuario ana@example.com creado."
