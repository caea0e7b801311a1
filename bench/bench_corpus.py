"""Recall on the real-world corpus (tests/fixtures/real/): what a user pasting these excerpts is told.

For every check id it prints how many cases must show it and how many did (recall), how many
cases must not show it and did anyway (false alarms); then the overall figures and every input
the engine could not read. ``-v`` lists each miss and false alarm with its case.

    python bench/bench_corpus.py [-v]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.real_corpus import cases, run_case  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="list each miss and false alarm")
    args = parser.parse_args()
    logging.getLogger("diagnostics").addHandler(logging.NullHandler())
    logging.getLogger("diagnostics").propagate = False

    outcomes = [run_case(c) for c in cases()]
    must: Counter[str] = Counter()
    hit: Counter[str] = Counter()
    must_not: Counter[str] = Counter()
    alarms: Counter[str] = Counter()
    for o in outcomes:
        for check in o.case.must:
            must[check] += 1
            hit[check] += check in o.raised
        for check in o.case.must_not:
            must_not[check] += 1
            alarms[check] += check in o.raised

    ids = sorted(set(must) | set(must_not))
    width = max(len(i) for i in ids)
    print(f"{'check':<{width}}  {'recall':>11}  {'false alarms':>12}")
    for check in ids:
        recall = f"{hit[check]}/{must[check]}" if must[check] else "-"
        alarm = f"{alarms[check]}/{must_not[check]}" if must_not[check] else "-"
        print(f"{check:<{width}}  {recall:>11}  {alarm:>12}")

    total_must, total_hit = sum(must.values()), sum(hit.values())
    total_alarms = sum(alarms.values())
    unread = [o for o in outcomes if o.unread]
    negatives = sum(1 for o in outcomes if not o.case.must)
    print()
    print(f"cases: {len(outcomes)} ({negatives} with nothing to find)")
    print(f"recall on must: {total_hit}/{total_must} = {total_hit / max(total_must, 1):.2f}")
    print(f"must_not raised: {total_alarms} of {sum(must_not.values())}")
    known = sum(len(o.case.known_miss) for o in outcomes)
    print(f"known misses (named in expected.json): {known}")
    print(f"inputs not read: {len(unread)}")
    for o in unread:
        print(f"  {o.case.name}: {o.unread[:160]}")
    if args.verbose:
        for o in outcomes:
            for check in o.missed:
                why = o.case.known_miss.get(check)
                print(f"MISS   {o.case.name}: {check}" + (f" (known: {why})" if why else ""))
            for check in o.false_alarms:
                print(f"ALARM  {o.case.name}: {check}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
