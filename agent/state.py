"""What the agent remembers across restarts: its instance id, the report sequence,
reports dropped from the queue and not yet announced, and how far each log has been read.

The instance id is new whenever the state is lost (a node reimaged, the folder
wiped, a corrupt file): the sequence then starts again, and the dashboard takes the
new instance's reports whatever their numbers instead of discarding them as
duplicates of the old instance's.

One small JSON file, replaced atomically (write a temporary file, then
``os.replace``) so a crash leaves either the old or the new state.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_INSTANCE_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def new_instance() -> str:
    return uuid.uuid4().hex


@dataclass
class AgentState:
    path: Path
    sequence: int = 0  # the last sequence number given to a report
    dropped: int = 0  # reports dropped from the queue since the last report was built
    logs: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind -> {"id", "offset", "encoding"}
    instance: str = field(default_factory=new_instance)  # sent with every report as ``agent_instance``

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AgentState:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(p)
        except (OSError, ValueError) as exc:
            # A corrupt state must not stop the agent; the sequence restarts above any queued report.
            log.warning("state file %s unreadable (%s); starting afresh", p, exc)
            return cls(p)
        if not isinstance(data, dict):
            return cls(p)
        logs = data.get("logs")
        instance = data.get("instance")
        try:
            return cls(
                p,
                sequence=int(data.get("sequence", 0) or 0),
                dropped=int(data.get("dropped", 0) or 0),
                logs=logs if isinstance(logs, dict) else {},
                # A state of an older agent has none: its reports start a new instance.
                instance=instance if isinstance(instance, str) and _INSTANCE_RE.match(instance) else new_instance(),
            )
        except (TypeError, ValueError) as exc:
            log.warning("state file %s unreadable (%s); starting afresh", p, exc)
            return cls(p)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(
            json.dumps(
                {"instance": self.instance, "sequence": self.sequence, "dropped": self.dropped, "logs": self.logs},
                sort_keys=True,
            ),
            encoding="utf-8",
        )
        tmp.replace(self.path)
