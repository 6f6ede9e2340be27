"""Type tokens of mlstack's components: ``mlstack:index:<Type>``, each with an alias to its older token.

Pulumi's component provider host serves one module, ``index``; components written before issue #13 used
``mlstack:<layer>:<Type>``. The alias makes the engine treat a resource registered under the old token as the
same resource, so a stack deployed before the rename replaces nothing (its children's URNs follow the parent).
"""

import pulumi

PACKAGE = "mlstack"


def token(type_name: str) -> str:
    """``mlstack:index:<type_name>``."""
    return f"{PACKAGE}:index:{type_name}"


def with_old_token(opts: pulumi.ResourceOptions | None, old_token: str) -> pulumi.ResourceOptions:
    """``opts`` plus an alias to ``old_token`` (the caller's own aliases are kept)."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=old_token)]))
