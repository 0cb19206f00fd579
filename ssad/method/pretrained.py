"""Pretrained initialisation of the timm backbones (``model.backbone.pretrained``), beyond the paper, which trains
from scratch (docs/howto/own-images.md "Pretrained initialisation").

A value is one of: null or false (from scratch); true (the builder's timm weights, e.g. ``vit_small_patch16_224``'s
default tag); a hub name, ``timm:NAME[.TAG]`` or ``hf-hub:ORG/REPO``, which timm downloads (and caches) on the
user's machine; or the path of a local file, a timm-format state dict (``torch.save(model.state_dict())``, read
with ``torch.load(weights_only=True)``) or a ``.safetensors`` file, which works offline. Either way the weights are
adapted as timm adapts them (the architecture's checkpoint filter: position embeddings resampled to the model's
grid, patch embeddings to its patch size), tensors of another shape (a classifier head, the ImageNet stem of a
ResNet given the CIFAR stem) are left out, and one log line says what was loaded, left out and left random.
"""

from __future__ import annotations

import logging
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ssad.cli.errors import ConfigError, InputError, MissingFileError

log = logging.getLogger(__name__)

HUB_PREFIXES = ("timm:", "hf-hub:")
FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
MIN_COVERAGE = 0.5  # share of the model's parameter elements the weights must fill; less is another architecture
FORMS = ("null/false (from scratch), true (the builder's timm weights), timm:NAME[.TAG] or hf-hub:ORG/REPO "
         "(downloaded by timm), or the path of a state dict (.pt/.pth/.bin) or .safetensors file")


def pretrained_source(value: Any, default_hub: str) -> tuple[str, str] | None:
    """Where ``value`` (``model.backbone.pretrained``) takes weights from: None (from scratch), ``("hub", name)``
    (a timm model name, or an ``hf-hub:`` id, as :func:`timm.create_model` takes it) or ``("file", path)``."""
    if value is None or value is False:
        return None
    if value is True:
        return "hub", default_hub
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ConfigError(f"model.backbone.pretrained={value!r} is not a pretrained source; give {FORMS}")
    text = str(value).strip()
    if text.startswith("timm:"):
        return "hub", text.removeprefix("timm:")
    if text.startswith("hf-hub:"):
        return "hub", text
    path = Path(text).expanduser()
    if path.exists() or path.suffix in FILE_SUFFIXES or "/" in text or "\\" in text:
        return "file", str(path)
    raise ConfigError(f"model.backbone.pretrained={text!r} is neither an existing file nor a hub name; give {FORMS} "
                      f"(a timm model name is written timm:{text})")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a local weights file: ``.safetensors`` through safetensors, any other through
    ``torch.load(weights_only=True)`` (no pickled code runs); a dict wrapping them under ``state_dict`` or ``model``
    is unwrapped, and DDP or ``torch.compile`` prefixes are removed (timm's ``clean_state_dict``)."""
    from timm.models import clean_state_dict

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"model.backbone.pretrained={path}: no such file; give the path of a state dict saved "
                               "with torch.save(model.state_dict()) or a .safetensors file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise InputError(f"{path}: holds more than tensors (pickled objects, refused: loading them could run code); "
                         "save the weights alone with torch.save(model.state_dict(), path) or as .safetensors") from err
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix, said in one line
        raise InputError(f"{path}: not a readable weights file ({type(err).__name__}: {err}); give a state dict "
                         "saved with torch.save(model.state_dict()) or a .safetensors file") from err
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)} if isinstance(state, Mapping) else {}
    if not tensors:
        raise InputError(f"{path}: holds no named tensors (a {type(state).__name__}); give a state dict saved with "
                         "torch.save(model.state_dict()) or a .safetensors file")
    return clean_state_dict(tensors)


