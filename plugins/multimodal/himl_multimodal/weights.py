"""Where model weights come from: a local file or folder, a himl run (``RUN_ID:path``), or (online) a hub name."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from himl_kernel.errors import HimlError

#: A Hugging Face hub repository id: ``owner/name``.
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _hub_offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HIML_OFFLINE")
    )


def resolve_weights(reference: str | Path, what: str, want_folder: bool = False) -> Path:
    """The local file (or Hugging Face folder when ``want_folder``) that ``reference`` names.

    ``what`` names the option in error messages (for example ``"image weights"``).
    """
    text = str(reference).strip()
    if not text:
        raise HimlError(f"{what}: empty reference; pass a local file, a folder or RUN_ID:path")
    local = Path(text).expanduser()
    if local.exists():
        if want_folder and not local.is_dir():
            raise HimlError(f"{what}: {local} is a file; expected a Hugging Face model folder (with config.json)")
        if not want_folder and not local.is_file():
            raise HimlError(f"{what}: {local} is a folder; expected a weights file (.pt, .ckpt or .safetensors)")
        return local
    from himl_kernel.checkpoints import parse_run_reference

    if parse_run_reference(text) is not None:
        from himl_kernel.checkpoints import resolve_checkpoint

        return resolve_checkpoint(text)
    if _HUB_NAME.fullmatch(text):
        return _from_hub(text, what, want_folder)
    raise HimlError(f"{what}: {text!r} is neither an existing path nor RUN_ID:path")


def _from_hub(name: str, what: str, want_folder: bool) -> Path:
    hint = f"{what}: {name!r} is a hub name and the hub is not reachable here; download it once and pass the local path"
    if _hub_offline():
        raise HimlError(hint)
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(name))
    except Exception as exc:  # any failure of the hub client: network, missing repository, authentication
        raise HimlError(f"{hint} ({type(exc).__name__})") from exc
    if want_folder:
        return folder
    files = sorted(p for p in folder.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".safetensors"))
    if len(files) != 1:
        raise HimlError(f"{what}: hub repository {name!r} holds {len(files)} weight files; pass one as a local path")
    return files[0]


def read_state_dict(path: Path, prefix: str = "") -> dict[str, Any]:
    """The tensors of a ``.pt``/``.pth``/``.bin``, ``.safetensors`` or Lightning ``.ckpt`` file.

    A Lightning checkpoint's ``state_dict`` is used; with ``prefix``, only keys under it, prefix removed.
    """
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Mapping[str, Any] = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many kinds of errors for bad files
        raise HimlError(f"cannot read weights from {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
    if not isinstance(state, Mapping):
        raise HimlError(f"weights {path}: expected a state dict (a mapping of names to tensors), got {type(state)}")
    if "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if prefix and any(k.startswith(prefix) for k in state):
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)
