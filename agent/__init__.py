"""The Windows node agent: runs the probes, tails the logs, sends ``node-report/v1`` reports.

``python -m agent --config FILE`` on a node; ``python -m agent --scenario FILE
--dashboard URL --token TOKEN`` replays a recorded node anywhere (demo, tests).
Standard library only, plus ``websockets`` for on-demand requests.
"""

from __future__ import annotations

__version__ = "0.1.0"
