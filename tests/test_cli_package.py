"""The engine installs with pip and gives a ``hunyuan-i2v`` command that runs from any folder."""

import importlib.util
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("setuptools") is None,
                                reason="building offline needs setuptools installed")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Built from a copy of the sources, so the checkout gets no build/ or egg-info folders."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "hunyuan_i2v", source / "hunyuan_i2v", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "-w", str(out), "--no-deps",
                    "--no-build-isolation", "--no-index", "-q"], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("*.whl")
    return built


def test_wheel_holds_the_engine_and_the_command(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = sorted(p.parent.relative_to(ROOT).as_posix() for p in (ROOT / "hunyuan_i2v").rglob("__init__.py"))
    for package in packages:
        assert f"{package}/__init__.py" in names, package
    assert not [n for n in names if n.startswith(("nodes/", "tests/", "__init__.py"))]
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "hunyuan-i2v = hunyuan_i2v.cli:main" in entry_points


def test_installed_command_runs_from_another_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    pip = venv / "bin" / "pip"
    subprocess.run([str(pip), "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, timeout=300,
                   capture_output=True)
    command = venv / "bin" / "hunyuan-i2v"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([str(command), "generate", "--demo", "--demo-family", "hunyuan_video_13b", "--frames", "1",
                             "--steps", "1", "--output", "demo.mp4"], cwd=elsewhere, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert (elsewhere / "demo.mp4").stat().st_size > 0
    refused = subprocess.run([str(command), "generate", "--fps", "0", "--output", "x.mp4"], cwd=elsewhere,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "hunyuan-i2v generate --help" in refused.stderr
