"""Every public function and class of the lens façades has a docstring (the API reference is built from them)."""
from __future__ import annotations

import importlib
import inspect

import pytest

FACADES = ["workbench.grokking", "workbench.superposition", "workbench.spectrum", "workbench.koopman"]


def public_callables(module_name: str):
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    assert names, f"{module_name} must list its public API in __all__"
    for name in names:
        obj = getattr(module, name)  # a name in __all__ that does not exist fails here
        if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj):
            yield name, obj


def _has_doc(obj) -> bool:
    doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)  # a class's own, not inherited
    return bool(doc and doc.strip())


@pytest.mark.parametrize("module_name", FACADES)
def test_public_functions_and_classes_have_docstrings(module_name):
    missing = [name for name, obj in public_callables(module_name) if not _has_doc(obj)]
    assert not missing, f"{module_name}: public names without a docstring: {missing}"


@pytest.mark.xfail(reason="not yet enforced: config helpers (GrokkingConfig.task, ...) and the Koopman dictionaries' "
                          "fit/transform have no docstrings yet; the message lists them", strict=False)
@pytest.mark.parametrize("module_name", FACADES)
def test_public_methods_of_exported_classes_have_docstrings(module_name):
    """The methods users call on the lens classes (``fit``, ``to_dataset``, ...) are documented too."""
    missing = []
    for name, cls in public_callables(module_name):
        if not inspect.isclass(cls) or not cls.__module__.startswith("workbench."):
            continue
        for attr, member in vars(cls).items():
            if attr.startswith("_"):
                continue
            func = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if inspect.isfunction(func) and not inspect.getdoc(getattr(cls, attr)):  # inherited docs count
                missing.append(f"{name}.{attr}")
    assert not missing, f"{module_name}: public methods without a docstring: {missing}"
