"""The compiled engine: everything else is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["app/engine/_build.py:ffibuilder"])
