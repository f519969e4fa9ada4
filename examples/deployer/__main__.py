"""python -m examples.deployer --bootstrap 127.0.0.1:19092 --gateway http://127.0.0.1:8080 --key-file .cairn/admin-key"""
from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

from examples.deployer.deployer import Deployer


async def main() -> None:
    parser = argparse.ArgumentParser(description="Follow cairn.lifecycle.v1 and deploy what goes live")
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--key-file", type=Path, default=Path(".cairn/admin-key"))
    parser.add_argument("--workdir", type=Path, default=Path(".cairn/deployer"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    deployer = await Deployer(bootstrap=args.bootstrap, gateway=args.gateway,
                              api_key=args.key_file.read_text().strip(), workdir=args.workdir,
                              group_id="example-deployer").start()
    print("following cairn.lifecycle.v1; Ctrl-C to stop", flush=True)
    try:
        while True:
            await asyncio.sleep(5)
            for (model, env), d in deployer.state.live.items():
                print(f"{model} [{env}] live={d.version} verified={d.verified} weights={deployer.state.weights.get((model, env))}")
    finally:
        await deployer.stop()


if __name__ == "__main__":
    asyncio.run(main())
