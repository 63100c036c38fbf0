"""Only the compiled crawl walker lives here; everything else is in pyproject.toml.

``optional=True``: where the extension cannot build (no C compiler or Python headers), the
package installs without it and the crawl uses its pure-Python walker.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "froster_slurm.crawl._fastwalk", ["froster_slurm/crawl/_fastwalk.c"],
    extra_compile_args=["-O2", "-std=gnu11"], libraries=["pthread"], optional=True)])
