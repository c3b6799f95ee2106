"""The project's shape, kept by tests: a short README, literal notebook parameters, one owner
for the backbone's name, nothing cited from outside the repository."""

import ast
import json
import re

import pytest
from conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_the_readme_is_the_front_door_in_at_most_120_lines():
    lines = (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120, f"README.md has {len(lines)} lines; move details to docs/"
    for page in re.findall(r"\]\((docs/[^)#]+)", "\n".join(lines)):
        assert (REPO_ROOT / page).is_file(), f"README links to a missing page {page}"


def _code_cells(notebook):
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return [(c.get("metadata", {}).get("tags", []), "".join(c["source"])) for c in cells if c["cell_type"] == "code"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_has_a_literal_parameters_cell_then_setup(notebook):
    (tags, params), (_, first) = _code_cells(notebook)[:2]
    assert tags == ["parameters"], "the first code cell must be tagged 'parameters' (papermill)"
    for statement in ast.parse(params).body:
        assert isinstance(statement, ast.Assign), f"{notebook.name}: the parameters cell only assigns"
        ast.literal_eval(statement.value)  # raises ValueError for anything but a literal
    assert "setup(profile, overrides)" in first, f"{notebook.name}: the next cell calls setup(profile, overrides)"


def test_only_the_backbone_registry_looks_at_the_backbones_name():
    # a name compared with a string, or looked up in a hand-written tuple; `in BACKBONES` is fine
    compare = re.compile(r"backbone\s*[=!]=|backbone\s+(not\s+)?in\s*[(\[{]|[=!]=\s*[\"'](flava|compact)[\"']")
    offenders = [f"{path.name}:{n}" for path in sorted((REPO_ROOT / "msa_utils").glob("*.py"))
                 if path.name != "encoders.py"
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if compare.search(line) and not line.lstrip().startswith("#")]
    assert offenders == [], "compare backbone names only in msa_utils/features/encoders.py (BACKBONES)"


def test_nothing_cites_a_path_outside_the_repository():
    cited = re.compile(r"\.\./shared|FACTS\.md")
    files = [p for folder in ("msa_utils", "tests", "benchmarks", "scripts", "docs") for p in (REPO_ROOT / folder).rglob("*")
             if p.suffix in {".py", ".md", ".sh"} and p.name != "test_layout.py"] + [REPO_ROOT / "README.md"]
    assert [p.name for p in files if cited.search(p.read_text(encoding="utf-8"))] == []


def test_environment_yml_pins_what_pyproject_pins():
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = {*project["dependencies"], *(pin for extra in project["optional-dependencies"].values() for pin in extra)}
    yml = (REPO_ROOT / "environment.yml").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\s+- ([A-Za-z0-9_.-]+==[^\s#]+)", yml, flags=re.M))
    assert pinned - listed == set(), "pinned in pyproject.toml, missing from environment.yml"
    assert listed - pinned == {"jupyterlab==4.6.6"}, "environment.yml pins more than pyproject.toml (and JupyterLab)"
