"""A DAG whose middle task announces itself and then blocks, for the SIGKILL test."""

from __future__ import annotations

import os
import sys
import time

from pipekit import dag, task


@task
def first() -> int:
    return 1


@task
def hang(x: int) -> int:
    if os.environ.get("KILLABLE_HANG") == "1":
        print("HANGING", flush=True)
        sys.stdout.flush()
        time.sleep(60)
    return x


@task
def after(x: int) -> int:
    return x


@task
def side() -> int:
    return 2


@dag
def killable() -> None:
    after(hang(first()))
    side()
