"""The Python SDK (``libs.sdk``) and the ``cairn`` CLI against a real gateway and real services
(registry, audit, version on the folder store, lifecycle, training scheduler, search indexer) on loopback
ports, with real Postgres, Kafka and Redis. The SDK is synchronous, so tests call it in a thread while
the in-process servers keep the event loop. The SDK against a fake transport (no servers):
tests/unit/test_sdk_client.py; grants and keys: test_sdk_permissions.py."""
from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from libs.cli.__main__ import main as cli
from libs.sdk import AsyncCairn, Cairn, CairnAPIError, CairnIntegrityError
from libs.stack.procs import free_port
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings
from services.lifecycle.app import create_app as create_lifecycle
from services.lifecycle.settings import LifecycleSettings
from services.search_indexer.app import create_app as create_search_indexer
from services.search_indexer.settings import SearchIndexerSettings
from services.training_scheduler.app import create_app as create_scheduler
from services.training_scheduler.settings import TrainingSchedulerSettings
from services.version.app import create_app as create_version
from services.version.settings import VersionSettings
from tests.integration.conftest import System
from tests.support.kafka import eventually
from tests.support.servers import RunningServer, serve


ROOT = Path(__file__).resolve().parents[2]
LINK_SECRET = "sdk-test-link-secret-0123456789abcdef"
DIGITS_VISION = {"image_size": 8, "image_channels": 1, "num_classes": 10}


