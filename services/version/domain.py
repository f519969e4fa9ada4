"""Pure rules of the version aggregate: semantic versions (semver 2.0.0), the rule that picks the next
version, version types, tags, alias names, retention and download file names. No I/O; the clock and
ids are passed in."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from libs.events.versions import ArtifactRef, Dependency, Lineage, VersionCreated, VersionType
from libs.kit.errors import Conflict, FieldError, ValidationFailed

Bump = Literal["major", "minor", "patch"]
Prerelease = Literal["alpha", "beta", "rc"]

MAX_VERSION_LENGTH = 128
_MAX_NUMBER = (1 << 63) - 1  # the sort key stores major, minor and patch as 8 bytes each

# semver.org's recommended pattern, anchored
_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def _fail(field_name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field_name}: {message}", errors=[FieldError(field_name, message)])


# ---- semantic versions ------------------------------------------------------------------------------


class InvalidVersion(ValueError):
    """Not a semantic version."""


@dataclass(frozen=True)
class SemVer:
    """A semantic version. ``==`` compares every part (build metadata included); ``<``/``>`` compare by
    semver precedence, where build metadata does not count (use ``precedence`` to test equal precedence)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "SemVer":
        if not isinstance(text, str) or len(text) > MAX_VERSION_LENGTH:
            raise InvalidVersion(f"a semantic version has at most {MAX_VERSION_LENGTH} characters")
        match = _SEMVER.match(text)
        if match is None:
            raise InvalidVersion(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])")
        numbers = [int(match[p]) for p in ("major", "minor", "patch")]
        if any(n > _MAX_NUMBER for n in numbers):
            raise InvalidVersion(f"{text!r}: version numbers must be below 2^63")
        pre = tuple(int(p) if p.isdigit() else p for p in match["pre"].split(".")) if match["pre"] else ()
        build = tuple(match["build"].split(".")) if match["build"] else ()
        return cls(*numbers, prerelease=pre, build=build)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(p) for p in self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    @property
    def is_release(self) -> bool:
        return not self.prerelease

    @property
    def core(self) -> "SemVer":
        """MAJOR.MINOR.PATCH without pre-release or build."""
        return SemVer(self.major, self.minor, self.patch)

    @property
    def precedence(self) -> tuple:
        """Sortable by semver §11: numbers, then a release above its pre-releases, then pre-release
        identifiers left to right (numeric below alphanumeric, numbers numerically, text in ASCII order,
        a shorter list below a longer one that it starts)."""
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre)

    def __lt__(self, other: "SemVer") -> bool:
        return self.precedence < other.precedence

    def __le__(self, other: "SemVer") -> bool:
        return self.precedence <= other.precedence

    def __gt__(self, other: "SemVer") -> bool:
        return self.precedence > other.precedence

    def __ge__(self, other: "SemVer") -> bool:
        return self.precedence >= other.precedence

    def sort_key(self) -> bytes:
        """Bytes whose bytewise order is semver precedence (for an index in the database)."""
        out = bytearray()
        for n in (self.major, self.minor, self.patch):
            out += n.to_bytes(8, "big")
        if not self.prerelease:
            out.append(0x02)  # a release sorts above all of its pre-releases
            return bytes(out)
        out.append(0x01)
        for i, part in enumerate(self.prerelease):
            if i:
                out.append(0x00)  # below every identifier byte, so "a" < "a.x" and "a.x" < "ab"
            if isinstance(part, int):
                digits = str(part).encode()
                out += b"\x30" + bytes([len(digits)]) + digits  # numeric: by length, then digits
            else:
                out += b"\x31" + part.encode()  # alphanumeric: ASCII; above every numeric
        return bytes(out)

    def bump(self, part: Bump) -> "SemVer":
        if part == "major":
            return SemVer(self.major + 1, 0, 0)
        if part == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        return SemVer(self.major, self.minor, self.patch + 1)

    def with_prerelease(self, label: str, number: int) -> "SemVer":
        return SemVer(self.major, self.minor, self.patch, prerelease=(label, number))


FIRST = SemVer(1, 0, 0)


def parse_version(text: str, field_name: str = "version") -> SemVer:
    """Parse or raise 422 naming ``field_name``."""
    try:
        return SemVer.parse(text)
    except InvalidVersion as exc:
        raise _fail(field_name, str(exc)) from None


def is_semver(text: str) -> bool:
    try:
        SemVer.parse(text)
    except InvalidVersion:
        return False
    return True


