"""How keys are named, pure: key ids, key and alias ARNs, alias names, and what an identifier points at.

A key identifier in a request is a key id (a UUID), a key ARN, an alias name (``alias/...``) or an alias
ARN. ``identifier_name`` reduces the ARN forms to the name inside them (an alias name or a key id to be
checked); the key store looks the alias up and the key id in its table.
"""

from __future__ import annotations

import re

from lbproxy.core.principals import ACCOUNT_ID
from lbproxy.keyservice.errors import InvalidAliasNameException, NotFoundException

ALIAS_PREFIX = "alias/"
#: AWS managed keys' aliases (``alias/aws/acm``): nobody creates or deletes one.
RESERVED_ALIAS_PREFIX = "alias/aws/"
MAX_ALIAS_LENGTH = 256
_ALIAS_RE = re.compile(r"^alias/[a-zA-Z0-9:/_-]+$")
_KEY_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def arn_prefix(region: str) -> str:
    return f"arn:aws:kms:{region}:{ACCOUNT_ID}:"


def key_arn(region: str, key_id: str) -> str:
    return f"{arn_prefix(region)}key/{key_id}"


def alias_arn(region: str, name: str) -> str:
    return f"{arn_prefix(region)}{name}"


def is_key_id(text: str) -> bool:
    return bool(_KEY_ID_RE.match(text))


def is_alias(name: str) -> bool:
    return name.startswith(ALIAS_PREFIX)


def identifier_name(region: str, ident: str) -> str:
    """The alias name or (unchecked) key id an identifier names; an ARN of another region, account or
    resource type is ``NotFoundException``."""
    if not ident.startswith("arn:"):
        return ident
    prefix = arn_prefix(region)
    if not ident.startswith(prefix):
        raise NotFoundException(f"Invalid arn {ident}")
    name = ident[len(prefix) :]
    if name.startswith("key/"):
        return name[4:]
    if not is_alias(name):
        raise NotFoundException(f"Invalid arn {ident}")
    return name


def refuse_reserved_alias(alias_name: str) -> None:
    if alias_name.startswith(RESERVED_ALIAS_PREFIX):
        raise InvalidAliasNameException('Alias must not begin with the reserved prefix "alias/aws/".')


def check_alias_name(alias_name: str) -> None:
    """CreateAlias's rules for a new alias name, in AWS's wording."""
    if not is_alias(alias_name):
        raise InvalidAliasNameException('Alias must start with the prefix "alias/".')
    refuse_reserved_alias(alias_name)
    if not _ALIAS_RE.match(alias_name) or len(alias_name) > MAX_ALIAS_LENGTH:
        raise InvalidAliasNameException(
            f"Alias {alias_name} contains characters other than alphanumerics, '/', '_', '-' and ':'."
        )
