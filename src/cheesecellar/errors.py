"""The one error hierarchy of cheesecellar; the web layer maps each class to an HTTP status."""

from __future__ import annotations


class CheesecellarError(Exception):
    """Base class: every error the library raises on purpose. The message is shown to users."""

    status = 500


class ConfigError(CheesecellarError, ValueError):
    """A configuration option has a bad value; the message names the option and the value."""


class BadRequest(CheesecellarError):
    """The request is malformed or breaks an upload rule (400)."""

    status = 400


class InvalidFilename(BadRequest):
    """A distribution filename cannot be parsed or is not allowed."""


class InvalidDistribution(BadRequest):
    """The uploaded bytes are not a valid wheel or sdist."""


class DigestMismatch(BadRequest):
    """A digest sent with an upload does not match the bytes."""


class Unauthorized(CheesecellarError):
    """No credentials were given for an action that needs them (401)."""

    status = 401


class Forbidden(CheesecellarError):
    """Credentials are wrong, or the user may not do this (403)."""

    status = 403


class NotFound(CheesecellarError):
    """No such project, release or file (404)."""

    status = 404


class Gone(CheesecellarError):
    """An upload action that indexes no longer support (410)."""

    status = 410


class FileExists(CheesecellarError):
    """The filename is taken by different bytes (409)."""

    status = 409


class TooLarge(CheesecellarError):
    """The request body exceeds the configured limit (413)."""

    status = 413


class InsufficientStorage(CheesecellarError):
    """The disk is full (507); nothing was stored."""

    status = 507


class StorageUnavailable(CheesecellarError):
    """The storage backend failed or cannot be reached (503); try again later."""

    status = 503


class UnsafePath(BadRequest):
    """A storage key would leave the storage root."""