@dataclass
class Stack:
    gateway: RunningServer
    objects_root: Path
    editor: str
    viewer: str
    admin: str

    def sdk(self, token: str | None = None) -> Cairn:
        return Cairn(self.gateway.url, self.editor if token is None else token)

    async def cli(self, *argv: str, token: str | None = None) -> tuple[int, str, str]:
        """Run ``cairn`` through its main() in a thread; (exit code, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        args = ["--url", self.gateway.url, "--api-key", self.editor if token is None else token, *argv]
        code = await asyncio.to_thread(cli, args, stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
async def stack(system: System, service_env, shared_objects_root) -> Stack:
    objects_root = shared_objects_root  # the lifecycle service of tests/integration/lifecycle may take our commands
    gateway_port = free_port()  # the version service signs links for the gateway's URL, so fix it first
    registry_url, audit_url = system.services["registry"].url, system.services["audit"].url
    version = await serve(create_version(VersionSettings(
        **service_env, object_store_url=f"file://{objects_root}", link_secret=LINK_SECRET,
        public_url=f"http://127.0.0.1:{gateway_port}", registry_url=registry_url)))
    lifecycle = await serve(create_lifecycle(LifecycleSettings(
        **service_env, object_store_url=f"file://{objects_root}", version_url=version.url,
        registry_url=registry_url)))
    scheduler = await serve(create_scheduler(TrainingSchedulerSettings(
        **service_env, registry_url=registry_url, version_url=version.url)))
    indexer = await serve(create_search_indexer(SearchIndexerSettings(**service_env, audit_url=audit_url)))
    gateway = await serve(create_gateway(GatewaySettings(
        **service_env, registry_url=registry_url, audit_url=audit_url, version_url=version.url,
        lifecycle_url=lifecycle.url, training_scheduler_url=scheduler.url, search_indexer_url=indexer.url,
        rate_limit_per_minute=100_000)), port=gateway_port)
    yield Stack(gateway=gateway, objects_root=objects_root, editor=await system.token_for("editor"),
                viewer=await system.token_for("viewer"), admin=system.admin_token)
    for server in (gateway, indexer, scheduler, lifecycle, version):
        await server.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def weights_file(tmp_path: Path, size: int = 3 * (1 << 20) + 123) -> tuple[Path, str]:
    path = tmp_path / "weights.bin"
    data = os.urandom(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def test_sdk_round_trip_upload_download_with_progress_and_sha256(stack, tmp_path):
    path, digest = weights_file(tmp_path)
    size = path.stat().st_size
    uploaded, downloaded = [], []

    def flow():
        with stack.sdk() as cairn:
            model = cairn.models.register(unique("sdk"), "vision", metadata=DIGITS_VISION, tags={"team": "ml"})
            version = cairn.versions.create(model["name"], "1.0.0", change_log="first", metrics={"accuracy": 0.9})
            artifact = cairn.artifacts.upload(model["name"], "1.0.0", str(path),
                                              progress=lambda done, total: uploaded.append((done, total)))
            got = cairn.artifacts.download(model["name"], dest=str(tmp_path / "out"),
                                           progress=lambda done, total: downloaded.append((done, total)))
            return model, version, artifact, got, cairn.versions.get(model["name"], "latest")

    (tmp_path / "out").mkdir()
    model, version, artifact, got, latest = await asyncio.to_thread(flow)
    assert version["version"] == "1.0.0" and version["change_log"] == "first"
    assert artifact["sha256"] == digest and artifact["size"] == size
    assert latest["artifact"]["sha256"] == digest
    # the file landed under the server's file name in the directory, and it is the same bytes
    written = Path(got["path"])
    assert written.parent == tmp_path / "out" and got["sha256"] == digest
    assert hashlib.sha256(written.read_bytes()).hexdigest() == digest
    assert not [p for p in written.parent.iterdir() if p.name.endswith(".part")]
    # progress was reported along the way, ending at the full size
    assert uploaded[-1] == (size, size) and len(uploaded) > 2
    assert downloaded[-1] == (size, size) and len(downloaded) > 2
    assert all(a[0] <= b[0] for a, b in zip(uploaded, uploaded[1:]))


async def test_async_client_round_trip_events_and_errors(stack, tmp_path):
    """AsyncCairn on the test's own event loop: the same calls, awaited; streams as async iterators."""
    path, digest = weights_file(tmp_path, size=2 * (1 << 20) + 7)
    progress = []
    async with AsyncCairn(stack.gateway.url, stack.editor) as cairn:
        model = await cairn.models.register(unique("aio"), "vision", metadata=DIGITS_VISION)
        name = model["name"]
        await cairn.versions.create(name, "1.0.0")
        stored = await cairn.artifacts.upload(name, "1.0.0", str(path), progress=lambda d, t: progress.append(d))
        got = await cairn.artifacts.download(name, "1.0.0", dest=str(tmp_path / "copy.bin"))
        assert stored["sha256"] == got["sha256"] == digest and progress[-1] == path.stat().st_size
        assert hashlib.sha256((tmp_path / "copy.bin").read_bytes()).hexdigest() == digest
        assert (await cairn.versions.get(name))["artifact"]["sha256"] == digest

        job = await cairn.training.start(name, "digits", epochs=1)
        await cairn.training.cancel(job["job_id"], reason="aio")
        kinds = [event["event"] async for event in cairn.training.events(job["job_id"])]
        assert kinds == ["queued", "cancelled"]
        assert (await cairn.training.wait(job["job_id"]))["state"] == "cancelled"

        with pytest.raises(CairnAPIError) as refused:
            await cairn.versions.create(name, "1.0.0")
        assert refused.value.status == 409

    async with AsyncCairn(stack.gateway.url, stack.admin) as admin:
        async def registered():
            return [e async for e in admin.audit.iter(model_id=model["model_id"], order="asc", page_size=1)
                    if e["event_type"] == "ModelRegistered"]

        assert len(await eventually(registered, timeout=30)) == 1


async def test_sdk_tags_aliases_and_listing(stack):
    def flow():
        with stack.sdk() as cairn:
            name = cairn.models.register(unique("sdk-tags"), "classification")["name"]
            cairn.versions.create(name, "1.0.0")
            second = cairn.versions.create(name, bump="minor")
            cairn.versions.tag(name, second["version"], add=["stable", "experimental"])
            tagged = cairn.versions.tag(name, second["version"], remove=["experimental"])
            alias = cairn.versions.set_alias(name, "champion", "1.0.0")
            moved = cairn.versions.set_alias(name, "champion", second["version"])
            return (name, second, tagged, alias, moved, cairn.versions.list(name), cairn.versions.aliases(name),
                    cairn.versions.get(name, "champion"), cairn.models.list(q=name))

    name, second, tagged, alias, moved, page, aliases, champion, models = await asyncio.to_thread(flow)
    assert second["version"] == "1.1.0" and tagged["tags"] == ["stable"]
    assert alias["version"] == "1.0.0" and moved["previous_version"] == "1.0.0"
    assert [v["version"] for v in page["versions"]] == ["1.1.0", "1.0.0"]
    assert [(a["alias"], a["version"]) for a in aliases] == [("champion", "1.1.0")]
    assert champion["version"] == "1.1.0"
    assert [m["name"] for m in models["models"]] == [name]


