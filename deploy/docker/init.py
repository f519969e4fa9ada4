"""One-shot start-up job of a container deployment, the part of ``make run`` (libs/stack/supervisor.py)
that happens before the services start:

1. refuse to go on while a secret still holds a ``change-me`` placeholder from deploy/env.example or
   deploy/k8s/secret.template.yaml;
2. ``python -m <module> migrate`` for every HTTP service in ``libs.stack.catalog`` (SERVICES, then
   the gateway), so a service added to the catalog is migrated without editing this file;
3. ``python -m services.gateway.bootstrap KEY_FILE``: creates an admin API key unless KEY_FILE already
   holds a valid one.

    python /opt/cairn/init.py /var/lib/cairn/admin-key          # compose: KEY_FILE lives on a volume
    python /opt/cairn/init.py /work/admin-key \\
        --existing /var/run/cairn/admin-key/admin-key --k8s-secret cairn-admin-key   # Kubernetes Job

``--existing`` is the key kept from an earlier run (a mounted Secret); it is checked, and kept if still
valid. ``--k8s-secret`` stores a newly created key in that Secret of the pod's namespace, through the
API server with the pod's service account (it needs get/create/update on that one Secret).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

SECRET_SETTINGS = (
    "CAIRN_DATABASE_URL",
    "CAIRN_REDIS_URL",
    "CAIRN_INTERNAL_TOKEN",
    "CAIRN_LINK_SECRET",
    "CAIRN_OBJECT_STORE_URL",
)
PLACEHOLDER = "change-me"
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def refuse_placeholders() -> None:
    left = [name for name in SECRET_SETTINGS if PLACEHOLDER in os.environ.get(name, "").lower()]
    if left:
        raise SystemExit(f"refusing to start: {', '.join(left)} {'holds' if len(left) == 1 else 'hold'} a '{PLACEHOLDER}' placeholder; "
                         "generate real values (see deploy/README.md)")


def migrate_all() -> None:
    from libs.stack.catalog import GATEWAY, SERVICES

    for spec in (*SERVICES, GATEWAY):
        if not getattr(spec, "http", True):  # training workers own no schema (as in libs/stack/supervisor.py)
            continue
        print(f"migrating {spec.name} ({spec.module})", flush=True)
        result = subprocess.run([sys.executable, "-m", spec.module, "migrate"], timeout=300, check=False)
        if result.returncode != 0:
            raise SystemExit(f"migrations of {spec.name} failed with exit status {result.returncode}")


def bootstrap(key_file: Path, existing: Path | None) -> bool:
    """Returns True when a new admin key was written to ``key_file``."""
    key_file.parent.mkdir(parents=True, exist_ok=True)
    if existing is not None and existing.is_file() and existing.read_text().strip():
        shutil.copyfile(existing, key_file)
        os.chmod(key_file, 0o600)
    result = subprocess.run(
        [sys.executable, "-m", "services.gateway.bootstrap", str(key_file)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"admin key bootstrap failed with exit status {result.returncode}")
    outcome = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"admin key: {outcome or 'unknown outcome'} ({key_file})", flush=True)
    return outcome == "created"


def store_in_k8s_secret(name: str, key_file: Path) -> None:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    namespace = (SERVICE_ACCOUNT / "namespace").read_text().strip()
    token = (SERVICE_ACCOUNT / "token").read_text().strip()
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    base = f"https://{host}:{port}/api/v1/namespaces/{namespace}/secrets"
    body = json.dumps({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/name": "cairn", "app.kubernetes.io/component": "init"},
        },
        "data": {"admin-key": base64.b64encode(key_file.read_bytes()).decode()},
    }).encode()

    def call(method: str, url: str) -> int:
        request = urllib.request.Request(url, data=body, method=method, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    status = call("PUT", f"{base}/{name}")
    if status == 404:
        status = call("POST", base)
    if status not in (200, 201):
        raise SystemExit(f"could not store the admin key in Secret {namespace}/{name}: HTTP {status}")
    print(f"admin key stored in Secret {namespace}/{name} (key admin-key)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("key_file", type=Path, help="where the admin key is written (mode 0600)")
    parser.add_argument("--existing", type=Path, help="a key kept from an earlier run, reused while valid")
    parser.add_argument("--k8s-secret", metavar="NAME", help="store a newly created key in this Secret")
    args = parser.parse_args()

    refuse_placeholders()
    migrate_all()
    created = bootstrap(args.key_file, args.existing)
    if args.k8s_secret and (created or args.existing is None or not args.existing.is_file()):
        store_in_k8s_secret(args.k8s_secret, args.key_file)


if __name__ == "__main__":
    main()
