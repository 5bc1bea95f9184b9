"""A local SMTP sink for the email benchmark: accepts every message, counts them, keeps nothing.

Run as `python bench/smtp_sink.py PORT COUNTFILE`; it writes "<count> <first_ts> <last_ts>" to COUNTFILE
every 100 ms until it is terminated.
"""

import sys
import threading
import time

from aiosmtpd.controller import Controller


class Counter:
    def __init__(self):
        self.count = 0
        self.first = 0.0
        self.last = 0.0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        now = time.time()
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        return "250 OK"


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    counter = Counter()
    controller = Controller(counter, hostname="127.0.0.1", port=port)
    controller.start()
    stop = threading.Event()
    try:
        while not stop.wait(0.1):
            with open(path, "w") as out:
                out.write(f"{counter.count} {counter.first} {counter.last}\n")
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