async def test_refusals_raise_cairn_api_error_with_the_problem_fields(stack):
    def flow():
        errors = {}
        with stack.sdk() as cairn:
            name = cairn.models.register(unique("sdk-err"), "classification")["name"]
            for label, call in {
                "invalid": lambda: cairn.models.register("no spaces allowed!", "classification"),
                "duplicate": lambda: cairn.models.register(name, "classification"),
                "missing": lambda: cairn.models.get(unique("absent")),
                "bad_version": lambda: cairn.versions.create(name, "not-a-semver"),
                "no_artifact": lambda: cairn.artifacts.link(name),
            }.items():
                try:
                    call()
                except CairnAPIError as exc:
                    errors[label] = exc
        with stack.sdk(stack.viewer) as viewer:
            try:
                viewer.models.register(unique("sdk-viewer"), "classification")
            except CairnAPIError as exc:
                errors["forbidden"] = exc
        with stack.sdk("cairn_nokey_wrongsecret") as stranger:
            try:
                stranger.models.list()
            except CairnAPIError as exc:
                errors["unauthenticated"] = exc
        return errors

    errors = await asyncio.to_thread(flow)
    invalid = errors["invalid"]
    assert invalid.status == 422 and invalid.fields == ["name"] and invalid.title
    assert invalid.instance == "/api/v1/models" and invalid.type.startswith("https://")
    assert errors["duplicate"].status == 409 and errors["duplicate"].code
    assert errors["missing"].status == 404 and errors["missing"].detail
    assert errors["bad_version"].status == 422 and any("version" in f for f in errors["bad_version"].fields)
    assert errors["no_artifact"].status == 404
    assert errors["forbidden"].status == 403
    assert errors["unauthenticated"].status == 401
    assert "- name: " in str(invalid)  # the message names the field too


@pytest.mark.parametrize("size", [600_000, 5 * (1 << 20)], ids=["refused-before-the-body", "cut-mid-body"])
async def test_a_corrupted_artifact_is_never_saved(stack, tmp_path, size):
    """The server checks the blob while streaming: a small one is refused before the body (a problem),
    a large one is cut off mid-body. Either way the SDK raises and leaves no file behind."""
    path, digest = weights_file(tmp_path, size=size)

    def upload():
        with stack.sdk() as cairn:
            name = cairn.models.register(unique("sdk-bad"), "classification")["name"]
            cairn.versions.create(name, "1.0.0")
            cairn.artifacts.upload(name, "1.0.0", str(path))
            return name

    name = await asyncio.to_thread(upload)
    blob = stack.objects_root / "blobs" / "sha256" / digest[:2] / digest
    assert blob.exists(), "the folder store keeps blobs by sha256"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # the stored bytes rot: same size, different content
    blob.chmod(0o600)
    blob.write_bytes(bytes(data))
    target = tmp_path / "restored.bin"

    def download():
        with stack.sdk() as cairn:
            cairn.artifacts.download(name, dest=str(target))

    if size < (1 << 20):
        with pytest.raises(CairnAPIError) as refused:
            await asyncio.to_thread(download)
        assert refused.value.code == "artifact_corrupted"
    else:
        with pytest.raises(CairnIntegrityError, match="cut off"):
            await asyncio.to_thread(download)
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


async def test_upload_of_a_file_that_changed_after_hashing_is_refused(stack, tmp_path):
    """The sha256 travels as X-Content-SHA256: the server refuses bytes that do not match it."""
    path, _ = weights_file(tmp_path, size=200_000)

    def flow():
        with stack.sdk() as cairn:
            name = cairn.models.register(unique("sdk-race"), "classification")["name"]
            cairn.versions.create(name, "1.0.0")

            def rewrite_after_hashing(done, total):
                if done == total:  # the hash pass just ended; the upload pass has not started
                    path.write_bytes(os.urandom(total))

            try:
                cairn.artifacts.upload(name, "1.0.0", str(path), hash_progress=rewrite_after_hashing)
            except CairnAPIError as exc:
                return exc, cairn.versions.get(name, "1.0.0")
            raise AssertionError("the upload was accepted")

    error, version = await asyncio.to_thread(flow)
    assert error.status in (409, 422), error
    assert version["artifact"] is None


