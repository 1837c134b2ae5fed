"""Print what the lowest-bounds test run (`make test-lowest`) installs: mtlm's dependencies and
the extras its tests use, each pinned to its lower bound, and the test tools as the test extra
names them. torch is left out: the build its bound names on PyPI is not this platform's CPU one,
so the run keeps the pinned torch it installs with these."""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the Makefile installs tomli there
    import tomli as tomllib

#: "name[extras]>=bound", with an optional upper bound after it.
LOWER_BOUND = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)(?P<extras>\[[^\]]*\])?>=(?P<bound>[^,;\s]+)")
#: "mtlm[extra, ...]": the project's own extras, named by the test extra.
OWN_EXTRAS = re.compile(r"^mtlm\[(?P<extras>[^\]]+)\]$")


def requirements(project: dict) -> tuple[list[str], list[str]]:
    """What mtlm needs (its dependencies and the extras its tests use, such as balancing), and
    the test tools themselves (pytest, ...)."""
    optional = project["optional-dependencies"]
    needed, tools = list(project["dependencies"]), []
    for requirement in optional["test"]:
        if own := OWN_EXTRAS.match(requirement):
            for extra in own["extras"].split(","):
                needed += optional[extra.strip()]
        else:
            tools.append(requirement)
    return needed, tools


def pinned(requirement: str) -> str | None:
    """`requirement` pinned to its lower bound (as given, if it has none); None for torch."""
    bound = LOWER_BOUND.match(requirement)
    if bound is None:
        return requirement
    if bound["name"] == "torch":
        return None
    return f"{bound['name']}{bound['extras'] or ''}=={bound['bound']}"


def main() -> int:
    needed, tools = requirements(tomllib.loads(Path(sys.argv[1]).read_text())["project"])
    for line in [pinned(requirement) for requirement in needed] + tools:
        if line is not None:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
