"""collect: collections policy-as-code.

The public API is small: load a policy file, compile it into a Plan.
Imports are lazy so that `collect --help` stays fast.
"""

__version__ = "0.1.0"

__all__ = ["load_policy", "compile_policy", "Plan", "__version__"]


def __getattr__(name):
    if name == "load_policy":
        from .dsl.loader import load_policy

        return load_policy
    if name in ("compile_policy", "Plan"):
        from .engine import compiler, plan

        return compiler.compile_policy if name == "compile_policy" else plan.Plan
    raise AttributeError(name)