async def test_cli_models_versions_push_pull_with_progress_and_json(stack, tmp_path):
    path, digest = weights_file(tmp_path, size=2 * (1 << 20))
    name = unique("cli")

    code, out, err = await stack.cli("models", "register", name, "--type", "vision",
                                     "--metadata", json.dumps(DIGITS_VISION), "--tag", "team=ml")
    assert code == 0, err
    assert name in out and "team=ml" in out

    code, out, err = await stack.cli("--json", "versions", "create", name, "1.0.0", "--metric", "accuracy=0.91")
    assert code == 0, err
    assert json.loads(out)["metrics"] == {"accuracy": 0.91}

    code, out, err = await stack.cli("push", name, "1.1.0", str(path), "--create")
    assert code == 0, err
    assert f"sha256 {digest}" in out
    assert "upload weights.bin [" in err and "100.0%" in err  # the progress bar, on stderr

    target = tmp_path / "pulled.bin"
    code, out, err = await stack.cli("pull", name, "-o", str(target))
    assert code == 0, err
    assert "verified" in out and "100.0%" in err and f"download {name}" in err
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest

    code, out, err = await stack.cli("versions", "list", name)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["VERSION", "VERSION_TYPE"]
    assert [line.split()[0] for line in lines[1:3]] == ["1.1.0", "1.0.0"]

    code, out, err = await stack.cli("versions", "alias", name, "champion", "1.0.0")
    assert code == 0 and out.strip() == "champion -> 1.0.0", err
    code, out, err = await stack.cli("versions", "alias", name, "champion", "1.1.0")
    assert out.strip() == "champion -> 1.1.0 (was 1.0.0)"
    code, out, err = await stack.cli("versions", "alias", name, "champion", "--remove")
    assert code == 0 and out.strip() == "removed alias champion"
    code, out, err = await stack.cli("--json", "versions", "alias", name)
    assert code == 0 and json.loads(out) == []

    code, out, err = await stack.cli("--json", "models", "list", "--query", name)
    assert code == 0 and [m["name"] for m in json.loads(out)["models"]] == [name]

    code, out, err = await stack.cli("--json", "models", "delete", name)
    assert code == 0 and json.loads(out) == {"deleted": name}


async def test_cli_reports_problems_on_stderr_with_exit_1_and_never_prints_the_key(stack):
    code, out, err = await stack.cli("models", "register", "bad name!", "--type", "classification")
    assert code == 1 and out == ""
    assert "422" in err and "- name: " in err

    code, out, err = await stack.cli("--json", "models", "show", unique("absent"))
    assert code == 1 and json.loads(out)["error"]["status"] == 404

    code, out, err = await stack.cli("models", "register", unique("viewer"), "--type", "classification",
                                     token=stack.viewer)
    assert code == 1 and "403" in err
    for token in (stack.editor, stack.viewer):
        secret = token.split("_", 2)[2]  # cairn_<key id>_<secret>; the secret may hold "_" itself
        assert secret not in out + err

    code, out, err = await stack.cli("versions", "create")  # usage error
    assert code == 2