def hub_state_dict(name: str) -> dict[str, Tensor]:
    """The weights timm publishes under ``name`` (``vit_small_patch16_224.augreg_in21k``, ``hf-hub:ORG/REPO``),
    downloaded into timm's cache on first use, as the model of its default configuration holds them."""
    import timm

    try:
        reference = timm.create_model(name, pretrained=True)
    except Exception as err:  # noqa: BLE001 - an unknown name, no network: the user's to fix, said in one line
        raise ConfigError(f"model.backbone.pretrained: timm could not provide the weights {name!r} "
                          f"({type(err).__name__}: {err}); check the name (timm.list_pretrained()), or, on a machine "
                          "without network, save them elsewhere with torch.save(model.state_dict(), path) and give "
                          "that path") from err
    return reference.state_dict()


def _filter(model: nn.Module) -> Callable[[dict[str, Tensor], nn.Module], dict[str, Tensor]] | None:
    """timm's checkpoint filter of ``model``'s architecture (its module's ``checkpoint_filter_fn``), if it has one."""
    return getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)


def _names(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown or "none"


def load_weights(model: nn.Module, state: Mapping[str, Tensor], source: str, model_name: str,
                 error: type[Exception] = InputError) -> None:
    """Load ``state`` into ``model`` as far as it fits, after timm's checkpoint filter for the architecture.

    Tensors the model lacks (a classifier head) or holds at another shape are left out; the model's tensors the
    weights do not fill stay as initialised; one log line names them (a warning when some stay random). When the
    tensors that fit fill less than half of the model's parameters, the weights are of another architecture:
    ``error`` names ``source`` and ``model_name``, and the model is left untouched.
    """
    given = {k: v for k, v in state.items()}
    adapt = _filter(model)
    if adapt is not None:
        try:
            given = adapt(dict(given), model)
        except Exception as err:  # noqa: BLE001 - the filter fails on tensors of another architecture
            raise error(f"{source}: its weights do not fit {model_name} (timm's adaptation failed: {err}); give "
                        f"weights of {model_name}'s architecture") from err
    resized = sorted(k for k, v in given.items() if k in state and state[k].shape != v.shape)
    own = model.state_dict()
    fits = {k: v for k, v in given.items() if k in own and own[k].shape == v.shape}
    unexpected = sorted(k for k in given if k not in own)
    other_shape = sorted(k for k in given if k in own and own[k].shape != given[k].shape)
    missing = sorted(k for k in own if k not in fits)
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    filled = sum(params[k].numel() for k in fits if k in params)
    if not fits or filled < MIN_COVERAGE * total:
        why = []
        if other_shape:
            key = other_shape[0]
            why.append(f"{len(other_shape)} tensors of other shapes (e.g. {key}: {tuple(given[key].shape)} in the "
                       f"weights, {tuple(own[key].shape)} in the model)")
        if unexpected:
            why.append(f"{len(unexpected)} tensors the model lacks (e.g. {_names(unexpected, 2)})")
        raise error(f"{source}: its weights do not fit {model_name}: they fill {filled:,} of its {total:,} "
                    f"parameters ({'; '.join(why) or 'no tensor in common'}); give weights of the same "
                    "architecture (timm's model of the same name and sizes, saved with "
                    "torch.save(model.state_dict()))")
    model.load_state_dict(fits, strict=False)
    level = logging.WARNING if missing or other_shape else logging.INFO
    log.log(level, "pretrained %s: %s loaded %d of %d tensors (%.0f%% of its parameters); resized: %s; "
            "left out (not in the model): %s; left out (other shape): %s; left as initialised: %s",
            model_name, source, len(fits), len(own), 100 * filled / total, _names(resized), _names(unexpected),
            _names(other_shape), _names(missing))


def load_pretrained(model: nn.Module, value: Any, default_hub: str, model_name: str) -> nn.Module:
    """Initialise ``model`` from ``value`` (``model.backbone.pretrained``, :func:`pretrained_source`); ``default_hub``
    is the timm name ``true`` stands for. Returns ``model``. A model built on the meta device (shapes only, as a
    run's estimate builds it) has no values to fill: nothing is read or downloaded for it."""
    source = pretrained_source(value, default_hub)
    if source is None or any(p.is_meta for p in model.parameters()):
        return model
    kind, where = source
    if kind == "hub":
        load_weights(model, hub_state_dict(where), f"timm weights {where!r}", model_name, ConfigError)
    else:
        load_weights(model, read_state_dict(where), where, model_name, InputError)
    return model
