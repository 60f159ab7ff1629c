"""The names a station's PostgreSQL schema may have (--db-schema, LINEGUARD_DB_SCHEMA).

Apart from line.db so that the settings (line.config) and the command line check a name
without importing the database's packages: an edge install without them was told it
needed sqlalchemy before the package it lacked first.
"""
from __future__ import annotations

import re
from typing import Optional

# A station's PostgreSQL schema as --db-schema / LINEGUARD_DB_SCHEMA names it: only names
# PostgreSQL reads the same quoted (CREATE SCHEMA, DROP SCHEMA) and unquoted (the
# search_path every connection sets): upper case is folded to lower case where unquoted,
# so `--db-schema hI_walk` made an empty "hI_walk" and ran the station in hi_walk, another
# station's schema. Refused, not quoted everywhere: the name is also typed by hand in
# `pg_dump -n`, psql and the backups' notes, where a quoted mixed-case name goes wrong again.
# (A leading _ reads the same both ways and was taken before: a station on _l1 keeps it.)
# The rule's numbers are the check's: the options' --help states SCHEMA_NAME_RULE, so what
# it says is what is refused (the help said nothing of it, and a name was first refused at start).
MAX_LENGTH = 63                # PostgreSQL keeps no more of a name (NAMEDATALEN - 1)
RESERVED_PREFIX = "pg_"        # PostgreSQL's own schemas: CREATE SCHEMA refuses the name
_SCHEMA_RE = re.compile(rf"^[a-z_][a-z0-9_]{{0,{MAX_LENGTH - 1}}}$")
SCHEMA_NAME_RULE = ("a schema name is lower-case letters (a-z), digits and _, starting with a letter or _, "
                    f"at most {MAX_LENGTH} characters, not starting with {RESERVED_PREFIX} (PostgreSQL's own)")


def schema_name_problem(name: str, given_as: Optional[str] = "--db-schema") -> Optional[str]:
    """Why ``name`` cannot be a station's schema, in one sentence naming ``given_as`` (the
    option or variable it came from; None: the caller names it); None where it can. The one
    check of a schema name: the commands' options, LINEGUARD_DB_SCHEMA, StationConfig and
    Database all ask it."""
    if _SCHEMA_RE.match(name) and not name.startswith(RESERVED_PREFIX):
        return None
    why = f"{given_as + ' ' if given_as else ''}{name!r} is not a schema name: {SCHEMA_NAME_RULE}"
    if name.lower() != name and schema_name_problem(name.lower()) is None:
        why += (f". PostgreSQL reads {name!r} as {name.lower()!r} where it is not quoted (a station on it ran "
                f"in {name.lower()!r} and made an empty {name!r}): write it in lower case; a station that ran "
                f"with it has its records in {name.lower()!r}, unless that is another station's")
    return why


def check_schema_name(name: Optional[str], given_as: Optional[str] = "--db-schema") -> Optional[str]:
    """``name`` where it can be a station's schema (None: no schema); else ValueError saying why."""
    if name is not None:
        why = schema_name_problem(name, given_as)
        if why is not None:
            raise ValueError(why)
    return name