def next_version(
    existing: Iterable[SemVer],
    *,
    version: str | None = None,
    bump: Bump | None = None,
    prerelease: Prerelease | None = None,
) -> SemVer:
    """The version a create makes, given the model's existing versions.

    - ``version``: exactly that one; 409 if a version of the same precedence exists.
    - ``bump``: the next major/minor/patch after the highest *release* (1.0.0 if nothing was released).
    - neither: a patch bump, except that when the highest version is a pre-release of a core that was
      never released, that core is finalised (1.3.0-rc.2 → 1.3.0).
    - ``prerelease`` with either of the last two: the next ``<label>.N`` of that core (1.3.0-beta.1,
      then 1.3.0-beta.2).
    The first version of a model is 1.0.0 (1.0.0-<label>.1 with a pre-release) unless given.
    """
    versions = sorted(existing)
    if version is not None:
        if bump is not None or prerelease is not None:
            name = "bump" if bump is not None else "prerelease"
            raise _fail(name, "give either an explicit version or bump/prerelease, not both")
        wanted = parse_version(version)
        for have in versions:
            if have.precedence == wanted.precedence:
                raise Conflict(f"version {have} already exists", extra={"field": "version"})
        return wanted

    if not versions:
        core = FIRST
    else:
        releases = [v for v in versions if v.is_release]
        released = {r.core for r in releases}
        highest = versions[-1]
        if bump is not None:
            core = releases[-1].bump(bump) if releases else FIRST
        elif not highest.is_release and highest.core not in released:
            core = highest.core  # finalise (or continue) the pre-release line
        else:
            core = releases[-1].bump("patch") if releases else FIRST

    if prerelease is None:
        result = core
    else:
        numbers = [
            v.prerelease[1]
            for v in versions
            if v.core == core and len(v.prerelease) == 2 and v.prerelease[0] == prerelease
            and isinstance(v.prerelease[1], int)
        ]
        result = core.with_prerelease(prerelease, max(numbers, default=0) + 1)
    for have in versions:
        if have.precedence == result.precedence:  # only with hand-made versions in the way
            raise Conflict(f"version {have} already exists; give an explicit version", extra={"field": "version"})
    return result


_LABEL = re.compile(r"^(alpha|beta|rc)\d*$")


def derive_version_type(v: SemVer) -> VersionType | None:
    """release for a release; alpha/beta/rc from the first pre-release identifier; None if it says none."""
    if v.is_release:
        return "release"
    match = _LABEL.match(str(v.prerelease[0]).lower())
    return match[1] if match else None  # type: ignore[return-value]


def resolve_version_type(v: SemVer, given: VersionType | None) -> VersionType:
    """The given type if it agrees with the version, else 422; derived when not given (an unlabelled
    pre-release such as 1.0.0-0.3.7 counts as alpha)."""
    derived = derive_version_type(v)
    if given is None:
        return derived or "alpha"
    if v.is_release and given != "release":
        raise _fail("version_type", f"{v} is a release, not {given}")
    if not v.is_release and given == "release":
        raise _fail("version_type", f"{v} is a pre-release, so it cannot be of type release")
    if derived is not None and given != derived:
        raise _fail("version_type", f"{v} is a {derived} version, not {given}")
    return given


# ---- tags and aliases -------------------------------------------------------------------------------

TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
KNOWN_TAGS = ("stable", "production", "experimental", "deprecated", "backup")
MAX_TAGS = 50
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
RESERVED_ALIASES = frozenset({"latest"})
_TAG = re.compile(TAG_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
_VERSION_LIKE = re.compile(r"^v\d")


def validate_tags(tags: Sequence[str], field_name: str = "tags") -> list[str]:
    """Each tag well-formed (422 naming ``tags.N``); duplicates dropped, order kept."""
    errors = []
    for i, tag in enumerate(tags):
        if not isinstance(tag, str) or not _TAG.match(tag):
            errors.append(FieldError(f"{field_name}.{i}", f"a tag must match {TAG_PATTERN}"))
    if errors:
        raise ValidationFailed(f"{errors[0].field}: {errors[0].message}", errors=errors)
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise _fail(field_name, f"at most {MAX_TAGS} tags")
    return unique


@dataclass(frozen=True)
class TagChange:
    tags: list[str]
    added: list[str]
    removed: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def change_tags(current: Sequence[str], add: Sequence[str], remove: Sequence[str]) -> TagChange:
    """Remove then add; a tag may not be in both lists. At most ``MAX_TAGS`` afterwards."""
    add = validate_tags(add, "add")
    remove = validate_tags(remove, "remove")
    both = [t for t in add if t in remove]
    if both:
        raise _fail("remove", f"tag {both[0]!r} is both added and removed")
    removed = [t for t in remove if t in current]
    kept = [t for t in current if t not in remove]
    added = [t for t in add if t not in kept]
    tags = kept + added
    if len(tags) > MAX_TAGS:
        raise _fail("add", f"a version has at most {MAX_TAGS} tags")
    return TagChange(tags=tags, added=added, removed=removed)


def validate_alias(name: str) -> str:
    if not isinstance(name, str) or not _ALIAS.match(name):
        raise _fail("alias", f"an alias must match {ALIAS_PATTERN}")
    if name in RESERVED_ALIASES:
        raise _fail("alias", f"{name!r} is reserved")
    if _VERSION_LIKE.match(name) or is_semver(name):
        raise _fail("alias", "an alias must not look like a version")
    return name


# ---- retention --------------------------------------------------------------------------------------


def retention_victims(
    newest_first: Sequence[str], *, keep_last: int, live: Set[str], aliased: Set[str]
) -> list[str]:
    """Which versions to delete so that the ``keep_last`` newest versions that are neither live in
    an environment nor named by an alias remain. Live and aliased versions are always kept and do not
    count towards N. Returned newest first."""
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1")
    candidates = [v for v in newest_first if v not in live and v not in aliased]
    return candidates[keep_last:]


# ---- downloads --------------------------------------------------------------------------------------

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._+-]+")


def download_filename(model_name: str, version: str) -> str:
    """``<model name>-<version>.pt`` with anything outside ``[A-Za-z0-9._+-]`` replaced by ``_``."""
    name = _UNSAFE_FILENAME.sub("_", f"{model_name}-{version}").lstrip(".")[:200] or "model"
    return f"{name}.pt"


def artifact_link_path(sha256: str) -> str:
    """The public path a signed folder-store link names (the gateway forwards it to this service)."""
    return f"/api/v1/artifacts/{sha256}"


# ---- the version aggregate --------------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    id: UUID
    model_id: UUID
    version: str
    version_type: VersionType
    created_by: str
    created_at: datetime
    change_log: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    dependencies: list[Dependency] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lineage: Lineage = field(default_factory=Lineage)
    metadata: dict[str, Any] = field(default_factory=dict)
    artifact: ArtifactRef | None = None

    @property
    def semver(self) -> SemVer:
        return SemVer.parse(self.version)

    def state(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "version_id": self.id,
            "version": self.version,
            "version_type": self.version_type,
            "change_log": self.change_log,
            "metrics": self.metrics,
            "training_data": self.training_data,
            "dependencies": self.dependencies,
            "tags": self.tags,
            "lineage": self.lineage,
            "metadata": self.metadata,
            "artifact": self.artifact,
            "created_by": self.created_by,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Creation:
    version: str | None = None
    bump: Bump | None = None
    prerelease: Prerelease | None = None
    version_type: VersionType | None = None
    change_log: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    dependencies: list[Dependency] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    lineage: Lineage = field(default_factory=Lineage)
    metadata: dict[str, Any] = field(default_factory=dict)


def check_parent_version(parent: str | None, existing: Iterable[SemVer]) -> None:
    """Lineage must point at a real version of the same model, so a version tree never has dangling edges."""
    if parent is None:
        return
    try:
        wanted = SemVer.parse(parent)
    except InvalidVersion:
        raise _fail("lineage.parent_version", f"{parent!r} is not a semantic version") from None
    if str(wanted) not in {str(v) for v in existing}:
        raise _fail("lineage.parent_version", f"this model has no version {parent!r}")


def create(
    cmd: Creation, existing: Iterable[SemVer], *, model_id: UUID, version_id: UUID, actor: str, now: datetime
) -> tuple[Version, VersionCreated]:
    tags = validate_tags(cmd.tags)
    existing = list(existing)
    check_parent_version(cmd.lineage.parent_version, existing)
    semver = next_version(existing, version=cmd.version, bump=cmd.bump, prerelease=cmd.prerelease)
    version = Version(
        id=version_id,
        model_id=model_id,
        version=str(semver),
        version_type=resolve_version_type(semver, cmd.version_type),
        created_by=actor,
        created_at=now,
        change_log=cmd.change_log,
        metrics=dict(cmd.metrics),
        training_data=dict(cmd.training_data),
        dependencies=list(dict.fromkeys(cmd.dependencies)),
        tags=tags,
        lineage=cmd.lineage,
        metadata=dict(cmd.metadata),
    )
    return version, VersionCreated(**version.state())
