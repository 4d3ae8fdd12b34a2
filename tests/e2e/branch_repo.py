"""A branch of the WordPress production's code, and a clonekit.yml for the production (ckprod).

The branch is a Git repository whose Dockerfile builds on the production app image
(clonekit/wordpress:6.1: no registry here) and adds a must-use plugin printing a marker in
the page footer.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

STATE = Path("/var/tmp/clonekit-wordpress")
MU_PLUGINS = "/usr/share/clonekit/mu-plugins"  # WPMU_PLUGIN_DIR of clonekit/wordpress:6.1

CONFIG = """
project: {project}
store: {store}
sources:
  prod:
    database: {{engine: mariadb, host: 127.0.0.1, port: 33306, name: wordpress, user: wp, password_env: {password_env}}}
    files: [{{path: {uploads}}}]
    containers: {{compose_project: ckprod}}
sanitize: {{preset: wordpress, secret_env: {secret_env}}}
previews:
  http_service: app
  env: {{WP_HOME: "{{url}}", DB_PASSWORD: "{{db.password}}"}}
  replace: {{"http://127.0.0.1:8088": "{{url}}"}}
  ttl: 1d
"""


def production_config(project: str, store: Path, *, password_env: str, secret_env: str, extra: str = "") -> str:
    """clonekit.yml for the production; ``extra`` is appended under ``previews:``."""
    return CONFIG.format(project=project, store=store, uploads=STATE / "uploads", password_env=password_env,
                         secret_env=secret_env) + extra


def commit_branch(folder: Path, marker: str) -> str:
    """Write (or change) the branch's marker plugin and commit it; returns the commit."""
    folder.mkdir(exist_ok=True)
    (folder / "Dockerfile").write_text(f"FROM clonekit/wordpress:6.1\nCOPY marker.php {MU_PLUGINS}/zz-branch-marker.php\n")
    (folder / "marker.php").write_text(
        "<?php\nadd_action('wp_footer', function () { echo '<p id=\"branch-marker\">" + marker + "</p>'; });\n")
    git = ["git", "-C", str(folder), "-c", "user.name=ck", "-c", "user.email=ck@example.invalid"]
    if not (folder / ".git").exists():
        subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", marker], check=True)
    return subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
