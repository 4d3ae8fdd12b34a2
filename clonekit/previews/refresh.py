"""``refresh NAME --code``: new code on the preview's current data.

The database and files stay exactly as they are now (a developer's work in progress): the
overridden services are rebuilt from their recorded build inputs (or the new ones given), their
containers recreated from the new images, and the preview waits until it answers again. The
``after_restore`` hooks run only when asked (``--hooks``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import yaml

from ..config import Config, check_name
from ..errors import NotFoundError, UsageError
from ..private_file import write_private
from . import code as pc
from .plan import (
    COMPOSE_FILE,
    SECRETS_FILE,
    STATE_FILE,
    PlainDumper,
    find_golden,
    new_plan,
    preview_dir,
    preview_engine,
    read_json,
    services_of,
    wait_http,
)


def refresh_code(config: Config, repo: Any, name: str, flags: Sequence[pc.CodeRequest] = (), *,
                 hooks: bool = False, progress: Any = None) -> Any:
    from .. import preview as pv

    check_name("preview", name)
    engine = preview_engine(config, name)
    folder = preview_dir(config, name)
    with pv.preview_lock(config, name):
        state = read_json(folder / STATE_FILE)
        secrets = read_json(folder / SECRETS_FILE)
        if state is None or secrets is None:
            raise NotFoundError(f"no preview named {name!r} in project {config.project} (no state in {folder})",
                                hint="`clonekit list` shows the previews")
        recorded = pc.load(folder)
        if not recorded and not flags:
            raise UsageError(f"preview {name} runs production's images: there is no code to refresh",
                             hint=f"`clonekit refresh {name} --code --build SERVICE=PATH` gives it a branch's code")
        manifest = repo.resolve(str(state["snapshot_id"]))
        services = services_of(manifest)
        pc.check_requests(flags, services, db_service=str(state.get("db_service") or ""), config=config)
        started = time.monotonic()
        code = pc.rebuild(config, engine, name, recorded, flags, progress)
        compose_file = folder / COMPOSE_FILE
        header = "".join(line for line in compose_file.read_text(encoding="utf-8").splitlines(keepends=True)
                         if line.startswith("#"))
        document = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
        pc.apply(document, code, config)
        text = yaml.dump(document, Dumper=PlainDumper, sort_keys=False, default_flow_style=False)
        write_private(compose_file, header + text)
        pc.save(folder, code)
        engine.compose_cli(compose_file, str(state["compose_project"]),
                           ["up", "-d", "--no-build", "--no-deps", "--force-recreate", *sorted(o.service for o in code)],
                           what=f"restart the code of preview {name}")
        plan = new_plan(config, manifest, name, services, engine, previous=state, secrets_in=secrets,
                            golden=find_golden(config, engine, manifest.id))
        wait_http(config, engine, plan)
        if hooks:
            pv.after_restore_hooks(config, engine, plan, folder)
        state["timings"] = {**(state.get("timings") or {}), "code": round(time.monotonic() - started, 3)}
        write_private(folder / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))
        return pv.preview_from_state(config, name, state, "running")
