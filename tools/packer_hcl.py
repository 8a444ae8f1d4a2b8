"""Packer templates as data: every ``*.pkr.hcl`` of a folder parsed with a
real HCL2 parser (python-hcl2), merged the way Packer loads a folder.

python-hcl2 8.x keeps HCL's own spelling of values: a string literal comes
back with its quotes (``'"v2.0"'``), an expression as ``'${...}'``, block
labels as quoted keys, and parser bookkeeping under ``__...__`` keys. The
helpers here turn that into plain values so the checks (tools/pins_check.py,
tests/twin/images/test_hcl.py) read like the template, and follow
``local.<name>`` references so ``tags = local.image_tags`` is checked as the
map it stands for.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

_LOCAL_REF = re.compile(r"^\$\{local\.([A-Za-z_][A-Za-z0-9_-]*)\}$")


def clean(value: Any) -> Any:
    """Drops python-hcl2's ``__is_block__``/``__comments__`` bookkeeping."""
    if isinstance(value, dict):
        return {
            k: clean(v)
            for k, v in value.items()
            if not (k.startswith("__") and k.endswith("__"))
        }
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def unquote(value: Any) -> Any:
    """``'"text"'`` -> ``'text'`` (a string literal or template); anything
    else (numbers, booleans, ``${expr}``) is returned as it is."""
    if (
        isinstance(value, str)
        and len(value) >= 2
        and value[0] == '"'
        and value[-1] == '"'
    ):
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def label(key: str) -> str:
    """A block label as written (``'"amazon-ebs"'`` -> ``amazon-ebs``)."""
    return unquote(key)


@dataclass
class Folder:
    """One Packer configuration: all ``*.pkr.hcl`` files of a folder."""

    path: Path
    files: dict[str, dict] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def blocks(self, kind: str) -> list[dict]:
        """Top-level blocks of one kind (``packer``, ``source``...) across files."""
        found = []
        for body in self.files.values():
            found.extend(body.get(kind, []))
        return found

    @property
    def locals(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for block in self.blocks("locals"):
            merged.update(block)
        return merged

    def resolve(self, value: Any, depth: int = 8) -> Any:
        """Follows ``${local.x}`` to the local's own value, then unquotes."""
        for _ in range(depth):
            match = _LOCAL_REF.match(value) if isinstance(value, str) else None
            if not match or match.group(1) not in self.locals:
                break
            value = self.locals[match.group(1)]
        return unquote(value)

    def mapping(self, value: Any) -> dict[str, Any] | None:
        """A map attribute with its keys unquoted and values resolved, or
        None when the value is not a literal map (after following locals)."""
        value = self.resolve(value)
        if not isinstance(value, dict):
            return None
        return {unquote(k): self.resolve(v) for k, v in value.items()}

    def sources(self) -> list[tuple[str, str, dict]]:
        """(type, name, body) of every ``source "type" "name"`` block."""
        found = []
        for block in self.blocks("source"):
            for kind, named in block.items():
                for name, body in named.items():
                    found.append((label(kind), label(name), body))
        return found

    def provisioners(self, kind: str | None = None) -> list[tuple[str, dict]]:
        """(type, body) of every provisioner of every build, in order."""
        return self._build_children("provisioner", kind)

    def post_processors(self, kind: str | None = None) -> list[tuple[str, dict]]:
        return self._build_children("post-processor", kind)

    def _build_children(self, child: str, kind: str | None) -> list[tuple[str, dict]]:
        found = []
        for build in self.blocks("build"):
            for entry in build.get(child, []):
                for name, body in entry.items():
                    if kind is None or label(name) == kind:
                        found.append((label(name), body))
        return found

    def required_plugins(self) -> dict[str, dict[str, Any]]:
        plugins: dict[str, dict[str, Any]] = {}
        for packer in self.blocks("packer"):
            for required in packer.get("required_plugins", []):
                for name, spec in required.items():
                    plugins[name] = {k: self.resolve(v) for k, v in spec.items()}
        return plugins


def load_folder(path: Path) -> Folder:
    """Parses every ``*.pkr.hcl`` in ``path`` (not recursive, like Packer).
    A file that does not parse is recorded in ``errors``, not raised, so a
    check can report it beside everything else."""
    folder = Folder(path=path)
    for file in sorted(path.glob("*.pkr.hcl")):
        try:
            with file.open(encoding="utf-8") as handle:
                folder.files[file.name] = clean(hcl2.load(handle))
        except Exception as err:  # noqa: BLE001 - lark raises many kinds
            folder.errors.append(f"{file}: not valid HCL2: {type(err).__name__}: {err}")
    return folder


def template_folders(root: Path) -> list[Path]:
    """Every folder under images/ holding a ``*.pkr.hcl``."""
    return sorted({p.parent for p in (root / "images").rglob("*.pkr.hcl")})


_EXTRA_VARS_FLAGS = ("--extra-vars", "-e")


def extra_vars_files(arguments: list[Any]) -> list[str]:
    """The ``@file`` values given to ``--extra-vars``/``-e`` in an ansible
    provisioner's ``extra_arguments`` (each flag and value a separate list
    item, as the plugin passes them to exec without a shell)."""
    items = [unquote(a) for a in arguments]
    files = []
    for flag, value in itertools.pairwise(items):
        if (
            flag in _EXTRA_VARS_FLAGS
            and isinstance(value, str)
            and value.startswith("@")
        ):
            files.append(value[1:])
    return files


def repo_relative(path_expr: str) -> str | None:
    """``${abspath(local.repo_root)}/ansible/pins.yml`` (or the same with
    ``${local.repo_root}`` or ``${path.root}/../..``) -> ``ansible/pins.yml``:
    the path inside the repository, when it is rooted at the repository."""
    for prefix in (
        "${abspath(local.repo_root)}/",
        "${local.repo_root}/",
        "${path.root}/../../",
        "${abspath(path.root)}/../../",
    ):
        if path_expr.startswith(prefix):
            return path_expr[len(prefix) :]
    return None
