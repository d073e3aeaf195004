"""Masking credentials in text before it is stored or shown.

One function, :func:`mask_secrets`, is used for everything the kernel sends to
the run store (run names, params, tags such as ``himl.command``) and for
everything it prints (progress lines, one-line errors). It masks:

- the password of a URL (``https://user:PASSWORD@host``);
- the values of query parameters and ``name=value`` pairs whose name says they
  are secret: ``sig`` (the signature of an Azure SAS token), ``key``,
  ``token``, ``access_token``, ``client_secret``, ``password``,
  ``AccountKey`` in a storage connection string, and names ending in
  ``_key``, ``_token``, ``_secret``, ``_password``, ``_sig`` or ``-token``...;
- the value after a command-line option named like a secret
  (``--sas-token VALUE``, ``--password VALUE``);
- with :func:`mask_value`, the whole value of a param, tag or setting whose
  own name says it is secret (``api_key``, ``HF_TOKEN``, ``password``); the
  kernel's own ``himl.*`` and ``mlflow.*`` tags are exempt (``himl.resume_key``
  is a digest the kernel looks runs up by).

Each secret becomes ``***``; the rest of the text is left as it was, so a
masked command line still shows what ran.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://user:password@host: the password is masked, the user name kept.
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@?#'\"]*:)(?P<secret>[^\s/@'\"]+)(?=@)")

_SECRET_WORDS = (
    "sig|signature|key|apikey|accountkey|sharedaccesskey|sharedaccesssignature|token|sas|"
    "secret|password|passwd|pwd|credential|credentials|x-amz-signature|x-amz-security-token|x-amz-credential"
)
# name=value where the name is a secret word, or ends in _word / -word (api_key, sas_token, client-secret).
_SECRET_PAIR = re.compile(
    rf"(?P<head>(?<![A-Za-z0-9])(?:[A-Za-z0-9.]*[_-])?(?:{_SECRET_WORDS})=)(?P<secret>[^\s&;#'\",]+)",
    re.IGNORECASE,
)
# --option VALUE where the option names a secret (two command-line words).
_SECRET_OPTION = re.compile(
    rf"(?P<head>(?<![A-Za-z0-9])--?(?:[A-Za-z0-9]*[_-])*(?:{_SECRET_WORDS})['\"]?\s+['\"]?)(?P<secret>[^\s'\"-][^\s'\"]*)",
    re.IGNORECASE,
)

_SECRET_OPTION_NAME = re.compile(rf"--?(?:[A-Za-z0-9]*[_-])*(?:{_SECRET_WORDS})", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """``text`` with URL passwords, secret query parameters and secret option values replaced by ``***``."""
    if not text:
        return text
    masked = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    masked = _SECRET_PAIR.sub(lambda m: m.group("head") + MASK, masked)
    return _SECRET_OPTION.sub(lambda m: m.group("head") + MASK, masked)


_SECRET_NAME = re.compile(rf"(?:.*[_.-])?(?:{_SECRET_WORDS})", re.IGNORECASE)
_OWN_PREFIXES = ("himl.", "mlflow.")


def is_secret_name(name: str) -> bool:
    """Whether a param, tag, field or variable called ``name`` is secret by its name (``api_key``, ``HF_TOKEN``)."""
    return not name.startswith(_OWN_PREFIXES) and _SECRET_NAME.fullmatch(name.strip("-")) is not None


def mask_value(name: str, value: str) -> str:
    """``value`` of the param or tag ``name``: all of it masked when the name says secret, else its secrets."""
    if value and is_secret_name(name):
        return MASK
    return mask_secrets(value)


def mask_arguments(args: list[str]) -> list[str]:
    """A command line, word by word, with secrets masked: the word after ``--token`` or ``--password`` too."""
    masked: list[str] = []
    for index, arg in enumerate(args):
        previous = args[index - 1] if index else ""
        if _SECRET_OPTION_NAME.fullmatch(previous) and not arg.startswith("-"):
            masked.append(MASK)
        else:
            masked.append(mask_secrets(arg))
    return masked


def mask_data(value: Any) -> Any:
    """``value`` (strings, and lists, tuples and dicts of them) with :func:`mask_secrets` and :func:`mask_arguments`
    applied throughout; a list of strings is read as a command line."""
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, dict):
        return {
            key: mask_value(key, item) if isinstance(key, str) and isinstance(item, str) else mask_data(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        if all(isinstance(item, str) for item in value):
            return type(value)(mask_arguments(list(value)))
        return type(value)(mask_data(item) for item in value)
    return value


def has_secret(text: str) -> bool:
    """Whether :func:`mask_secrets` would change ``text``."""
    return mask_secrets(text) != text
