"""A writer to SIGKILL: appends with append_durable and prints what was confirmed.

    python -m tests.outbox.durable_child STATE_DIR RUN

Prints ``ready`` once the outbox is open, then one ``RUN WRITER FIRST LAST`` line per
confirmed append (lines ``crash,run=RUN,w=WRITER v=I`` for I in FIRST..LAST), written
with one os.write each so a kill never leaves half a confirmation that looks whole.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from gateway.outbox import DiskOutbox


async def main(state_dir: str, run: int) -> None:
    outbox = DiskOutbox(state_dir)
    os.write(1, b"ready\n")

    async def writer(w: int) -> None:
        i = 0
        while True:
            n = random.randint(1, 20)
            await outbox.append_durable([f"crash,run={run},w={w} v={k}i" for k in range(i, i + n)])
            os.write(1, f"{run} {w} {i} {i + n - 1}\n".encode())
            i += n

    await asyncio.gather(*(writer(w) for w in range(20)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
