"""A `wasi:cli/command@0.2.12` component in Python, after componentize-py's `cli` example:
greets and reports its arguments and the one variable it reads."""

import os
import sys

from wit_world import exports


class Run(exports.Run):
    def run(self) -> None:
        print("Hello from Python on WASI 0.2!")
        print(f"args: {sys.argv[1:]}")
        print(f"GREETING: {os.environ.get('GREETING')}")
