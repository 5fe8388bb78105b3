"""Loading what a snapshot is compiled from: the config file and its schemas.

All the I/O of a (re)load lives here (reading files, running protoc, asking
backends for server reflection), so :func:`gateway.snapshot.compile_snapshot`
stays a pure function of what this module hands it.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from google.protobuf import descriptor_pb2

from gateway.config import ConfigIssue, GatewayConfig, LoadedConfig, load_config_file
from gateway.descriptors import DescriptorError, compile_proto, read_descriptor_set
from gateway.reflection import ReflectionError, fetch_descriptor_set
from gateway.snapshot import DescriptorSources, Snapshot, compile_snapshot
from gateway.tls.checks import tls_file_issues

log = logging.getLogger(f"meshgate.{__name__}")


def load_sources(loaded: LoadedConfig) -> DescriptorSources:
    """Read every descriptor source: files, protos (protoc), and reflection."""
    files: list[descriptor_pb2.FileDescriptorSet] = []
    issues: list[ConfigIssue] = []
    for i, source in enumerate(loaded.config.descriptors):
        try:
            if source.file is not None:
                files.append(read_descriptor_set(loaded.resolve(source.file)))
            elif source.proto is not None:
                include = [loaded.resolve(p) for p in source.include]
                files.append(compile_proto(loaded.resolve(source.proto), include))
        except DescriptorError as exc:
            key = "file" if source.file is not None else "proto"
            issues.append(ConfigIssue(("descriptors", i, key), str(exc)))
    issues += tls_file_issues(loaded)
    return DescriptorSources(tuple(files), fetch_reflection(loaded.config), tuple(issues))


def fetch_reflection(config: GatewayConfig) -> dict[str, descriptor_pb2.FileDescriptorSet]:
    """Descriptor sets by server reflection, by cluster. A backend that does not
    answer is skipped: its services arrive on demand later."""
    fetched: dict[str, descriptor_pb2.FileDescriptorSet] = {}
    for source in config.descriptors:
        if source.reflection is None:
            continue
        name = source.reflection.cluster
        cluster = next((c for c in config.clusters if c.name == name), None)
        if cluster is None:
            continue
        try:
            fetched[name] = fetch_descriptor_set(e.address for e in cluster.endpoints)
        except ReflectionError as exc:
            log.warning("descriptors of cluster %r not fetched yet: %s", name, exc)
    return fetched


def refresh_reflection(snapshot: Snapshot) -> Snapshot:
    """The snapshot again, with reflection sources fetched anew; files and protos
    are not read again, and filters keep their state."""
    sources = snapshot.sources
    fresh = DescriptorSources(
        sources.files, {**sources.reflected, **fetch_reflection(snapshot.config)}, sources.issues
    )
    return compile_snapshot(snapshot.loaded, fresh, previous=snapshot)


def load_snapshot(
    path: Path, previous: Snapshot | None = None, rng: random.Random | None = None
) -> Snapshot:
    """The config file compiled, or ConfigError with every problem."""
    loaded = load_config_file(path)
    return compile_snapshot(loaded, load_sources(loaded), previous, rng)
