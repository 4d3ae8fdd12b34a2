"""The optional compiled fast path (clonekit/_speedups.c); everything else is in setup.cfg.

Without a C compiler or Python's headers the build skips it (``optional=True``) and clonekit runs
its pure-Python walks, which give the same bytes (docs/benchmarks.md, "A compiled PHP walk").
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "clonekit._speedups",
            ["clonekit/_speedups.c"],
            optional=True,
        )
    ]
)
