"""The address policy of tenant-triggered probes: what is refused by default, what
probe_allowed_networks exempts, and IPv6 forms that embed an IPv4 address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mtasts import i18n
from mtasts.config import ConfigError, load_settings
from mtasts.net.addresses import (
    AddressClass,
    ProbePolicy,
    classify,
    describe_refused,
    embedded_ipv4,
    is_probe_allowed,
    parse_networks,
)
from mtasts.protocol.errors import Text

C = AddressClass

REFUSED = [
    # IPv4
    ("0.0.0.0", C.UNSPECIFIED),
    ("0.1.2.3", C.THIS_NETWORK),
    ("10.0.0.1", C.PRIVATE),
    ("10.255.255.255", C.PRIVATE),
    ("100.64.0.1", C.SHARED),
    ("100.127.255.254", C.SHARED),
    ("127.0.0.1", C.LOOPBACK),
    ("127.255.255.254", C.LOOPBACK),
    ("169.254.169.254", C.LINK_LOCAL),  # the cloud metadata service
    ("172.16.0.1", C.PRIVATE),
    ("172.31.255.255", C.PRIVATE),
    ("192.0.0.8", C.RESERVED),
    ("192.0.2.1", C.DOCUMENTATION),
    ("192.88.99.1", C.RESERVED),
    ("192.168.1.1", C.PRIVATE),
    ("198.18.0.1", C.BENCHMARKING),
    ("198.19.255.255", C.BENCHMARKING),
    ("198.51.100.7", C.DOCUMENTATION),
    ("203.0.113.9", C.DOCUMENTATION),
    ("224.0.0.1", C.MULTICAST),
    ("239.255.255.250", C.MULTICAST),
    ("240.0.0.1", C.RESERVED),
    ("255.255.255.255", C.BROADCAST),
    # IPv6
    ("::", C.UNSPECIFIED),
    ("::1", C.LOOPBACK),
    ("fe80::1", C.LINK_LOCAL),
    ("fe80::1%1", C.LINK_LOCAL),
    ("febf:ffff::1", C.LINK_LOCAL),
    ("fc00::1", C.PRIVATE),
    ("fd12:3456:789a::1", C.PRIVATE),
    ("fec0::1", C.PRIVATE),
    ("ff02::1", C.MULTICAST),
    ("ff05::2", C.MULTICAST),
    ("100::1", C.RESERVED),
    ("2001:db8::25", C.DOCUMENTATION),
    ("3fff::1", C.DOCUMENTATION),
    ("2001:2::1", C.BENCHMARKING),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", C.RESERVED),  # Teredo
    ("2001:10::1", C.RESERVED),  # ORCHID
    ("5f00::1", C.RESERVED),
    ("64:ff9b:1::a00:1", C.PRIVATE),  # local-use NAT64
    ("1::1", C.RESERVED),  # outside 2000::/3
    ("4000::1", C.RESERVED),
    # IPv6 forms whose packets go to an IPv4 address: judged by that address
    ("::ffff:127.0.0.1", C.LOOPBACK),  # IPv4-mapped
    ("::ffff:10.1.2.3", C.PRIVATE),
    ("::ffff:169.254.169.254", C.LINK_LOCAL),
    ("::ffff:0.0.0.0", C.UNSPECIFIED),
    ("::127.0.0.1", C.LOOPBACK),  # IPv4-compatible (deprecated)
    ("::192.168.0.1", C.PRIVATE),
    ("::8.8.8.8", C.RESERVED),  # IPv4-compatible, public inside: still deprecated
    ("::ffff:0:127.0.0.1", C.LOOPBACK),  # SIIT
    ("::ffff:0:8.8.8.8", C.RESERVED),
    ("64:ff9b::127.0.0.1", C.LOOPBACK),  # NAT64 well-known prefix
    ("64:ff9b::192.168.1.1", C.PRIVATE),
    ("2002:7f00:1::1", C.LOOPBACK),  # 6to4 of 127.0.0.1
    ("2002:a00:1::", C.PRIVATE),  # 6to4 of 10.0.0.1
    ("2002:a9fe:a9fe::1", C.LINK_LOCAL),  # 6to4 of 169.254.169.254
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.1",
    "192.169.0.1",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.254",
    "2a00:1450:4001:80b::200e",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "2001:200::1",  # just past 2001::/23
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "64:ff9b::8.8.8.8",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("text", "expected"), REFUSED)
def test_non_public_addresses_are_refused_by_default(text: str, expected: AddressClass) -> None:
    verdict = ProbePolicy().check(text)
    assert not verdict.allowed
    assert verdict.address_class is expected
    assert not is_probe_allowed(text)


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    verdict = ProbePolicy().check(text)
    assert verdict.allowed and verdict.address_class is AddressClass.PUBLIC
    assert is_probe_allowed(text)


@pytest.mark.parametrize("text", ["", "mx.example.com", "127.1", "0x7f.0.0.1", "1.2.3.4.5", "::g"])
def test_what_is_not_an_ip_address_is_refused(text: str) -> None:
    verdict = ProbePolicy().check(text)
    assert not verdict.allowed and verdict.address_class is AddressClass.INVALID


@given(st.ip_addresses(v=4))
def test_ipv4_mapped_is_judged_like_its_ipv4_address(v4: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
    assert embedded_ipv4(mapped) == v4
    assert classify(mapped) is classify(v4)
    assert is_probe_allowed(str(mapped)) == is_probe_allowed(str(v4))


@given(st.ip_addresses(v=4))
def test_nat64_and_6to4_never_reach_what_ipv4_would_not(v4: ipaddress.IPv4Address) -> None:
    six_to_four = ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80) | 1)
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(v4))
    for v6 in (six_to_four, nat64):
        assert embedded_ipv4(v6) == v4
        assert is_probe_allowed(str(v6)) == is_probe_allowed(str(v4))


def test_allowed_networks_exempt_exactly_their_addresses() -> None:
    policy = ProbePolicy.from_cidrs(["127.0.0.0/24", "::1/128", "10.20.0.0/16"])
    for allowed in ("127.0.0.1", "127.0.0.254", "::1", "10.20.3.4", "::ffff:127.0.0.10"):
        verdict = policy.check(allowed)
        assert verdict.allowed and verdict.exempted, allowed
    for refused in ("127.0.1.1", "127.0.9.9", "10.21.0.1", "192.168.0.1", "::2", "fe80::1"):
        assert not policy.check(refused).allowed, refused
    # an allowed network never turns into a refusal of a public address
    assert policy.check("8.8.8.8").allowed and not policy.check("8.8.8.8").exempted


def test_the_checked_address_is_normalised() -> None:
    verdict = ProbePolicy.from_cidrs(["::ffff:0:0/96"]).check(" ::FFFF:127.0.0.1 ")
    assert verdict.allowed and verdict.address == "::ffff:7f00:1"
    assert ProbePolicy().check("127.000.000.001").address_class is AddressClass.INVALID


def test_verdicts_describe_the_address_class() -> None:
    assert ProbePolicy().check("10.0.0.1").reason == "10.0.0.1 is a private-network address"
    assert ProbePolicy().check("::1").reason == "::1 is a loopback address"


def test_every_address_class_is_said_in_spanish() -> None:
    """Issue 13: descriptions and names of the classes are said in the reader's language;
    in English the name is the stable value and the reasons are unchanged."""
    spanish = i18n.catalogue("es")
    for cls in AddressClass:
        assert str(cls.label) == cls.value
        for text in (cls.description, cls.label):
            assert isinstance(text, Text) and text.template in spanish, cls
    refused = [ProbePolicy().check(ip) for ip in ("127.0.0.1", "10.0.0.1", "192.0.2.1")]
    assert describe_refused(refused) == (
        "127.0.0.1 (a loopback address), 10.0.0.1 (a private-network address), "
        "192.0.2.1 (a documentation address)"
    )
    with i18n.use("es"):
        assert i18n.say(describe_refused(refused)) == (
            "127.0.0.1 (una dirección de loopback), 10.0.0.1 (una dirección de red privada), "
            "192.0.2.1 (una dirección reservada para documentación)"
        )
        assert i18n.say(refused[0].reason) == "127.0.0.1: una dirección de loopback"


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "not-a-network", "300.0.0.0/8", "::1/129"])
def test_bad_networks_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="CIDR"):
        parse_networks([bad])


def test_the_setting_comes_from_the_environment_and_the_file(tmp_path: Path) -> None:
    assert load_settings(env={}).probe_allowed_networks == ()
    env = {"MTASTS_PROBE_ALLOWED_NETWORKS": "127.0.0.0/24, ::1/128"}
    assert load_settings(env=env).probe_allowed_networks == ("127.0.0.0/24", "::1/128")
    path = tmp_path / "mtasts.toml"
    path.write_text('probe_allowed_networks = ["10.1.0.0/16"]\n')
    assert load_settings(path, {}).probe_allowed_networks == ("10.1.0.0/16",)
    with pytest.raises(ConfigError, match="probe_allowed_networks"):
        load_settings(env={"MTASTS_PROBE_ALLOWED_NETWORKS": "10.0.0.1/8"})
