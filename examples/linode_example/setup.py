"""Build script for the example package; all metadata lives in setup.cfg."""

from setuptools import setup

setup()
