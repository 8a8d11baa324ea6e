"""Installable ESPnet plugin: espnet_avsr."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.split("#")[0].strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="espnet_avsr",
    version="0.1.0",
    description="Robust audio-visual speech recognition on MISP as an ESPnet plugin",
    long_description=(here / "README.md").read_text(encoding="utf-8") if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["espnet_avsr", "espnet_avsr.*"]),
    python_requires=">=3.10",
    install_requires=requirements,
    extras_require={"test": ["pytest", "pytest-timeout", "pytest-xdist"]},
)