async def test_cli_as_a_subprocess_reads_the_environment(stack):
    name = unique("cli-proc")
    await asyncio.to_thread(lambda: stack.sdk().models.register(name, "classification"))
    env = {**os.environ, "CAIRN_URL": stack.gateway.url, "CAIRN_API_KEY": stack.editor,
           "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "libs.cli", "--json", "models", "show", name, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out)["name"] == name
    assert stack.editor.split("_", 2)[2].encode() not in out + err


async def test_lifecycle_promote_publish_production_and_deployments(stack, tmp_path):
    path, digest = weights_file(tmp_path, size=100_000)
    name = unique("sdk-life")

    def prepare():
        with stack.sdk() as cairn:
            cairn.models.register(name, "classification")
            cairn.versions.create(name, "1.0.0")
            cairn.artifacts.upload(name, "1.0.0", str(path))

    await asyncio.to_thread(prepare)
    code, out, err = await stack.cli("promote", name, "1.0.0", "--to", "staging")
    assert code == 0, err
    assert "staging" in out
    code, out, err = await stack.cli("--json", "publish", name, "1.0.0")
    assert code == 0, err

    async def live():
        try:
            return await asyncio.to_thread(lambda: stack.sdk().lifecycle.production(name))
        except CairnAPIError:
            return None

    view = await eventually(live, timeout=30)
    assert view["version"] == "1.0.0"
    code, out, err = await stack.cli("--json", "production", name)
    assert code == 0 and json.loads(out)["version"] == "1.0.0"
    # a second version goes live, then the CLI rolls production back to the first
    def second():
        with stack.sdk() as cairn:
            cairn.versions.create(name, "1.1.0")
            cairn.artifacts.upload(name, "1.1.0", str(path))
            cairn.lifecycle.promote(name, "1.1.0")
            return cairn.lifecycle.publish(name, "1.1.0")

    assert (await asyncio.to_thread(second))["status"] == "production"
    code, out, err = await stack.cli("rollback", name, "--reason", "cli test", "--wait", "30")
    assert code == 0, err
    assert out.strip() == f"rolled back {name} in production: 1.1.0 -> 1.0.0"
    code, out, err = await stack.cli("deployments", name)
    assert code == 0, err
    rows = [line.split()[:2] for line in out.splitlines()[1:]]
    assert ["production", "1.0.0"] in rows and ["production", "1.1.0"] in rows


async def test_training_events_stream_until_the_job_ends(stack):
    """No worker runs here: the job stays queued until cancelled, and the SSE iterator replays what
    happened and ends with the cancellation."""
    name = unique("sdk-train")

    def start():
        with stack.sdk() as cairn:
            cairn.models.register(name, "vision", metadata=DIGITS_VISION)
            return cairn.training.start(name, "digits", epochs=2, pool="cpu")

    job = await asyncio.to_thread(start)
    assert job["state"] == "queued" and job["spec"]["hyperparameters"]["epochs"] == 2

    def cancel_then_follow():
        with stack.sdk() as cairn:
            cairn.training.cancel(job["job_id"], reason="sdk test")
            return [(e["event"], e["data"]["state"]) for e in cairn.training.events(job["job_id"])]

    events = await asyncio.to_thread(cancel_then_follow)
    assert events == [("queued", "queued"), ("cancelled", "cancelled")]

    code, out, err = await stack.cli("jobs", "follow", job["job_id"])
    assert code == 1  # the job did not succeed
    assert "queued" in err and "cancelled: sdk test" in err
    assert "cancelled" in out

    code, out, err = await stack.cli("train", name, "--dataset", "digits", "--epochs", "0")
    assert code == 1 and "422" in err


async def test_search_and_audit_through_the_sdk_and_cli(stack):
    name = unique("sdk-find")
    model = await asyncio.to_thread(lambda: stack.sdk().models.register(name, "classification",
                                                                        description="findable"))

    async def found():
        page = await asyncio.to_thread(lambda: stack.sdk().search(name))
        return page if any(m["name"] == name for m in page["models"]) else None

    page = await eventually(found, timeout=30)
    assert page["models"][0]["name"] == name
    code, out, err = await stack.cli("search", name)
    assert code == 0 and name in out

    async def audited():
        page = await asyncio.to_thread(lambda: stack.sdk(stack.admin).audit.list(model_id=model["model_id"]))
        return page if any(e["event_type"] == "ModelRegistered" for e in page["entries"]) else None

    await eventually(audited, timeout=30)
    code, out, err = await stack.cli("audit", "--model-id", model["model_id"], token=stack.admin)
    assert code == 0 and "ModelRegistered" in out
    code, out, err = await stack.cli("--json", "audit", "--model", name, token=stack.admin)  # by name
    assert code == 0 and {e["model_id"] for e in json.loads(out)["entries"]} == {model["model_id"]}
    code, out, err = await stack.cli("audit", "--model-id", model["model_id"])  # an editor may not read it
    assert code == 1 and "403" in err
