"""The Python floor for probing: a raw aiohttp loop, run as its own process.

    python bench/aiohttp_floor.py URLS_FILE --cafile CA.pem [--concurrency 32] [--to ADDR]

GETs every URL of the file (one a line) without following redirects, at most
`concurrency` at once through one session, reads each body, and prints how many answered
200, 301 or 404. With `--to`, every host name resolves to ADDR (the ports in the URLs
stay), as a hosts file would. No judging, no output per URL: what any probe must pay.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import sys

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult


class Static(AbstractResolver):
    """Every name is ADDR."""

    def __init__(self, addr: str) -> None:
        self.addr = addr

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": self.addr,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        pass


async def fetch_all(urls: list[str], cafile: str, concurrency: int, to: str | None) -> int:
    ctx = ssl.create_default_context(cafile=cafile)
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(
        limit=concurrency, ssl=ctx, resolver=Static(to) if to else None
    )
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> int:
            async with gate, session.get(url, allow_redirects=False) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*map(one, urls))
    return sum(s in (200, 301, 404) for s in statuses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls_file")
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--to")
    args = parser.parse_args()
    with open(args.urls_file) as f:
        urls = f.read().split()
    answered = asyncio.run(fetch_all(urls, args.cafile, args.concurrency, args.to))
    print(answered)
    sys.exit(0 if answered == len(urls) else 1)


if __name__ == "__main__":
    main()
