"""Hostile values for the fuzzers: filenames, names, versions, origins and markup."""

from __future__ import annotations

PROJECT = "demo-pkg"

# Filenames that try to leave the root or smuggle something; each must get exactly 400.
HOSTILE_FILENAMES = [
    "../{f}",
    "../../{f}",
    "..%2f{f}",
    "%2e%2e%2f{f}",
    "%2e%2e/{f}",
    "..\\{f}",
    "..%5c{f}",
    "/etc/{f}",
    "/{f}",
    "sub/{f}",
    "{f}/",
    "./{f}",
    ".{f}",
    "..",
    ".",
    "",
    "/",
    "C:\\evil\\{f}",
    "\\\\server\\share\\{f}",
    "c:/evil/{f}",
    "\u2024\u2024\uff0f{f}",
    "\uff0e\uff0e\uff0f{f}",
    "\u2025\u2215{f}",
    "..\u2215{f}",
    "\u2024\u2024/{f}",
    "{f}\x00.whl",
    "{f}\x00",
    "{f}\rX-Injected: 1",
    "{f}\nX-Injected: 1",
    "{f}%0d%0aX-Injected: 1",
    "<script>alert(1)</script>-1.0-py3-none-any.whl",
    "{f}\u202e",
    "{f}\t",
    "x" * 300 + ".whl",
    "{f}.exe",
    "{f}.tar.gz",
    "CON",
    "{f}::$DATA",
]
# Project names and versions that must be refused (400) before anything is stored.
HOSTILE_NAMES = [
    "demo-pkg<script>alert(1)</script>",
    "demo\r\npkg",
    "../demo-pkg",
    "demo/pkg",
    "demo-pkg\x00",
    "d\u0435mo-pkg",
    "demo-pkg\u2024",
    "-demo-pkg",
    "demo pkg",
    "%2e%2e",
    "\\demo",
]
HOSTILE_VERSIONS = ["1.0<script>", "../1.0", "1.0\r\nX-Injected: 1", "1.0\x00", "\u0661.0", "1.0/2"]
HTML_BITS = ['"><script>alert(1)</script>', "<img src=x onerror=alert(1)>", "&amp;", "'\"<>&"]
# Origin and Sec-Fetch-Site values: the first list may change the index, the second may not.
SAME_ORIGIN = [
    ("Origin", "http://127.0.0.1:8080"),
    ("Sec-Fetch-Site", "same-origin"),
    ("Sec-Fetch-Site", "none"),
]
CROSS_SITE = [
    ("Origin", "http://evil.example"),
    ("Origin", "null"),
    ("Origin", "http://[evil"),
    ("Origin", "http://\u00e9vil.example"),
    ("Origin", "http://127.0.0.1:8080@evil.example"),
    ("Origin", "\u00ff://x"),
    ("Sec-Fetch-Site", "cross-site"),
    ("Sec-Fetch-Site", "CROSS-SITE"),
]
REQUIRED = [":action", "name", "version", "content"]
SINGLE = [
    ":action",
    "name",
    "version",
    "content",
    "filetype",
    "pyversion",
    "sha256_digest",
    "blake2_256_digest",
    "protocol_version",
]
OPTIONAL = [
    "filetype",
    "pyversion",
    "metadata_version",
    "protocol_version",
    "sha256_digest",
    "blake2_256_digest",
]
