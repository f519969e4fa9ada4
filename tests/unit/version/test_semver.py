"""Semantic versions (semver 2.0.0): parsing, formatting, precedence, and the database sort key."""
from __future__ import annotations

import random

import pytest

from libs.kit.errors import ValidationFailed
from services.version.domain import InvalidVersion, SemVer, is_semver, parse_version


@pytest.mark.parametrize("text, parts", [
    ("0.0.0", (0, 0, 0, (), ())),
    ("1.2.3", (1, 2, 3, (), ())),
    ("10.20.30", (10, 20, 30, (), ())),
    ("1.3.0-beta.1", (1, 3, 0, ("beta", 1), ())),
    ("1.0.0-alpha.beta", (1, 0, 0, ("alpha", "beta"), ())),
    ("1.0.0-0.3.7", (1, 0, 0, (0, 3, 7), ())),
    ("1.0.0-x-y-z.--", (1, 0, 0, ("x-y-z", "--"), ())),
    ("1.0.0-0a", (1, 0, 0, ("0a",), ())),
    ("1.0.0+20130313144700", (1, 0, 0, (), ("20130313144700",))),
    ("1.0.0-beta+exp.sha.5114f85", (1, 0, 0, ("beta",), ("exp", "sha", "5114f85"))),
    ("1.0.0+001", (1, 0, 0, (), ("001",))),  # leading zeros are fine in build metadata
])
def test_parses_valid_versions_and_formats_them_back(text, parts):
    v = SemVer.parse(text)
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == parts
    assert str(v) == text
    assert is_semver(text)


@pytest.mark.parametrize("text", [
    "", "1", "1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3-01", "1.2.3-beta..1",
    "1.2.3+", "1.2.3-be$ta", " 1.2.3", "1.2.3 ", "latest", "champion", "-1.0.0", "1.0.0-beta_1",
    "9" * 20 + ".0.0",  # beyond 2^63
    "1.0.0-" + "a" * 200,  # too long
])
def test_refuses_what_is_not_a_semantic_version(text):
    with pytest.raises(InvalidVersion):
        SemVer.parse(text)
    assert not is_semver(text)


def test_parse_version_names_the_field_in_a_422():
    with pytest.raises(ValidationFailed) as caught:
        parse_version("1.2", "version")
    assert [e.field for e in caught.value.errors] == ["version"]


# semver.org §11, in ascending order
ORDERED = [
    "0.9.9", "1.0.0-0.3.7", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
    "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1-alpha", "1.0.1", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0",
    "2.1.0", "2.1.1", "10.0.0",
]


def test_precedence_follows_the_specification():
    versions = [SemVer.parse(t) for t in ORDERED]
    for lower, higher in zip(versions, versions[1:]):
        assert lower < higher and higher > lower and lower <= higher and not higher < lower, (lower, higher)
    shuffled = versions[:]
    random.Random(7).shuffle(shuffled)
    assert [str(v) for v in sorted(shuffled)] == ORDERED


def test_the_database_sort_key_orders_bytewise_like_precedence():
    versions = [SemVer.parse(t) for t in ORDERED]
    extra = ["1.0.0-alpha.1.x", "1.0.0-alphab", "1.0.0-alpha.9", "1.0.0-alpha.10", "1.0.0-alpha.100",
             "1.0.0-alpha-1", "1.0.0-Alpha", "1.0.0-1", "1.0.0-10", "1.0.0-1a", "0.0.1", "1.0.0-rc.1.1"]
    versions += [SemVer.parse(t) for t in extra]
    for _ in range(20):
        random.shuffle(versions)
        assert sorted(versions, key=SemVer.sort_key) == sorted(versions, key=lambda v: v.precedence)
    # a release sorts above every pre-release of its core, and below the next core's pre-releases
    assert SemVer.parse("1.0.0").sort_key() > SemVer.parse("1.0.0-zzz.999").sort_key()
    assert SemVer.parse("1.0.0").sort_key() < SemVer.parse("1.0.1-0").sort_key()


def test_build_metadata_does_not_count_for_precedence():
    a, b = SemVer.parse("1.0.0+a"), SemVer.parse("1.0.0+b")
    assert a.precedence == b.precedence and a.sort_key() == b.sort_key()
    assert a != b and not a < b and not b < a


def test_bump_and_core():
    v = SemVer.parse("1.4.2-rc.1+build.7")
    assert str(v.core) == "1.4.2"
    assert str(v.bump("major")) == "2.0.0"
    assert str(v.bump("minor")) == "1.5.0"
    assert str(v.bump("patch")) == "1.4.3"
    assert str(SemVer(1, 3, 0).with_prerelease("beta", 2)) == "1.3.0-beta.2"
