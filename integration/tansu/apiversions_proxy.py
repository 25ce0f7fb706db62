#!/usr/bin/env python3
"""A loopback proxy between Kafka clients and Tansu that removes the top-level tagged fields of ApiVersions v3+
responses, and passes every other byte through unchanged.

Why: librdkafka before 2.2.0 skips a tagged field one byte short (librdkafka issue #4278, fixed in v2.2.0). Tansu's
ApiVersions v3 response carries top-level tagged fields (the supported and finalized features), so Debian's
librdkafka 2.0.2 — the one TracedKafka and kcat link — fails the connection with "Read underflow". An empty tagged
section (one zero byte) in their place is a valid response that every client reads. With librdkafka >= 2.2.0 the
proxy is not needed: point the clients at Tansu itself (integration/run --broker tansu --no-proxy).

Test infrastructure of the integration suite only.

    apiversions_proxy.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT

prints "ready" once it listens on 127.0.0.1:LISTEN_PORT.
"""
import asyncio
import struct
import sys

API_VERSIONS = 18


def read_uvarint(data, position):
    """An unsigned varint at `position`: its value and the position after it."""
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def without_top_level_tags(body):
    """An ApiVersions v3+ response body (correlation id first: its header is always version 0) cut after
    throttle_time_ms and ended by an empty tagged-field section. Unchanged when it reports an error."""
    position = 4
    (error_code,) = struct.unpack_from(">h", body, position)
    if error_code != 0:
        return body
    position += 2
    entries, position = read_uvarint(body, position)  # compact array: length + 1
    for _ in range(max(0, entries - 1)):
        position += 6  # api_key, min_version, max_version
        tags, position = read_uvarint(body, position)
        for _ in range(tags):
            _, position = read_uvarint(body, position)
            size, position = read_uvarint(body, position)
            position += size
    position += 4  # throttle_time_ms
    return body[:position] + b"\x00"


async def frames(reader):
    """Kafka's framing: a 4-byte big-endian length, then that many bytes."""
    while True:
        head = await reader.readexactly(4)
        (length,) = struct.unpack(">i", head)
        yield await reader.readexactly(length)


async def forward_requests(client, broker, versions_asked):
    async for body in frames(client):
        api_key, api_version, correlation = struct.unpack_from(">hhi", body, 0)
        if api_key == API_VERSIONS and api_version >= 3:
            versions_asked.add(correlation)
        broker.write(struct.pack(">i", len(body)) + body)
        await broker.drain()


async def forward_responses(broker, client, versions_asked):
    async for body in frames(broker):
        (correlation,) = struct.unpack_from(">i", body, 0)
        if correlation in versions_asked:
            versions_asked.discard(correlation)
            body = without_top_level_tags(body)
        client.write(struct.pack(">i", len(body)) + body)
        await client.drain()


async def serve(upstream_host, upstream_port, client_reader, client_writer):
    try:
        broker_reader, broker_writer = await asyncio.open_connection(upstream_host, upstream_port)
    except OSError:
        client_writer.close()
        return
    versions_asked = set()
    tasks = [
        asyncio.create_task(forward_requests(client_reader, broker_writer, versions_asked)),
        asyncio.create_task(forward_responses(broker_reader, client_writer, versions_asked)),
    ]
    # Either side closing (or failing) ends the pair.
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    for writer in (broker_writer, client_writer):
        writer.close()


async def main():
    listen_port, upstream_host, upstream_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    server = await asyncio.start_server(
        lambda reader, writer: serve(upstream_host, upstream_port, reader, writer), "127.0.0.1", listen_port
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
