"""A `wasi:cli/command@0.3.0` component in Python, after componentize-py's `cli-p3` example:
an async `run` that greets and reports its arguments and the one variable it reads."""

import os
import sys

from wit_world import exports


class Run(exports.Run):
    async def run(self) -> None:
        print("Hello from Python on WASI 0.3!")
        print(f"args: {sys.argv[1:]}")
        print(f"GREETING: {os.environ.get('GREETING')}")
