"""Any network, by registry name (``KiUNet``, ``PlainConvUNet``, ...) or by import path
(``my_package.nets.MyUNet`` plus keyword overrides as JSON), as an :class:`ArchitectureVariant` that ``check``,
``calibrate`` and the custom planner all take. Every way this can go wrong ends in one :class:`NetworkError`
that says what was given and what to do, before anything is built.
"""
from __future__ import annotations

import importlib
import inspect
import json
from typing import Optional

from torch import nn

from nnunet_archs.errors import UserError
from nnunet_archs.registry import VARIANTS, ArchitectureVariant


class NetworkError(UserError):
    """A network that cannot be used as given (import path, class or keyword overrides)."""


def import_network_class(class_path: str) -> type:
    """The class behind ``package.module.ClassName``, checked to be an ``nn.Module`` that nnU-Net can import
    by the same path (it stores ``module.ClassName`` in the plans and looks it up with ``pydoc.locate``)."""
    module_name, _, attribute = class_path.rpartition(".")
    if not module_name or not attribute:
        raise NetworkError(f"{class_path!r} is neither an architecture name ({', '.join(VARIANTS)}) nor an import "
                           f"path like package.module.ClassName")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise NetworkError(f"cannot import {class_path!r}: no module named {error.name!r} (is the package "
                           f"installed, or its folder on PYTHONPATH?)") from None
    except Exception as error:  # the user's module may fail in any way while it is imported
        raise NetworkError(f"importing {module_name!r} for {class_path!r} failed: {type(error).__name__}: "
                           f"{error}") from None
    cls = getattr(module, attribute, None)
    if cls is None:
        raise NetworkError(f"module {module_name!r} has no attribute {attribute!r} (from {class_path!r})")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise NetworkError(f"{class_path!r} is {type(cls).__name__} {cls!r}, not a torch.nn.Module subclass")
    if cls.__module__ == "__main__":
        raise NetworkError(f"{class_path!r} is defined in a script (__main__), which nnUNetv2_train cannot import; "
                           f"move it into a module on PYTHONPATH")
    return cls


def canonical_path(cls: type) -> str:
    """The path nnU-Net's planner writes into plans files for ``cls`` (``module.QualifiedName``)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def parse_kwargs(text: Optional[str]) -> dict:
    """``--kwargs`` JSON: an object of keyword overrides, e.g. ``'{"pool_type": "max"}'``."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise NetworkError(f"--kwargs is not valid JSON ({error}): {text!r}; give an object such as "
                           f"'{{\"pool_type\": \"max\"}}'") from None
    if not isinstance(value, dict):
        raise NetworkError(f"--kwargs must be a JSON object of keyword arguments, got {type(value).__name__}: "
                           f"{text!r}")
    return value


def check_keywords(cls: type, kwargs: dict) -> None:
    """Keyword overrides must be parameters of the class (unless it takes ``**kwargs``)."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(set(kwargs) - set(parameters))
    if unknown:
        accepted = [name for name in parameters if name != "self"]
        raise NetworkError(f"--kwargs {unknown}: {'not a parameter' if len(unknown) == 1 else 'not parameters'} of "
                           f"{cls.__name__}; it takes {accepted}")


def resolve_network(name_or_path: str, kwargs_json: Optional[str] = None) -> ArchitectureVariant:
    """A registry variant by name, or a class by import path, with ``kwargs_json`` overrides on top."""
    overrides = parse_kwargs(kwargs_json)
    if name_or_path in VARIANTS:
        variant = VARIANTS[name_or_path]
        check_keywords(import_network_class(variant.class_path), overrides)
        return ArchitectureVariant(variant.name, variant.class_path, variant.description,
                                   {**variant.kwargs, **overrides}, variant.feature_scale)
    cls = import_network_class(name_or_path)
    check_keywords(cls, overrides)
    path = canonical_path(cls)
    return ArchitectureVariant(cls.__name__, path, f"{path}" + (f" with {overrides}" if overrides else ""),
                               overrides)
