"""``cairn``: the command line of the Cairn registry, over the SDK (``libs.sdk``).

    cairn models register digits-cnn --type classification
    cairn versions create digits-cnn 1.0.0
    cairn push digits-cnn 1.0.0 weights.pt         # progress bar, sha256 checked by the server
    cairn pull digits-cnn -o weights.pt            # progress bar, sha256 checked here
    cairn train digits-cnn --dataset digits --epochs 5 --follow
    cairn grants add digits-cnn alice write --expires-in 30d
    cairn keys create ci-bot --role editor --team ml   # the new token, once, on stdout

The gateway and key come from ``--url`` / ``CAIRN_URL`` and ``CAIRN_API_KEY`` (``--api-key`` exists but
leaves the key in your shell history). ``--json`` prints machine-readable JSON on stdout; progress and
errors go to stderr. Exit codes: 0 done, 1 refused by the server or failed, 2 bad usage."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence, TextIO

from libs.cli.output import as_json, record, table
from libs.cli.progress import ProgressBar
from libs.sdk import Cairn, CairnAPIError, CairnError, Secret

Render = Callable[[Any, TextIO], None]


class Context:
    def __init__(self, cairn: Cairn, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.cairn, self.args, self.out, self.err = cairn, args, out, err
        self.exit_code = 0  # set to 1 by commands that print a result but did not succeed

    def bar(self, label: str, unit: str = "bytes") -> ProgressBar:
        return ProgressBar(label, unit=unit, stream=self.err, enabled=not self.args.quiet)


# -- parsing helpers ----------------------------------------------------------------------------


def _pairs(items: Sequence[str] | None, what: str) -> dict[str, str]:
    result = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{what} must look like key=value, got {item!r}")
        result[key] = value
    return result


def _floats(items: Sequence[str] | None) -> dict[str, float]:
    result = {}
    for key, value in _pairs(items, "--metric").items():
        try:
            result[key] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--metric {key} must be a number, got {value!r}") from None
    return result


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{what} is not valid JSON: {exc}") from None


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"expected a duration like 90m, 12h, 30d or 2w, got {text!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _expiry(args: argparse.Namespace) -> datetime | str | None:
    """--expires-at (RFC 3339, with its offset; the server checks it) or --expires-in (from now)."""
    if args.expires_at and args.expires_in:
        raise argparse.ArgumentTypeError("give --expires-at or --expires-in, not both")
    if args.expires_in:
        return datetime.now(timezone.utc) + args.expires_in
    return args.expires_at


def _ref(text: str) -> tuple[str, str]:
    model, sep, version = text.rpartition("@")
    if not sep or not model or not version:
        raise argparse.ArgumentTypeError(f"expected MODEL@VERSION, got {text!r}")
    return model, version


# -- renderers ----------------------------------------------------------------------------------

MODEL_FIELDS = ("model_id", "name", "type", "framework", "task", "owner", "description", "tags", "revision",
                "created_at", "updated_at")
VERSION_FIELDS = ("version", "version_id", "version_type", "created_by", "created_at", "tags", "aliases",
                  "live_environments", "metrics", "artifact.sha256", "artifact.size", "change_log")
JOB_FIELDS = ("job_id", "model_id", "state", "pool", "attempt", "failures", "worker", "device", "checkpoint_epoch",
              "result.version", "last_error", "cancel_reason", "created_at", "finished_at")


def _fields(fields: Sequence[str]) -> Render:
    return lambda value, out: record(value, fields, out)


def _rows(key: str | None, columns: Sequence[str]) -> Render:
    def render(value: Any, out: TextIO) -> None:
        rows = value[key] if key else value
        table(rows, columns, out)
        if key and isinstance(value, dict) and "total" in value:
            out.write(f"{len(rows)} of {value['total']} (page {value.get('page', 1)})\n")
    return render


def _message(text: Callable[[Any], str]) -> Render:
    return lambda value, out: out.write(text(value) + "\n")


def _whole(value: Any, out: TextIO) -> None:
    as_json(value, out)


# -- commands -----------------------------------------------------------------------------------


def models_register(ctx: Context):
    a = ctx.args
    model = ctx.cairn.models.register(
        a.name, a.type, framework=a.framework, task=a.task, description=a.description,
        metadata=_json_arg(a.metadata, "--metadata"), tags=_pairs(a.tag, "--tag") or None, owner=a.owner,
        idempotency_key=a.idempotency_key)
    return model, _fields(MODEL_FIELDS)


def models_list(ctx: Context):
    a = ctx.args
    page = ctx.cairn.models.list(type=a.type, framework=a.framework, task=a.task, owner=a.owner, q=a.query,
                                 page=a.page, page_size=a.page_size)
    return page, _rows("models", ("name", "type", "framework", "task", "owner", "updated_at"))


def models_show(ctx: Context):
    return ctx.cairn.models.get(ctx.args.model), _fields(MODEL_FIELDS)


def models_update(ctx: Context):
    a = ctx.args
    model = ctx.cairn.models.update(a.model, description=a.description, task=a.task, owner=a.owner,
                                    metadata=_json_arg(a.metadata, "--metadata"),
                                    tags=_pairs(a.tag, "--tag") or None, if_revision=a.if_revision)
    return model, _fields(MODEL_FIELDS)


def models_delete(ctx: Context):
    ctx.cairn.models.delete(ctx.args.model, if_revision=ctx.args.if_revision)
    return {"deleted": ctx.args.model}, _message(lambda v: f"deleted model {v['deleted']}")


def versions_create(ctx: Context):
    a = ctx.args
    version = ctx.cairn.versions.create(
        a.model, a.version, bump=a.bump, prerelease=a.prerelease, change_log=a.change_log,
        metrics=_floats(a.metric) or None, tags=a.tag or None, metadata=_json_arg(a.metadata, "--metadata"),
        idempotency_key=a.idempotency_key)
    return version, _fields(VERSION_FIELDS)


def versions_list(ctx: Context):
    page = ctx.cairn.versions.list(ctx.args.model, tag=ctx.args.tag, page=ctx.args.page, page_size=ctx.args.page_size)
    return page, _rows("versions", ("version", "version_type", "tags", "aliases", "live_environments",
                                    "artifact.size", "created_at"))


def versions_show(ctx: Context):
    return ctx.cairn.versions.get(ctx.args.model, ctx.args.version), _fields(VERSION_FIELDS)


def versions_tag(ctx: Context):
    a = ctx.args
    return ctx.cairn.versions.tag(a.model, a.version, add=a.add or (), remove=a.remove or ()), _fields(VERSION_FIELDS)


def versions_alias(ctx: Context):
    a = ctx.args
    if a.remove:
        if not a.alias or a.version:
            raise argparse.ArgumentTypeError("--remove takes ALIAS and no VERSION")
        ctx.cairn.versions.remove_alias(a.model, a.alias)
        return {"removed": a.alias}, _message(lambda v: f"removed alias {v['removed']}")
    if a.alias is None:
        return ctx.cairn.versions.aliases(a.model), _rows(None, ("alias", "version", "updated_by", "updated_at"))
    if a.version is None:
        raise argparse.ArgumentTypeError("give the VERSION to point the alias at (or no ALIAS, to list them)")
    moved = ctx.cairn.versions.set_alias(a.model, a.alias, a.version)
    return moved, _message(lambda v: f"{v['alias']} -> {v['version']}"
                           + (f" (was {v['previous_version']})" if v.get("previous_version") else ""))


def push(ctx: Context):
    a = ctx.args
    cairn = ctx.cairn
    if a.create:
        try:
            cairn.versions.get(a.model, a.version)
        except CairnAPIError as exc:
            if exc.status != 404:
                raise
            cairn.versions.create(a.model, a.version)
    hashing = ctx.bar(f"sha256 {os.path.basename(a.file)}")
    uploading = ctx.bar(f"upload {os.path.basename(a.file)}")
    try:
        artifact = cairn.artifacts.upload(a.model, a.version, a.file, progress=uploading, hash_progress=hashing)
    finally:
        hashing.close()
        uploading.close()
    artifact = {"model": a.model, "version": a.version, **artifact}
    return artifact, _message(lambda v: f"stored {v['model']} {v['version']}: {v['size']} bytes, sha256 {v['sha256']}"
                              + (" (deduplicated)" if v.get("deduplicated") else ""))


def pull(ctx: Context):
    a = ctx.args
    bar = ctx.bar(f"download {a.model}" + (f"@{a.version}" if a.version else ""))
    try:
        result = ctx.cairn.artifacts.download(a.model, a.version, dest=a.output, progress=bar)
    finally:
        bar.close()
    return result, _message(lambda v: f"saved {v['path']} ({v['size']} bytes, sha256 {v['sha256']} verified)")


def promote(ctx: Context):
    a = ctx.args
    result = ctx.cairn.lifecycle.transition(a.model, a.version, a.to, environment=a.environment, reason=a.reason)
    return result, _message(lambda v: f"{a.model} {a.version}: {v.get('from_stage', '?')} -> {v.get('to_stage', a.to)}"
                            f" in {a.environment}")


def publish(ctx: Context):
    a = ctx.args
    steps = [int(s) for s in a.steps.split(",")] if a.steps else None
    result = ctx.cairn.lifecycle.publish(a.model, a.version, environment=a.environment,
                                         strategy="gradual" if a.gradual or steps else None, steps=steps,
                                         step_interval_s=a.step_interval, reason=a.reason)
    return result, _message(lambda v: f"{a.model} {v['version']} is {v['status'].replace('_', ' ')} in "
                                      f"{v['environment']}" + (f" (rollout {v['rollout'].get('rollout_id')})"
                                                               if v.get("rollout") else ""))


def rollback(ctx: Context):
    a = ctx.args
    result = ctx.cairn.lifecycle.rollback(a.model, target_version=a.to, environment=a.environment,
                                          reason=a.reason, wait_s=a.wait)
    return result, _message(lambda v: (f"rolled back {a.model} in {v.get('environment')}: "
                                       f"{v.get('previous_version')} -> {v.get('current_version')}")
                            if v.get("status") == "succeeded" else
                            f"rollback {v.get('status')}: follow it with `cairn command {v.get('command_id')}`")


def command(ctx: Context):
    return ctx.cairn.lifecycle.command(ctx.args.command_id), _whole


def production(ctx: Context):
    result = ctx.cairn.lifecycle.production(ctx.args.model, environment=ctx.args.environment)
    return result, _fields(("model_id", "model_name", "environment", "version", "version_id", "artifact.sha256",
                            "artifact.size", "weights", "revision", "updated_at"))


def stages(ctx: Context):
    result = ctx.cairn.lifecycle.stages(ctx.args.model, environment=ctx.args.environment)
    return result, lambda v, out: table(v.get("stages", []), ("version", "environment", "stage", "updated_at"), out)


def deployments(ctx: Context):
    result = ctx.cairn.lifecycle.deployments(ctx.args.model)
    return result, lambda v, out: table(v["deployments"], ("environment", "version", "started_at", "ended_at",
                                                           "actor", "reason"), out)


def train(ctx: Context):
    a = ctx.args
    hyper = _json_arg(a.hyperparameters, "--hyperparameters") or {}
    for key, value in (("batch_size", a.batch_size), ("learning_rate", a.learning_rate)):
        if value is not None:
            hyper[key] = value
    job = ctx.cairn.training.start(a.model, a.dataset, epochs=a.epochs, hyperparameters=hyper or None, pool=a.pool,
                                   dataset_seed=a.seed, bump=a.bump, idempotency_key=a.idempotency_key)
    if not a.follow:
        return job, _fields(JOB_FIELDS)
    ctx.err.write(f"job {job['job_id']} queued on {job.get('pool')}\n")
    return _follow(ctx, job["job_id"])


def _follow(ctx: Context, job_id: str):
    bar = ctx.bar("training", unit="epochs")
    events = []

    def on_event(event: dict) -> None:
        data = event["data"]
        events.append(event)
        kind = event["event"]
        if kind == "progress" and data.get("epochs"):
            bits = [f"loss {data['train_loss']:.4f}" if data.get("train_loss") is not None else "",
                    f"val_acc {data['val_accuracy']:.4f}" if data.get("val_accuracy") is not None else ""]
            bar.note = " ".join(b for b in bits if b)
            bar(int(data["epoch"]), int(data["epochs"]))
        elif kind in ("started", "failed", "released", "cancelled", "completed", "queued"):
            detail = data.get("reason") or data.get("device") or data.get("version") or ""
            if not ctx.args.quiet:
                ctx.err.write(f"{kind}{': ' + str(detail) if detail else ''}\n")

    try:
        job = ctx.cairn.training.wait(job_id, on_event=on_event)
    finally:
        bar.close()
    if job.get("state") != "succeeded":
        why = job.get("last_error") or job.get("cancel_reason") or ""
        ctx.err.write(f"job {job_id} ended {job.get('state')}: {why}\n")
        ctx.exit_code = 1
    return job, _fields(JOB_FIELDS)


def job_show(ctx: Context):
    return ctx.cairn.training.get(ctx.args.job_id), _fields(JOB_FIELDS)


def job_follow(ctx: Context):
    return _follow(ctx, ctx.args.job_id)


def job_cancel(ctx: Context):
    return ctx.cairn.training.cancel(ctx.args.job_id, reason=ctx.args.reason), _fields(JOB_FIELDS)


def jobs_list(ctx: Context):
    result = ctx.cairn.training.list(ctx.args.model)
    return result, _rows("jobs", ("job_id", "state", "pool", "attempt", "result.version", "created_at"))


def evaluate(ctx: Context):
    a = ctx.args
    return ctx.cairn.evaluation.evaluate(a.model, a.version, dataset=a.dataset), _whole


def evaluations(ctx: Context):
    return ctx.cairn.evaluation.list(ctx.args.model, ctx.args.version), _whole


def compare(ctx: Context):
    a = ctx.args
    (m1, v1), (m2, v2) = a.first, a.second
    if a.html:
        report = ctx.cairn.evaluation.compare(m1, v1, m2, v2, metrics=a.metrics, html=True)
        with open(a.html, "w", encoding="utf-8") as f:
            f.write(report)
        return {"html": a.html}, _message(lambda v: f"wrote {v['html']}")
    result = ctx.cairn.evaluation.compare(m1, v1, m2, v2, metrics=a.metrics)

    def render(value: Any, out: TextIO) -> None:
        first, second = value["model_1"], value["model_2"]
        out.write(f"model_1: {first['name']} {first['version']}    model_2: {second['name']} {second['version']}\n")
        performance = value.get("performance") or {}
        table(performance.get("metrics", []), ("name", "model_1", "model_2", "delta_display", "better"), out,
              headers=("metric", "model_1", "model_2", "change", "better"))
        if performance.get("wins"):
            out.write("wins: " + ", ".join(f"{k} {v}" for k, v in performance["wins"].items()) + "\n")
        for note in value.get("notes") or ():
            out.write(f"note: {note}\n")
    return result, render


def search(ctx: Context):
    a = ctx.args
    page = ctx.cairn.search(a.query, framework=a.framework, task=a.task, type=a.type, tags=a.tag or (),
                            stage=a.stage, metrics=a.metric or (), sort_by=a.sort_by, page=a.page,
                            page_size=a.page_size)
    return page, _rows("models", ("name", "version", "status", "type", "framework", "metrics", "score"))


def audit(ctx: Context):
    a = ctx.args
    if a.verify:
        return ctx.cairn.audit.verify(), _whole
    model_id = a.model_id
    if model_id and not _looks_like_uuid(model_id):  # a model name: the log is keyed by id
        model_id = ctx.cairn.models.get(model_id)["model_id"]
    page = ctx.cairn.audit.list(model_id=model_id, actor=a.actor, event_type=a.event_type, since=a.since,
                                until=a.until, order=a.order, cursor=a.cursor, page_size=a.limit)

    def render(value: Any, out: TextIO) -> None:
        table(value["entries"], ("seq", "occurred_at", "event_type", "actor", "subject"), out)
        if value.get("next_cursor"):
            out.write(f"more: --cursor {value['next_cursor']}\n")
    return page, render


def _looks_like_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


def whoami(ctx: Context):
    return ctx.cairn.me(), _fields(("key_id", "name", "role", "team", "expires_at", "permissions"))


# -- grants and keys ----------------------------------------------------------------------------

GRANT_COLUMNS = ("grant_id", "principal", "permission", "expires_at", "granted_by", "granted_at")
KEY_FIELDS = ("key_id", "name", "role", "team", "expires_at", "previous_valid_until")


def grants_add(ctx: Context):
    a = ctx.args
    grant = ctx.cairn.permissions.grant(a.model, a.principal, a.permission, expires_at=_expiry(a))
    return grant, _message(lambda g: f"granted {g['permission']} on {g.get('model_name') or a.model} to "
                                     f"{g['principal']}" + (f" until {g['expires_at']}" if g.get("expires_at") else "")
                                     + f" (grant {g['grant_id']})")


def grants_rm(ctx: Context):
    a = ctx.args
    if a.permission is None:  # one argument: a grant id
        ctx.cairn.permissions.revoke(a.model, a.target, reason=a.reason)
        what = f"grant {a.target}"
    else:
        ctx.cairn.permissions.revoke(a.model, principal=a.target, permission=a.permission, reason=a.reason)
        what = f"{a.permission} of {a.target}"
    return {"revoked": what, "model": a.model}, _message(lambda v: f"revoked {v['revoked']} on {v['model']}")


def grants_list(ctx: Context):
    a = ctx.args
    grants = ctx.cairn.permissions.list(a.model, a.principal, include_inactive=a.all)
    return grants, _rows(None, GRANT_COLUMNS + (("active",) if a.all else ()))


def grants_mine(ctx: Context):
    a = ctx.args
    grants = ctx.cairn.permissions.mine(a.principal, include_inactive=a.all)
    return grants, _rows(None, ("model_name",) + GRANT_COLUMNS[1:4] + (("active",) if a.all else ()))


def grants_check(ctx: Context):
    """Exit code 0 when allowed, 1 when not: usable in scripts (``cairn grants check m write && ...``)."""
    a = ctx.args
    result = ctx.cairn.permissions.check(a.model, a.permission, a.principal)
    if not result.get("allowed"):
        ctx.exit_code = 1

    def text(v: dict) -> str:
        who = f"{v['principal']} on {v['model_name']}"
        if not v.get("allowed"):
            return f"denied: {who} does not hold {v['permission']}" + (f" ({v['reason']})" if v.get("reason") else "")
        until = f" until {v['expires_at']}" if v.get("expires_at") else ""
        return f"allowed: {who} holds {v['permission']} via {v.get('via')}{until}"
    return result, _message(text)


def keys_create(ctx: Context):
    a = ctx.args
    created = ctx.cairn.keys.create(a.name, a.role, team=a.team, expires_at=_expiry(a))
    ctx.err.write("store the token now: it is not shown again\n")
    return _revealed(created), _with_token


def keys_list(ctx: Context):
    keys = ctx.cairn.keys.list()
    if ctx.args.status:
        keys = [k for k in keys if k.get("status") == ctx.args.status]
    return keys, _rows(None, ("key_id", "name", "role", "team", "status", "expires_at", "rotated_at", "created_by"))


def keys_revoke(ctx: Context):
    ctx.cairn.keys.revoke(ctx.args.key_id)
    return {"revoked": ctx.args.key_id}, _message(lambda v: f"revoked key {v['revoked']}")


def keys_rotate(ctx: Context):
    a = ctx.args
    if a.key_id is None and ctx.cairn.key_id is None:
        raise argparse.ArgumentTypeError("give the KEY_ID to rotate (the API key in use is not a "
                                         "cairn_<key id>_... token)")
    own = a.key_id is None or a.key_id == ctx.cairn.key_id
    rotated = ctx.cairn.keys.rotate(a.key_id, grace_s=a.grace)
    until = rotated.get("previous_valid_until")
    old = f"works until {until}" if until else "no longer works"
    ctx.err.write(f"store the token now: it is not shown again; the old one {old}"
                  + ("; update CAIRN_API_KEY" if own else "") + "\n")
    return _revealed(rotated), _with_token


def _revealed(answer: dict) -> dict:
    """The one place the CLI turns the new secret into text: the answer of create or rotate, printed once."""
    token = answer.get("token")
    return {**answer, "token": token.reveal() if isinstance(token, Secret) else token}


def _with_token(value: Any, out: TextIO) -> None:
    fields = [f for f in KEY_FIELDS if f in value]
    record(value, fields, out)
    # Not through record(): its cells are shortened for tables, and a token must be whole.
    out.write(f"{'token'.ljust(max(map(len, fields)))}  {value['token']}\n")


# -- the parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    def options(defaults: bool) -> argparse.ArgumentParser:
        # Accepted before and after the command; after it they must not reset what was given before.
        unset = {} if defaults else {"default": argparse.SUPPRESS}
        p = argparse.ArgumentParser(add_help=False)
        p.add_argument("--url", help="gateway URL (default: $CAIRN_URL or http://127.0.0.1:8080)", **unset)
        p.add_argument("--api-key", help="API key (default: $CAIRN_API_KEY; prefer the variable)", **unset)
        p.add_argument("--json", action="store_true", help="print JSON on stdout", **unset)
        p.add_argument("-q", "--quiet", action="store_true", help="no progress output", **unset)
        return p

    common = options(defaults=False)
    parser = argparse.ArgumentParser(prog="cairn", description="Cairn model registry command line",
                                     parents=[options(defaults=True)])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def cmd(parent, name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(func=func)
        return p

    # models
    models = sub.add_parser("models", help="register, list, show, update, delete models").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = cmd(models, "register", models_register, "register a model")
    p.add_argument("name")
    p.add_argument("--type", required=True, help="classification, regression, transformer, vision, ...")
    p.add_argument("--framework")
    p.add_argument("--task")
    p.add_argument("--description")
    p.add_argument("--owner")
    p.add_argument("--metadata", help="typed metadata as JSON")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p.add_argument("--idempotency-key")
    p = cmd(models, "list", models_list, "list models")
    for flag in ("--type", "--framework", "--task", "--owner"):
        p.add_argument(flag)
    p.add_argument("--query", "-Q", help="text filter")
    p.add_argument("--page", type=int)
    p.add_argument("--page-size", type=int)
    p = cmd(models, "show", models_show, "show a model")
    p.add_argument("model")
    p = cmd(models, "update", models_update, "update a model's fields")
    p.add_argument("model")
    p.add_argument("--description")
    p.add_argument("--task")
    p.add_argument("--owner")
    p.add_argument("--metadata", help="JSON merge patch of the metadata")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p.add_argument("--if-revision", type=int)
    p = cmd(models, "delete", models_delete, "soft-delete a model")
    p.add_argument("model")
    p.add_argument("--if-revision", type=int)

    # versions
    versions = sub.add_parser("versions", help="create, list, show, tag versions; aliases").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = cmd(versions, "create", versions_create, "create a version (explicit, or --bump)")
    p.add_argument("model")
    p.add_argument("version", nargs="?")
    p.add_argument("--bump", choices=("major", "minor", "patch"))
    p.add_argument("--prerelease", choices=("alpha", "beta", "rc"))
    p.add_argument("--change-log")
    p.add_argument("--metric", action="append", metavar="NAME=VALUE")
    p.add_argument("--tag", action="append")
    p.add_argument("--metadata", help="free-form metadata as JSON")
    p.add_argument("--idempotency-key")
    p = cmd(versions, "list", versions_list, "a model's versions, newest first")
    p.add_argument("model")
    p.add_argument("--tag")
    p.add_argument("--page", type=int)
    p.add_argument("--page-size", type=int)
    p = cmd(versions, "show", versions_show, "one version (semver, alias or latest)")
    p.add_argument("model")
    p.add_argument("version", nargs="?", default="latest")
    p = cmd(versions, "tag", versions_tag, "add or remove tags")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--add", action="append")
    p.add_argument("--remove", action="append")
    p = cmd(versions, "alias", versions_alias, "list aliases, point ALIAS at VERSION, or --remove ALIAS")
    p.add_argument("model")
    p.add_argument("alias", nargs="?")
    p.add_argument("version", nargs="?")
    p.add_argument("--remove", action="store_true")

    # artifacts
    p = cmd(sub, "push", push, "upload a weights file to a version (progress bar; sha256 checked by the server)")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("file")
    p.add_argument("--create", action="store_true", help="create the version first if it does not exist")
    p = cmd(sub, "pull", pull, "download a version's weights (progress bar; sha256 verified)")
    p.add_argument("model")
    p.add_argument("--version", help="default: the newest version with an artifact")
    p.add_argument("-o", "--output", help="file or directory (default: the server's file name here)")

    # lifecycle
    p = cmd(sub, "promote", promote, "move a version to a stage (default staging)")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--to", default="staging", choices=("draft", "staging", "production", "archived", "deprecated"))
    p.add_argument("--environment", "--env", default="production")
    p.add_argument("--reason", default="")
    p = cmd(sub, "publish", publish, "make a staged version live (at once, or --gradual)")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--environment", "--env")
    p.add_argument("--gradual", action="store_true")
    p.add_argument("--steps", help="traffic steps, e.g. 10,50,100")
    p.add_argument("--step-interval", type=float, help="seconds between steps (default: advance by command)")
    p.add_argument("--reason")
    p = cmd(sub, "rollback", rollback, "roll production back (to --to, or the previous version)")
    p.add_argument("model")
    p.add_argument("--to", help="target version")
    p.add_argument("--environment", "--env")
    p.add_argument("--reason")
    p.add_argument("--wait", type=float, help="seconds to wait for the outcome")
    p = cmd(sub, "command", command, "the outcome of a command (rollback)")
    p.add_argument("command_id")
    p = cmd(sub, "production", production, "what is live in an environment")
    p.add_argument("model")
    p.add_argument("--environment", "--env")
    p = cmd(sub, "stages", stages, "the stage of every version")
    p.add_argument("model")
    p.add_argument("--environment", "--env")
    p = cmd(sub, "deployments", deployments, "what went live when")
    p.add_argument("model")

    # training
    p = cmd(sub, "train", train, "start a training job (--follow shows a live progress bar per epoch)")
    p.add_argument("model")
    p.add_argument("--dataset", required=True)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--hyperparameters", help="more hyperparameters as JSON")
    p.add_argument("--pool", choices=("cpu", "gpu"))
    p.add_argument("--seed", type=int, help="dataset split seed")
    p.add_argument("--bump", choices=("major", "minor", "patch"))
    p.add_argument("--follow", "-f", action="store_true", help="stream the job's events until it ends")
    p.add_argument("--idempotency-key")
    jobs = sub.add_parser("jobs", help="training jobs: list, show, follow, cancel").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = cmd(jobs, "list", jobs_list, "a model's training jobs")
    p.add_argument("model")
    p = cmd(jobs, "show", job_show, "one job")
    p.add_argument("job_id")
    p = cmd(jobs, "follow", job_follow, "follow a job's live events")
    p.add_argument("job_id")
    p = cmd(jobs, "cancel", job_cancel, "cancel a queued or running job")
    p.add_argument("job_id")
    p.add_argument("--reason")

    # evaluation
    p = cmd(sub, "evaluate", evaluate, "request a (re-)evaluation of a version")
    p.add_argument("model")
    p.add_argument("version")
    p.add_argument("--dataset")
    p = cmd(sub, "evaluations", evaluations, "a version's evaluations")
    p.add_argument("model")
    p.add_argument("version")
    p = cmd(sub, "compare", compare, "compare two versions: MODEL@VERSION MODEL@VERSION")
    p.add_argument("first", type=_ref)
    p.add_argument("second", type=_ref)
    p.add_argument("--metrics", nargs="+")
    p.add_argument("--html", metavar="FILE", help="write the HTML report to FILE")

    # search, audit, me
    p = cmd(sub, "search", search, "search models (typos forgiven), e.g. --metric 'accuracy>=0.9'")
    p.add_argument("query", nargs="?")
    for flag in ("--framework", "--task", "--type", "--stage", "--sort-by"):
        p.add_argument(flag)
    p.add_argument("--tag", action="append")
    p.add_argument("--metric", action="append")
    p.add_argument("--page", type=int)
    p.add_argument("--page-size", type=int)
    p = cmd(sub, "audit", audit, "the audit log (needs audit:read)")
    p.add_argument("--model-id", "--model", dest="model_id", help="model id or name")
    p.add_argument("--actor")
    p.add_argument("--event-type")
    p.add_argument("--since")
    p.add_argument("--until")
    p.add_argument("--order", choices=("asc", "desc"))
    p.add_argument("--cursor")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--verify", action="store_true", help="recompute the hash chain instead")
    cmd(sub, "whoami", whoami, "the calling key's name, role and permissions")
    _grant_commands(sub, cmd)
    _key_commands(sub, cmd)
    return parser


def _expiry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--expires-at", help="RFC 3339 with an offset, e.g. 2027-01-31T00:00:00Z")
    p.add_argument("--expires-in", type=_duration, metavar="DURATION", help="from now: 90m, 12h, 30d, 2w")


def _grant_commands(sub, cmd) -> None:
    levels = ("read", "write", "publish", "admin")
    grants = sub.add_parser("grants", help="per-model permissions: add, rm, list, check, mine").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = cmd(grants, "add", grants_add, "grant a key name or team:<team> a level on a model (or renew it)")
    p.add_argument("model")
    p.add_argument("principal", help="a key name, or team:<team>")
    p.add_argument("permission", choices=levels, help="admin > publish > write > read")
    _expiry_options(p)
    p = cmd(grants, "rm", grants_rm, "revoke a grant: GRANT_ID, or PRINCIPAL PERMISSION")
    p.add_argument("model")
    p.add_argument("target", metavar="GRANT_ID|PRINCIPAL")
    p.add_argument("permission", nargs="?", choices=levels)
    p.add_argument("--reason")
    p = cmd(grants, "list", grants_list, "who holds what on a model (besides roles and the owner)")
    p.add_argument("model")
    p.add_argument("--principal")
    p.add_argument("--all", action="store_true", help="also revoked and expired grants")
    p = cmd(grants, "check", grants_check, "does the caller (or --principal) hold PERMISSION? exit 0 if so, 1 if not")
    p.add_argument("model")
    p.add_argument("permission", choices=levels)
    p.add_argument("--principal", help="another key name or team:<team> (needs admin on the model)")
    p = cmd(grants, "mine", grants_mine, "your grants across models (another principal's: global admins)")
    p.add_argument("--principal")
    p.add_argument("--all", action="store_true", help="also revoked and expired grants")


def _key_commands(sub, cmd) -> None:
    keys = sub.add_parser("keys", help="API keys: create, list, revoke, rotate").add_subparsers(
        dest="action", metavar="ACTION", required=True)
    p = cmd(keys, "create", keys_create, "issue an API key (its token is printed once)")
    p.add_argument("name", help="who uses it: the principal of grants and the actor in events")
    p.add_argument("--role", required=True, choices=("guest", "viewer", "editor", "auditor", "admin"))
    p.add_argument("--team")
    _expiry_options(p)
    p = cmd(keys, "list", keys_list, "every key and its status (never a secret)")
    p.add_argument("--status", choices=("active", "expired", "revoked"))
    p = cmd(keys, "revoke", keys_revoke, "revoke a key")
    p.add_argument("key_id")
    p = cmd(keys, "rotate", keys_rotate, "a new secret for a key (default: your own), printed once")
    p.add_argument("key_id", nargs="?")
    p.add_argument("--grace", type=int, default=0, metavar="SECONDS", help="the old secret keeps working this long")


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed the usage
        return int(exc.code or 0)
    try:
        with Cairn(args.url, args.api_key) as cairn:
            ctx = Context(cairn, args, out, err)
            value, render = args.func(ctx)
            if args.json:
                as_json(value, out)
            else:
                render(value, out)
            return ctx.exit_code
    except argparse.ArgumentTypeError as exc:
        err.write(f"cairn: {exc}\n")
        return 2
    except CairnAPIError as exc:
        if args.json:
            as_json({"error": {"status": exc.status, "title": exc.title, "detail": exc.detail, "code": exc.code,
                               "errors": exc.errors, **exc.extra}}, out)
        err.write(f"cairn: {exc}\n")
        return 1
    except CairnError as exc:
        err.write(f"cairn: {exc}\n")
        return 1
    except OSError as exc:
        err.write(f"cairn: {exc}\n")
        return 1
    except KeyboardInterrupt:
        err.write("cairn: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
