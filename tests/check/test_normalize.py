import pytest

from mtasts.check.names import normalize_domain


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Example.COM.", "example.com"),
        ("  example.org\t", "example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_normalize_domain(given: str, expected: str) -> None:
    assert normalize_domain(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "localhost", "user@example.com", "https://example.com/", "a b.example", "-x-.com"]
)
def test_normalize_domain_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        normalize_domain(bad)
