"""The README front page and the contributor page point at things that exist: the quick start's
config validates, the README's links reach their files and headings, and the modules the
contributor page names are there. (`make docs` checks the site's own links and API entries.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mtlm.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONTRIBUTING = (ROOT / "docs" / "contributing.md").read_text(encoding="utf-8")


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def github_anchor(heading: str) -> str:
    """The id GitHub (and MkDocs' toc) gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_quick_start_config_is_valid_and_its_commands_use_it() -> None:
    (config_text,) = [block for block in fenced_blocks(README, "yaml") if "two_tasks.yaml" in block]
    config = config_from_dict(yaml.safe_load(config_text), source="README quick start")
    assert all(task.data.bundled for task in config.tasks)
    commands = "".join(fenced_blocks(README, "bash"))
    assert "mtlm train two_tasks.yaml" in commands
    assert f"--model {config.training.output_dir} --task sentiment" in commands
    python = "".join(fenced_blocks(README, "python"))
    assert f'from_pretrained("{config.training.output_dir}")' in python
    assert {"sentiment", "pos"} == {task.name for task in config.tasks}


def test_the_readme_links_reach_their_files_and_headings() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    local = [link for link in links if "://" not in link]
    assert any(link.startswith("docs/guide/") for link in local)
    for link in local:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), flags=re.M)
            assert anchor in {github_anchor(heading) for heading in headings}, link


def test_the_contributor_page_names_modules_that_exist() -> None:
    paths = re.findall(r"`(src/mtlm/[\w/.]*)`", CONTRIBUTING)
    assert len(paths) >= 10
    assert [path for path in paths if not (ROOT / path).exists()] == []
    named = re.findall(r"`(\w+)` in `(src/mtlm/[\w/]+\.py)`", CONTRIBUTING)
    assert {"TaskKind", "Sampler", "Balancer", "Sharing", "KINDS", "BALANCERS"} <= {
        name for name, _ in named
    }
    for name, path in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^(class {name}\b|{name}\s*[:=])", source, flags=re.M), (name, path)
