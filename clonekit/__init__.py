"""clonekit: production iso-clones in minutes, safely.

    from clonekit import Project
    project = Project.load("clonekit.yml")
    snap = project.snapshot("prod")
    preview = project.restore(snap, name="feature-x")
"""

from .errors import (
    ClonekitError,
    ConfigError,
    IntegrityError,
    LockedError,
    NotFoundError,
    PolicyError,
    PreviewError,
    SourceError,
    StoreError,
)

__version__ = "0.1.0"

__all__ = [
    "ClonekitError",
    "ConfigError",
    "IntegrityError",
    "LockedError",
    "NotFoundError",
    "PolicyError",
    "PreviewError",
    "Project",
    "SourceError",
    "StoreError",
    "__version__",
]


def __getattr__(name: str):  # lazy: `import clonekit` stays cheap for the CLI's --help
    if name == "Project":
        from .project import Project

        return Project
    raise AttributeError(name)
