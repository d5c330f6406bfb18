"""translation-sample: English→German UI messages from the GNU message catalogs on this machine.

Catalogs are read with ``polib``. Only whole, plain messages are kept: no plural forms, no format
directives (``%s``, ``{0}``, ``$1``), no markup, mnemonics or option tables, a single line of 20–150
characters starting with a capital letter and holding at least four words. The same English text in
several catalogs is kept once (the first catalog in sorted order wins), and each English message is a
group of its own, so the same English never appears in two splits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from _common import group_split, owning_package, package_licenses, package_version, short_hash

LOCALE_DIR = Path("/usr/share/locale/de/LC_MESSAGES")
SIZES = {"test": 200, "validation": 200, "train": 5000}
#: The catalogs read, frozen so that packages installed later do not change the data (a missing one
#: is an error: install its package, listed in SOURCE.md).
CATALOGS = (
    "Linux-PAM", "PackageKit", "adduser", "appstream", "apt", "at-spi2-core", "avahi", "bash",
    "coreutils", "cups-pk-helper", "diffutils", "dpkg", "dpkg-dev", "elfutils", "findutils",
    "gdk-pixbuf", "gettext-runtime", "gettext-tools", "git", "glib20", "gnupg2", "gnutls30",
    "gprof", "grep", "gsettings-desktop-schemas", "gstreamer-1.0", "gtk20", "gtk20-properties",
    "gtk30", "gtk30-properties", "initdb-15", "ld", "libapt-pkg6.0", "libc", "libhandy", "libidn2",
    "libpq5-15", "libsecret", "make", "man-db", "man-db-gnulib", "mit-krb5", "net-tools",
    "notification-daemon", "opcodes", "pg_amcheck-15", "pg_archivecleanup-15", "pg_basebackup-15",
    "pg_checksums-15", "pg_config-15", "pg_controldata-15", "pg_ctl-15", "pg_dump-15",
    "pg_resetwal-15", "pg_rewind-15", "pg_test_fsync-15", "pg_test_timing-15", "pg_upgrade-15",
    "pg_verifybackup-15", "pg_waldump-15", "pgscripts-15", "plpgsql-15", "polkit-1", "popt",
    "postgres-15", "procps-ng", "psmisc", "psql-15", "python-apt", "sed", "shadow",
    "shared-mime-info", "software-properties", "system-config-printer", "systemd", "tar", "wget",
    "wget-gnulib", "xdg-user-dirs", "xkeyboard-config", "xz",
)

_REJECT = re.compile(r"[\n\t%{}$<>&|\\]|_\w|\w_|--|\.\.\.|\s\s")
_STARTS_LIKE_SENTENCE = re.compile(r"^[A-Z][a-z]")
_ENDS_CLEANLY = re.compile(r"[A-Za-z.!?)]$")


def keep_message(source: str, target: str) -> bool:
    """Whether a (msgid, msgstr) pair is a whole plain message worth translating."""
    if not target or source == target or "\n" in target:
        return False
    if _REJECT.search(source) or not 20 <= len(source) <= 150:
        return False
    if not _STARTS_LIKE_SENTENCE.match(source) or not _ENDS_CLEANLY.search(source):
        return False
    return len(source.split()) >= 4


def collect(locale_dir: Path = LOCALE_DIR) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The kept pairs and the catalogs they came from (package, version, licences)."""
    import polib

    pairs: dict[str, dict[str, Any]] = {}
    catalogs = []
    for name in CATALOGS:  # sorted; iso_* (names of countries and languages) are not sentences
        path = locale_dir / f"{name}.mo"
        if not path.is_file():
            raise SystemExit(f"{path}: missing; install the package that ships it (see SOURCE.md)")
        kept = 0
        for entry in polib.mofile(str(path)):
            if entry.msgid_plural or entry.msgctxt:
                continue
            source, target = entry.msgid.strip(), entry.msgstr.strip()
            if keep_message(source, target) and source not in pairs:
                pairs[source] = {"id": f"msg-{short_hash(source)}", "en": source, "de": target,
                                 "catalog": path.stem}
                kept += 1
        if kept:
            package = owning_package(path)
            catalogs.append({"catalog": path.name, "package": package,
                             "version": package_version(package),
                             "licenses": package_licenses(package), "kept": str(kept)})
    return list(pairs.values()), catalogs


def build(seed: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    rows, catalogs = collect()
    splits = group_split(rows, lambda r: r["en"], sizes=SIZES, seed=seed)
    for split in splits:
        splits[split].sort(key=lambda r: r["id"])
    return splits, {"candidates": len(rows), "catalogs": catalogs}
