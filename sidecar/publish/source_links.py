"""Which symbolic links inside an incoming version the sidecar follows.

The policy: a link is followed when its target resolves inside the incoming
base, so exports
that share files through links (a ``variables/`` directory linked from a
sibling export, a Kubernetes volume's ``..data`` links) convert and publish as
they load. The published version holds the target's content, never a link: it
stays whole when incoming changes. Every other link is refused before anything
reads the model, with the link and its target named, so conversion, loading
and publishing agree: a link that leaves the incoming base (its content would
be copied into the serving base), one that points at nothing, and a directory
link to one of its own ancestors (a copy would never end). The incoming listing
applies the same rule to model and version directories that are links (refused,
with the reason, when they lead outside the incoming base), as the admin API does.
"""

from __future__ import annotations

import os
from pathlib import Path

from sidecar.base.errors import UserError, echo


class SourceLinkError(UserError):
    """A symbolic link inside an incoming version is one the sidecar does not follow."""


def resolves_within(path: Path, roots: tuple[Path, ...]) -> bool:
    """Whether ``path``, every link in it resolved, is one of ``roots`` (resolved
    directories) or inside one. The incoming listing asks it of linked model and version
    directories, :func:`check_source_links` of the links inside a version."""
    target = Path(os.path.realpath(path))
    return any(target == root or target.is_relative_to(root) for root in roots)


def check_source_links(version_dir: Path, links_within: Path) -> None:
    """Raise SourceLinkError for the first link under ``version_dir`` the policy refuses.

    Links may resolve anywhere inside ``links_within`` (the incoming base).
    """
    roots = (Path(os.path.realpath(links_within)),)
    if not resolves_within(version_dir, roots):
        raise SourceLinkError(
            f"the version directory leads outside the incoming base (to "
            f"{echo(Path(os.path.realpath(version_dir)))}); the sidecar reads models only from "
            "inside it", where=str(version_dir),
            fix="move or bind-mount the model into the incoming base",
        )
    pending: list[tuple[Path, frozenset[Path]]] = [
        (version_dir, frozenset({Path(os.path.realpath(version_dir))}))
    ]
    while pending:
        directory, ancestors = pending.pop()
        with os.scandir(directory) as entries:
            found = sorted(entries, key=lambda entry: entry.name)
        for entry in found:
            path = Path(entry.path)
            if entry.is_symlink():
                target = _followable_target(path, version_dir, roots, ancestors)
                if target.is_dir():
                    pending.append((path, ancestors | {target}))
            elif entry.is_dir(follow_symlinks=False):
                pending.append((path, ancestors | {Path(os.path.realpath(path))}))


def _followable_target(
    link: Path, version_dir: Path, roots: tuple[Path, ...], ancestors: frozenset[Path]
) -> Path:
    target = Path(os.path.realpath(link))
    shown = f"{echo(os.path.relpath(link, version_dir))} -> {echo(os.readlink(link))}"
    where = str(version_dir)
    if not target.exists():
        raise SourceLinkError(
            f"the symbolic link {shown} in the model points at nothing", where=where,
            fix="export the model again without the broken link, or land the file it names",
        )
    if not resolves_within(target, roots):
        raise SourceLinkError(
            f"the symbolic link {shown} in the model leads outside the incoming base "
            f"(to {echo(target)}); the sidecar does not copy files from elsewhere "
            "into the serving base",
            where=where, fix="land the file itself in the version directory instead of a "
            "link to it (or link only within the incoming base)",
        )
    if target in ancestors:
        raise SourceLinkError(
            f"the symbolic link {shown} in the model points at a directory that contains "
            "it, so the model would never end", where=where,
            fix="remove the link and export the model again",
        )
    return target
