"""The rules of the version aggregate, pure: next version, version type, tags, aliases, retention, file names."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from libs.events.versions import Dependency
from libs.kit.errors import Conflict, ValidationFailed
from services.version import domain
from services.version.domain import SemVer, next_version


def vs(*texts: str) -> list[SemVer]:
    return [SemVer.parse(t) for t in texts]


def nxt(existing: list[str], **kw) -> str:
    return str(next_version(vs(*existing), **kw))


def fields(exc: ValidationFailed) -> list[str]:
    return [e.field for e in exc.errors]


# ---- next version -----------------------------------------------------------------------------------

def test_first_version_is_1_0_0_or_its_first_prerelease():
    assert nxt([]) == "1.0.0"
    assert nxt([], bump="minor") == "1.0.0"
    assert nxt([], bump="major") == "1.0.0"
    assert nxt([], prerelease="beta") == "1.0.0-beta.1"
    assert nxt([], version="0.1.0") == "0.1.0"


def test_bumps_go_from_the_highest_release():
    existing = ["1.0.0", "1.2.0", "1.1.5", "2.0.0-rc.1"]
    assert nxt(existing, bump="patch") == "1.2.1"
    assert nxt(existing, bump="minor") == "1.3.0"
    assert nxt(existing, bump="major") == "2.0.0"


def test_prerelease_numbers_count_up_per_core_and_label():
    assert nxt(["1.2.0"], bump="minor", prerelease="beta") == "1.3.0-beta.1"
    assert nxt(["1.2.0", "1.3.0-beta.1"], bump="minor", prerelease="beta") == "1.3.0-beta.2"
    assert nxt(["1.2.0", "1.3.0-beta.1", "1.3.0-beta.2"], bump="minor", prerelease="rc") == "1.3.0-rc.1"
    assert nxt(["1.2.0", "1.3.0-beta.7", "1.4.0-beta.9"], bump="minor", prerelease="beta") == "1.3.0-beta.8"
    # without a bump, a pre-release continues the unreleased line
    assert nxt(["1.2.0", "1.3.0-beta.1"], prerelease="beta") == "1.3.0-beta.2"
    assert nxt(["1.2.0", "1.3.0-beta.2"], prerelease="rc") == "1.3.0-rc.1"
    # ...or starts the next patch's line after a release
    assert nxt(["1.2.0"], prerelease="alpha") == "1.2.1-alpha.1"


def test_default_is_a_patch_bump():
    assert nxt(["1.0.0"]) == "1.0.1"
    assert nxt(["1.0.0", "1.0.1", "0.9.0"]) == "1.0.2"


def test_default_finalises_an_unreleased_prerelease():
    assert nxt(["1.2.0", "1.3.0-rc.2"]) == "1.3.0"
    assert nxt(["1.0.0-beta.1"]) == "1.0.0"
    assert nxt(["1.0.0-beta.1"], bump="patch") == "1.0.0"  # nothing released yet: the first release is 1.0.0


def test_default_does_not_finalise_a_core_that_was_released():
    # 1.3.0-rc.5 made by hand after 1.3.0 was released: the next default is 1.3.1
    assert nxt(["1.3.0", "1.3.0-rc.5"]) == "1.3.1"


def test_explicit_version_must_not_exist_even_with_other_build_metadata():
    assert nxt(["1.0.0"], version="1.0.0-rc.1") == "1.0.0-rc.1"
    with pytest.raises(Conflict):
        nxt(["1.0.0"], version="1.0.0")
    with pytest.raises(Conflict):
        nxt(["1.0.0"], version="1.0.0+build.2")


def test_explicit_version_is_validated_and_exclusive():
    with pytest.raises(ValidationFailed) as bad:
        nxt([], version="1.0")
    assert fields(bad.value) == ["version"]
    with pytest.raises(ValidationFailed) as both:
        nxt([], version="1.0.0", bump="minor")
    assert fields(both.value) == ["bump"]
    with pytest.raises(ValidationFailed) as both:
        nxt([], version="1.0.0", prerelease="rc")
    assert fields(both.value) == ["prerelease"]


def test_consecutive_defaults_make_distinct_consecutive_versions():
    existing: list[SemVer] = []
    for _ in range(50):
        existing.append(next_version(existing))
    assert [str(v) for v in existing] == ["1.0.0"] + [f"1.0.{i}" for i in range(1, 50)]


# ---- version type -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, derived", [
    ("1.0.0", "release"), ("1.0.0-alpha.1", "alpha"), ("1.0.0-beta", "beta"), ("1.0.0-rc.3", "rc"),
    ("1.0.0-RC.1", "rc"), ("1.0.0-beta2", "beta"), ("1.0.0-0.3.7", "alpha"), ("1.0.0-preview.1", "alpha"),
])
def test_version_type_is_derived(text, derived):
    assert domain.resolve_version_type(SemVer.parse(text), None) == derived


def test_given_version_type_must_agree():
    assert domain.resolve_version_type(SemVer.parse("1.0.0-preview.1"), "beta") == "beta"
    assert domain.resolve_version_type(SemVer.parse("1.0.0-rc.1"), "rc") == "rc"
    for text, given in (("1.0.0", "beta"), ("1.0.0-rc.1", "release"), ("1.0.0-rc.1", "alpha")):
        with pytest.raises(ValidationFailed) as caught:
            domain.resolve_version_type(SemVer.parse(text), given)
        assert fields(caught.value) == ["version_type"]


# ---- tags and aliases -------------------------------------------------------------------------------

def test_tags_are_validated_deduplicated_and_capped():
    assert domain.validate_tags(["stable", "production", "stable", "exp:2026.q1", "A-b_c"]) == [
        "stable", "production", "exp:2026.q1", "A-b_c"]
    with pytest.raises(ValidationFailed) as caught:
        domain.validate_tags(["ok", "not ok", "-leading", "x" * 65])
    assert fields(caught.value) == ["tags.1", "tags.2", "tags.3"]
    assert len(domain.validate_tags([f"t{i}" for i in range(50)])) == 50
    with pytest.raises(ValidationFailed) as many:
        domain.validate_tags([f"t{i}" for i in range(51)])
    assert fields(many.value) == ["tags"]


def test_tag_changes_report_what_changed():
    change = domain.change_tags(["stable", "backup"], add=["production", "stable"], remove=["backup", "never-there"])
    assert change.tags == ["stable", "production"]
    assert change.added == ["production"] and change.removed == ["backup"]
    assert change.changed
    assert not domain.change_tags(["stable"], add=["stable"], remove=["other"]).changed
    with pytest.raises(ValidationFailed) as both:
        domain.change_tags([], add=["x"], remove=["x"])
    assert fields(both.value) == ["remove"]
    with pytest.raises(ValidationFailed) as too_many:
        domain.change_tags([f"t{i}" for i in range(50)], add=["one-more"], remove=[])
    assert fields(too_many.value) == ["add"]
    with pytest.raises(ValidationFailed) as bad:
        domain.change_tags([], add=["ok", "bad tag"], remove=[])
    assert fields(bad.value) == ["add.1"]


@pytest.mark.parametrize("name", ["champion", "challenger", "prod-eu", "a", "blue_green", "x" * 63])
def test_valid_alias_names(name):
    assert domain.validate_alias(name) == name


@pytest.mark.parametrize("name", ["latest", "1.0.0", "v1", "v2-beta", "Champion", "-x", "_x", "9lives", "", "x" * 64,
                                  "has space", "a.b"])
def test_invalid_alias_names(name):
    with pytest.raises(ValidationFailed) as caught:
        domain.validate_alias(name)
    assert fields(caught.value) == ["alias"]


# ---- retention --------------------------------------------------------------------------------------

def test_retention_keeps_the_newest_n_that_are_neither_live_nor_aliased():
    newest_first = ["1.0.6", "1.0.5", "1.0.4", "1.0.3", "1.0.2", "1.0.1", "1.0.0"]
    assert domain.retention_victims(newest_first, keep_last=3, live=set(), aliased=set()) == ["1.0.3", "1.0.2", "1.0.1", "1.0.0"]
    # live and aliased versions are kept and do not use up the budget
    assert domain.retention_victims(newest_first, keep_last=3, live={"1.0.5", "1.0.0"}, aliased={"1.0.2"}) == [
        "1.0.1"]
    assert domain.retention_victims(newest_first, keep_last=10, live=set(), aliased=set()) == []
    assert domain.retention_victims([], keep_last=1, live=set(), aliased=set()) == []
    with pytest.raises(ValueError):
        domain.retention_victims(newest_first, keep_last=0, live=set(), aliased=set())


# ---- downloads and creation -------------------------------------------------------------------------

def test_download_filenames_are_sanitised():
    assert domain.download_filename("bert-base", "1.3.0-beta.1") == "bert-base-1.3.0-beta.1.pt"
    traversal = domain.download_filename("../../etc/passwd", "1.0.0")
    assert "/" not in traversal and not traversal.startswith(".") and traversal.endswith("passwd-1.0.0.pt")
    assert domain.download_filename('a "b"\r\nc', "1.0.0+x") == "a_b_c-1.0.0+x.pt"


def test_create_builds_the_version_and_its_event():
    model_id, version_id = uuid.uuid4(), uuid.uuid4()
    now = datetime(2026, 6, 15, tzinfo=timezone.utc)
    dep = Dependency(model_id=uuid.uuid4(), version="1.0.0")
    cmd = domain.Creation(bump="minor", prerelease="beta", tags=["stable", "stable"], metrics={"accuracy": 0.9},
                          dependencies=[dep, dep])
    version, event = domain.create(cmd, vs("1.0.0"), model_id=model_id, version_id=version_id, actor="alice", now=now)
    assert version.version == "1.1.0-beta.1" and version.version_type == "beta"
    assert version.tags == ["stable"] and version.dependencies == [dep]
    assert event.version_id == version_id and event.model_id == model_id and event.created_by == "alice"
    assert event.artifact is None and event.metrics == {"accuracy": 0.9}
