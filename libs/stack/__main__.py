"""``python -m libs.stack run``: what ``make run`` does."""
from __future__ import annotations

import argparse
from pathlib import Path

from libs.stack.supervisor import StackConfig, run_foreground


def main() -> None:
    parser = argparse.ArgumentParser(prog="cairn-stack", description="Run Cairn on this machine")
    parser.add_argument("command", choices=["run"], nargs="?", default="run")
    parser.add_argument("--home", type=Path, default=None, help="state folder (default ./.cairn or $CAIRN_HOME)")
    args = parser.parse_args()
    run_foreground(StackConfig.from_env(args.home))


if __name__ == "__main__":
    main()
