"""Usage errors exit with status 2 before any network traffic."""

from typer.testing import CliRunner

from mtasts.cli import app

runner = CliRunner()


def test_check_without_domains_is_usage_error() -> None:
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 2
    assert "give at least one domain" in result.output


def test_check_rejects_unknown_format() -> None:
    result = runner.invoke(app, ["check", "example.com", "--format", "xml"])
    assert result.exit_code == 2


def test_generate_rejects_bad_rua_and_domain() -> None:
    result = runner.invoke(app, ["generate", "example.com", "--rua", "ftp://x.example"])
    assert result.exit_code == 2
    assert "mailto: or https:" in result.output
    result = runner.invoke(app, ["generate", "not a domain"])
    assert result.exit_code == 2


def test_help_explains_verdicts_and_exit_codes() -> None:
    result = runner.invoke(app, ["check", "--help"])
    assert result.exit_code == 0
    assert "STSFetchResult" in result.output and "Exit status" in result.output
