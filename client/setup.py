"""Build the client: sealscope/ as it is, and the server's models in sealscope/models/."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent.parent / "app" / "models"


class WithModels(build_py):
    def run(self) -> None:
        super().run()
        out = Path(self.build_lib) / "sealscope" / "models"
        for shim in out.glob("*.py"):
            shim.unlink()
        for src in sorted(MODELS.glob("*.py")):
            text = src.read_text().replace("from app.models.", "from sealscope.models.")
            (out / src.name).write_text(text)


setup(cmdclass={"build_py": WithModels})
